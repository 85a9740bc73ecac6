// Rebalancing in connectWithFailover (opt-in `rebalance`): fake connections, a fake
// discovery and a fake clock; nothing waits on real time.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { DEFAULT_REBALANCE, connectWithFailover, rank, score } from '../src/index.js';
import { FakeClock, FakeConn, FakeDiscovery, origin, tick } from './helpers.js';

const cleanups = [];
afterEach(() => {
  for (const f of cleanups.splice(0).reverse()) f();
});

/** A key whose first choice among `ids` is `want`. */
function keyWhoseBestIs(origins, want, from = 0) {
  for (let k = from; k < 100_000; k++) {
    if (rank(origins, `stream-${k}`, { count: 1 })[0].id === want) return `stream-${k}`;
  }
  throw new Error(`no key prefers ${want}`);
}

/** One client; `conns` are the FakeConns it opened, opened at once unless `manual`. */
function client(d, key, options = {}, { manual = false } = {}) {
  const log = [];
  const conns = [];
  const clock = options.timers ?? new FakeClock();
  const h = connectWithFailover(
    d,
    key,
    (o) => {
      const c = new FakeConn(o);
      conns.push(c);
      log.push(['open', o.id]);
      if (!manual) queueMicrotask(() => c.open());
      return c;
    },
    {
      timers: clock,
      random: () => 0.5,
      onConnect: (i) => log.push(['connect', i.origin.id, i.migrated]),
      onFailover: (i) => log.push(['failover', i.from.id, i.to?.id ?? null, i.reason]),
      onMigrate: (i) => log.push(['migrate', i.from.id, i.to?.id ?? null, i.reason]),
      onRetry: (i) => log.push(['retry', i.attempt]),
      ...options,
    },
  );
  cleanups.push(() => h.close());
  return { h, log, conns, clock };
}

const three = () => ['a', 'b', 'c'].map((id) => origin(id));

test('off by default: a client stays on its live origin when capacity joins', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, clock } = client(d, key);
  await tick();
  await tick();
  assert.equal(h.origin.id, 'a');
  d.set(three());
  clock.advance(10 * 60_000);
  await tick();
  assert.equal(h.origin.id, 'a');
  assert.deepEqual(log, [['open', 'a'], ['connect', 'a', false]]);
  assert.deepEqual(clock.scheduled(), [], 'no timer at all');
});

test('moves make-before-break to the first-ranked origin after minAge plus its jitter', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const d = new FakeDiscovery([origin('a')]);
  const rebalance = { rate: 0.1, margin: 0, minAge: 2_000 };
  const { h, log, conns, clock } = client(d, key, { rebalance }, { manual: true });
  await tick();
  conns[0].open();
  await tick();
  clock.advance(500);
  d.set(three()); // at 500 ms: the connection is 500 ms old
  await tick();
  // due at minAge (2 s after the connect) + random() · 1.5/rate = 2 s + 0.5 · 15 s = 9.5 s
  assert.deepEqual(clock.scheduled(), [9_000]);
  clock.advance(8_999);
  await tick();
  assert.equal(conns.length, 1, 'nothing before its moment');
  clock.advance(1);
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', 'a', 'b', 'rebalance'], ['open', 'b']]);
  assert.equal(h.state, 'migrating');
  assert.equal(conns[0].closedByClient, false, 'the old connection serves until the new one is up');
  conns[1].open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', 'b', true]);
  assert.equal(conns[0].closedByClient, true);
  assert.equal(h.origin.id, 'b');
  assert.equal(h.state, 'connected');
  assert.deepEqual(clock.scheduled(), [], 'on the first-ranked origin: nothing more to do');
});

test('a connection younger than minAge never moves; the delay is uniform over 1.5/rate', async () => {
  const key = keyWhoseBestIs(three(), 'c');
  const delays = [];
  for (const r of [0, 0.25, 0.999]) {
    const d = new FakeDiscovery([origin('a')]);
    const { clock } = client(d, key, { random: () => r, rebalance: { rate: 0.05, minAge: 30_000 } });
    await tick();
    await tick();
    d.set(three());
    await tick();
    delays.push(...clock.scheduled());
  }
  // connected at 0, so the 30 s minimum age is still ahead; then [0, 1.5 / 0.05 = 30 s) of jitter
  assert.deepEqual(delays, [30_000, 37_500, 30_000 + 0.999 * 30_000]);
});

test('the margin: a first choice only slightly better than the current one moves nobody', async () => {
  // Find a key whose first choice among a, b beats a by a factor in (1.02, 1.08).
  const pair = [origin('a'), origin('b')];
  let key = null;
  for (let k = 0; !key; k++) {
    const ratio = score(`stream-${k}`, pair[0]) / score(`stream-${k}`, pair[1]);
    if (ratio > 1.02 && ratio < 1.08) key = `stream-${k}`;
  }
  for (const [margin, moves] of [[0.1, false], [0.01, true]]) {
    const d = new FakeDiscovery([pair[0]]);
    const { h, clock } = client(d, key, { rebalance: { margin, minAge: 0, rate: 1 } });
    await tick();
    await tick();
    d.set(pair);
    await tick();
    clock.advance(2_000);
    await tick();
    await tick();
    assert.equal(h.origin.id, moves ? 'b' : 'a', `margin ${margin}`);
  }
  assert.equal(DEFAULT_REBALANCE.margin, 0.1);
});

test('re-checks when its moment comes: a preference that went away moves nobody', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, clock } = client(d, key, { rebalance: { minAge: 0, rate: 0.1 } });
  await tick();
  await tick();
  d.set(three());
  await tick();
  assert.equal(clock.scheduled().length, 1);
  d.set([origin('a'), origin('c', { state: 'draining' })]); // b is gone, c drains
  clock.advance(20_000);
  await tick();
  assert.equal(h.origin.id, 'a');
  assert.equal(log.filter((l) => l[0] === 'migrate').length, 0);
});

test('a rebalance whose target fails keeps the current connection (no back-off)', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, conns, clock } = client(d, key, { rebalance: { minAge: 0, rate: 1 } }, { manual: true });
  await tick();
  conns[0].open();
  await tick();
  d.set(three());
  await tick();
  clock.advance(1_000);
  await tick();
  assert.equal(h.state, 'migrating');
  conns[1].kill();
  await tick();
  assert.equal(h.state, 'connected');
  assert.equal(h.origin.id, 'a');
  assert.equal(h.connection, conns[0]);
  assert.equal(conns[0].closedByClient, false);
  assert.deepEqual(log.slice(-2), [['open', 'b'], ['failover', 'b', 'a', 'error']]);
  assert.equal(conns.length, 2, 'no third origin tried: only a better one is worth a move');
  assert.equal(log.filter((l) => l[0] === 'retry').length, 0);
  // The current connection still fails over normally afterwards.
  conns[0].kill();
  await tick();
  assert.equal(log.at(-1)[0], 'open');
});

test('the current origin draining during a rebalance move makes the move a drain', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const d = new FakeDiscovery([origin('a')]);
  const { h, conns, clock } = client(d, key, { rebalance: { minAge: 0, rate: 1 } }, { manual: true });
  await tick();
  conns[0].open();
  await tick();
  d.set(three());
  await tick();
  clock.advance(1_000);
  await tick();
  d.set(three().map((o) => (o.id === 'a' ? { ...o, state: 'draining' } : o)));
  await tick();
  conns[1].kill(); // b fails: for a drain the next origin is tried, not a stay
  await tick();
  assert.equal(conns.at(-1).origin.id, 'c');
  conns.at(-1).open();
  await tick();
  assert.equal(h.origin.id, 'c');
  assert.equal(conns[0].closedByClient, true);
});

test('after failing over to a second choice, moves back once the connection is old enough', async () => {
  // The first choice refused once (a restart); it stays listed ready. Ant Media's streams
  // never went back to a recovered node; with rebalancing they do, after minAge.
  const os = three();
  const key = keyWhoseBestIs(os, 'a');
  const second = rank(os, key, { count: 2 })[1].id;
  const d = new FakeDiscovery(os);
  const { h, conns, clock } = client(d, key, { rebalance: { minAge: 10_000, rate: 1, margin: 0 } }, { manual: true });
  await tick();
  conns[0].kill();
  await tick();
  conns[1].open();
  await tick();
  assert.equal(h.origin.id, second);
  clock.advance(9_999);
  await tick();
  assert.equal(conns.length, 2);
  clock.advance(1_000);
  await tick();
  assert.equal(conns.length, 3);
  assert.equal(conns[2].origin.id, 'a');
  conns[2].open();
  await tick();
  assert.equal(h.origin.id, 'a');
});

test('a recovered origin gets its clients back, rate-limited', async () => {
  const os = three();
  const keys = Array.from({ length: 300 }, (_, k) => `stream-${k}`);
  const clock = new FakeClock();
  const d = new FakeDiscovery(os);
  const handles = keys.map((key, i) =>
    connectWithFailover(d, key, () => ({ close() {} }), {
      timers: clock,
      random: () => ((i * 7919) % 1000) / 1000, // spread evenly, deterministically
      rebalance: { rate: 0.1, minAge: 5_000, margin: 0 },
    }),
  );
  for (const h of handles) cleanups.push(() => h.close());
  await tick();
  await tick();
  const onA = handles.filter((h) => h.origin.id === 'a').length;
  assert.ok(onA > 60, `${onA} on a`);
  d.set(os.filter((o) => o.id !== 'a')); // a removed: its clients migrate at once
  await tick();
  await tick();
  assert.equal(handles.filter((h) => h.origin?.id === 'a').length, 0);
  clock.advance(60_000);
  d.set(os); // a is back
  await tick();
  const back = [];
  for (let s = 1; s <= 16; s++) {
    clock.advance(1_000);
    await tick();
    await tick();
    back.push(handles.filter((h) => h.origin.id === 'a').length);
  }
  assert.equal(back.at(-1), onA, 'every client of a is back on it, nobody else moved there');
  const perSecond = back.map((n, i) => n - (back[i - 1] ?? 0));
  assert.ok(Math.max(...perSecond) <= 0.1 * keys.length, `moves per second ${perSecond}`);
  assert.ok(perSecond.filter((n) => n > 0).length >= 10, `spread over the 15 s window: ${perSecond}`);
});

test('rebalance options are validated', () => {
  const d = new FakeDiscovery([origin('a')]);
  const mk = (rebalance) => connectWithFailover(d, 'k', () => ({ close() {} }), { rebalance, timers: new FakeClock() }).close();
  assert.throws(() => mk({ rate: 0 }), RangeError);
  assert.throws(() => mk({ rate: -1 }), RangeError);
  assert.throws(() => mk({ margin: -0.1 }), RangeError);
  assert.throws(() => mk({ minAge: Infinity }), RangeError);
  assert.throws(() => mk({ better: 'yes' }), TypeError);
  mk(true);
  mk({ rate: 5 });
});

test('a custom `better` decides instead of the score margin', async () => {
  const key = keyWhoseBestIs(three(), 'b');
  const calls = [];
  const d = new FakeDiscovery([origin('a')]);
  const { h, clock } = client(d, key, {
    rebalance: {
      minAge: 0,
      rate: 1,
      better: (cur, best, k) => {
        calls.push([cur.id, best.id, k]);
        return calls.length > 1; // not at the first look, yes when it fires
      },
    },
  });
  await tick();
  await tick();
  d.set(three());
  await tick();
  assert.equal(clock.scheduled().length, 0, 'better said no: nothing scheduled');
  d.set(three().map((o) => ({ ...o, load: 0.1 })));
  await tick();
  clock.advance(1_000);
  await tick();
  await tick();
  assert.equal(h.origin.id, 'b');
  assert.deepEqual(calls[0], ['a', 'b', key]);
});
