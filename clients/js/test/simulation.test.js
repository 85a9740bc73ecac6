// The ranking simulation (dev/ranking-sim.js): 3000 clients, each the real
// connectWithFailover with rebalancing at its defaults, fake sockets and a simulated clock.
// The bounds asserted here are the ones docs/ranking-simulation.md reports (same scenarios,
// same seeds; `npm run simulate` regenerates the document). ~8 s.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { DEFAULT_REBALANCE } from '../src/index.js';
import { CLIENTS, measure } from '../dev/ranking-sim.js';

/** @type {any} */ let hrw;
/** @type {any} */ let ll;
before(async () => {
  hrw = await measure('hrw');
  ll = await measure('least-loaded');
});

test('scale-out 1 → 3: every share within 10 % of fair within 60 s, moves never above the rate', () => {
  const s = hrw.scaleOut;
  assert.ok(s.convergedAt != null && s.convergedAt - 5_000 <= 60_000, `converged at ${s.convergedAt} ms`);
  for (const n of Object.values(s.end)) assert.ok(Math.abs(n / (CLIENTS / 3) - 1) <= 0.1, JSON.stringify(s.end));
  assert.equal(s.limit, DEFAULT_REBALANCE.rate * CLIENTS);
  assert.ok(s.maxMovesPerSecond <= s.limit, `${s.maxMovesPerSecond} moves in one second, limit ${s.limit}`);
  assert.ok(s.totalMoves >= (2 * CLIENTS) / 3, `${s.totalMoves} moves`);
});

test('failure: only the dead origin\'s clients move, spread over the survivors by weight', () => {
  const f = hrw.failure;
  assert.ok(f.deadClients > 400, `${f.deadClients} on the dead origin`);
  assert.equal(f.movedInTwoSeconds, f.deadClients, 'every client of the dead origin moved at once');
  assert.equal(f.movedFromOthers, 0);
  assert.equal(f.laterMoves, 0, 'and nothing moves afterwards');
  const fair = { 'origin-1': 1 / 8, 'origin-3': 3 / 8, 'origin-4': 4 / 8 };
  for (const [id, share] of Object.entries(fair)) {
    assert.ok(Math.abs((f.landed[id] ?? 0) / f.deadClients - share) <= 0.05, JSON.stringify(f.landed));
  }
  assert.ok(f.endImbalance <= 1.1, `imbalance ${f.endImbalance}`);
});

test('a join burst spreads by capacity', () => {
  assert.ok(hrw.burst.justAfterImbalance <= 1.1, `imbalance ${hrw.burst.justAfterImbalance}`);
  assert.equal(hrw.burst.laterMoves, 0);
});

test('least-loaded first herds where weighted rendezvous does not', () => {
  // The dead origin's clients all pile onto one survivor…
  const landed = Object.values(ll.failure.landed);
  assert.ok(Math.max(...landed) >= 0.9 * ll.failure.deadClients, JSON.stringify(ll.failure.landed));
  // …a burst of joins lands on one origin…
  assert.ok(ll.burst.justAfterImbalance > 1.3, `imbalance ${ll.burst.justAfterImbalance}`);
  assert.ok(ll.burst.justAfterImbalance > hrw.burst.justAfterImbalance);
  // …and after the scale-out it is further from fair.
  assert.ok(ll.scaleOut.endImbalance > hrw.scaleOut.endImbalance, `${ll.scaleOut.endImbalance} vs ${hrw.scaleOut.endImbalance}`);
});
