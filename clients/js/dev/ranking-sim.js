// Ranking simulation: many clients, each running the real `connectWithFailover` (with
// rebalancing) against a simulated discovery and simulated origins, on a simulated clock.
// Compares the contract's weighted rendezvous ranking with "least-loaded first" (sort by
// reported load — the herding approach) under the same helper, the same load reports and the
// same rebalancing limits.
//
// Used by test/simulation.test.js (asserts the bounds) and, as a script, writes the markdown
// section docs/ranking-simulation.md:
//
//   node dev/ranking-sim.js [OUTPUT.md]      # default ../../docs/ranking-simulation.md
//
// The model (every choice here is stated in the generated document):
// - Time is simulated: a timer heap; the loop advances 10 ms at a time and lets promise jobs
//   run in between, so the helper's asynchronous steps happen as they would in a browser.
// - An origin has capacity `perWeight × weight` clients; its load is clients / capacity.
//   Every second the "controller" samples each origin's load and publishes it like the index
//   does (docs/DESIGN.md, "Weights and load"): steps of 0.05, a sample must be 3/4 of a step
//   away to change the published value, at most one change per origin per 5 s.
// - Connecting takes 20 ms. A crashed origin's connections close at once; discovery removes
//   it 50 ms later. New origins appear in discovery when they come up.
// - Moves are counted when a client's new connection opens (failover or migration).

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connectWithFailover, rank } from '../src/index.js';

/** Deterministic PRNG (mulberry32). @param {number} seed */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Timers on simulated time (a binary heap; ties run in scheduling order). */
export class SimClock {
  constructor() {
    this.t = 0;
    this.seq = 0;
    /** @type {{at: number, seq: number, fn: () => void, dead: boolean}[]} */
    this.heap = [];
    /** @type {Map<number, any>} */
    this.byId = new Map();
    this.setTimeout = (/** @type {() => void} */ fn, /** @type {number} */ ms) => {
      const e = { at: this.t + Math.max(0, ms), seq: ++this.seq, fn, dead: false };
      this.byId.set(e.seq, e);
      this._push(e);
      return e.seq;
    };
    this.clearTimeout = (/** @type {number} */ id) => {
      const e = this.byId.get(id);
      if (e) e.dead = true;
      this.byId.delete(id);
    };
    this.now = () => this.t;
  }
  /** @param {any} a @param {any} b */
  static less(a, b) {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  /** @param {any} e */
  _push(e) {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!SimClock.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  _pop() {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && SimClock.less(h[l], h[m])) m = l;
        if (r < h.length && SimClock.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
  /** Runs every timer due up to `end`. @param {number} end */
  runUntil(end) {
    while (this.heap.length > 0 && this.heap[0].at <= end) {
      const e = this._pop();
      if (e.dead) continue;
      this.byId.delete(e.seq);
      this.t = e.at;
      e.fn();
    }
    this.t = end;
  }
}

/** The index's load filter, in steps of 1/20 (crates/core/src/index.rs, `LoadFilter`). */
class LoadFilter {
  constructor() {
    /** @type {number | null} published steps */
    this.steps = null;
    this.changedAt = -Infinity;
  }
  /** @param {number} load raw, 0..1 @param {number} now ms @returns {boolean} changed */
  observe(load, now) {
    const s = load * 20;
    const wanted = this.steps != null && Math.abs(s - this.steps) < 0.75 ? this.steps : Math.floor(s + 0.5);
    if (wanted === this.steps || now - this.changedAt < 5_000) return false;
    this.steps = wanted;
    this.changedAt = now;
    return true;
  }
}

/** A media connection to a simulated origin (WebSocket-like: readyState + events). */
class SimConn extends EventTarget {
  /** @param {any} origin the simulated origin @param {SimClock} clock */
  constructor(origin, clock) {
    super();
    this.readyState = 0;
    this.origin = origin;
    clock.setTimeout(() => {
      if (this.readyState !== 0) return;
      if (origin.up) {
        this.readyState = 1;
        origin.conns.add(this);
        this.dispatchEvent(new Event('open'));
      } else this.kill();
    }, 20);
  }
  kill() {
    this.readyState = 3;
    this.origin.conns.delete(this);
    this.dispatchEvent(new Event('close'));
  }
  close() {
    this.readyState = 3;
    this.origin.conns.delete(this);
  }
}

/**
 * "Least-loaded first": ready origins by published load ascending, ties by id (the order a
 * load-sorting balancer gives every client alike).
 * @param {readonly any[]} origins
 * @param {{exclude?: Iterable<string>, count?: number}} [opts]
 */
function leastLoaded(origins, opts = {}) {
  const ex = new Set(opts.exclude ?? []);
  return origins
    .filter((o) => o.state === 'ready' && !ex.has(o.id))
    .sort((a, b) => (a.load ?? 0) - (b.load ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, opts.count ?? 3);
}

/**
 * Least-loaded first's rebalance condition: the first-ranked origin's reported load is lower
 * than the current one's by more than 0.1 (the same margin as the rendezvous score margin).
 * @param {any} current @param {any} best
 */
export function lessLoaded(current, best) {
  return (best.load ?? 0) + 0.1 < (current.load ?? 0);
}

/**
 * One simulation run.
 * @param {{
 *   policy: 'hrw' | 'least-loaded',
 *   clients: number,
 *   origins: {id: string, weight: number, upAt?: number, downAt?: number}[],
 *   perWeight: number,
 *   duration: number,
 *   joins?: {at: number, clients: number, over: number},
 *   rebalance?: any,
 *   seed?: number,
 * }} sc
 */
export async function simulate(sc) {
  const clock = new SimClock();
  const rng = mulberry32(sc.seed ?? 1);
  const sims = sc.origins.map((o) => ({ ...o, up: false, listed: false, conns: new Set(), filter: new LoadFilter() }));
  /** @type {any[]} */
  let list = [];
  let revision = 0;
  /** @type {Map<string, Set<(d: any) => void>>} */
  const listeners = new Map();
  const discovery = {
    get origins() {
      return list;
    },
    get revision() {
      return revision;
    },
    rank: (/** @type {string} */ key, /** @type {any} */ opts) => (sc.policy === 'hrw' ? rank(list, key, opts) : leastLoaded(list, opts)),
    on(/** @type {string} */ type, /** @type {(d: any) => void} */ fn) {
      if (!listeners.has(type)) listeners.set(type, new Set());
      listeners.get(type)?.add(fn);
      return () => listeners.get(type)?.delete(fn);
    },
  };
  const publish = () => {
    const prev = new Map(list.map((o) => [o.id, o]));
    const next = sims
      .filter((s) => s.listed)
      .map((s) => {
        /** @type {any} */
        const o = { id: s.id, ip: '10.0.0.1', port: 5080, state: 'ready', since: '' };
        if (s.weight !== 1) o.weight = s.weight;
        if (s.filter.steps != null) o.load = s.filter.steps / 20;
        return Object.freeze(o);
      });
    const ids = new Set(next.map((o) => o.id));
    const added = next.filter((o) => !prev.has(o.id));
    const updated = next.filter((o) => prev.has(o.id) && JSON.stringify(prev.get(o.id)) !== JSON.stringify(o));
    const removed = list.filter((o) => !ids.has(o.id));
    if (!added.length && !updated.length && !removed.length) return;
    list = next;
    revision += 1;
    const d = { reason: 'delta', origins: list, added, updated, removed, epoch: 'sim', revision, message: {}, receivedAt: clock.t };
    for (const fn of [...(listeners.get('change') ?? [])]) fn(d);
  };

  // Origins come up and go down on schedule.
  for (const s of sims) {
    clock.setTimeout(() => {
      s.up = true;
      s.listed = true;
      s.filter.observe(0, clock.t);
      publish();
    }, s.upAt ?? 0);
    if (s.downAt != null) {
      clock.setTimeout(() => {
        s.up = false;
        for (const c of [...s.conns]) c.kill();
        clock.setTimeout(() => {
          s.listed = false;
          publish();
        }, 50);
      }, s.downAt);
    }
  }
  // Load reports, every second.
  const sample = () => {
    let changed = false;
    for (const s of sims) {
      if (s.listed) changed = s.filter.observe(Math.min(1, s.conns.size / (sc.perWeight * s.weight)), clock.t) || changed;
    }
    if (changed) publish();
    clock.setTimeout(sample, 1_000);
  };
  clock.setTimeout(sample, 1_000);

  /** @type {{t: number, from: string | null, to: string}[]} */
  const moves = [];
  const handles = [];
  /** @param {number} i */
  const join = (i) => {
    const seed = Math.floor(rng() * 2 ** 32);
    /** @type {string | null} where this client was last connected */
    let last = null;
    handles.push(
      connectWithFailover(discovery, `stream-${i}`, (o) => new SimConn(sims.find((s) => s.id === o.id), clock), {
        timers: clock,
        random: mulberry32(seed),
        rebalance: sc.rebalance ?? (sc.policy === 'hrw' ? true : { better: lessLoaded }),
        onlineEvents: null,
        onConnect: ({ origin }) => {
          if (last != null && last !== origin.id) moves.push({ t: clock.t, from: last, to: origin.id });
          last = origin.id;
        },
      }),
    );
  };
  clock.setTimeout(() => {
    for (let i = 0; i < sc.clients; i++) join(i);
  }, 100);
  const joins = sc.joins;
  if (joins) {
    for (let j = 0; j < joins.clients; j++) clock.setTimeout(() => join(sc.clients + j), joins.at + Math.floor((joins.over * j) / joins.clients));
  }

  /** @type {{t: number, counts: Record<string, number>}[]} */
  const samples = [];
  for (let t = 0; t <= sc.duration; t += 10) {
    clock.runUntil(t);
    await new Promise((resolve) => setImmediate(resolve));
    if (t % 1000 === 0) {
      /** @type {Record<string, number>} */
      const counts = {};
      for (const s of sims) if (s.listed) counts[s.id] = s.conns.size;
      samples.push({ t, counts });
    }
  }
  for (const h of handles) h.close();
  return { moves, samples, weights: Object.fromEntries(sims.map((s) => [s.id, s.weight])) };
}

/**
 * max over origins of clients / fair share (fair = clients · weight / Σ weight of the listed
 * origins): max/mean for equal weights.
 * @param {Record<string, number>} counts
 * @param {Record<string, number>} weights
 */
export function imbalance(counts, weights) {
  const ids = Object.keys(counts);
  const total = ids.reduce((a, id) => a + counts[id], 0);
  const wsum = ids.reduce((a, id) => a + weights[id], 0);
  if (total === 0) return NaN;
  return Math.max(...ids.map((id) => counts[id] / ((total * weights[id]) / wsum)));
}

/** Moves per whole second of simulated time, from `from` (inclusive) to `to` (exclusive). */
export function movesPerSecond(moves, from, to) {
  const n = new Array(Math.ceil((to - from) / 1000)).fill(0);
  for (const m of moves) if (m.t >= from && m.t < to) n[Math.floor((m.t - from) / 1000)]++;
  return n;
}

/**
 * First sample time (ms) from which every origin's share stays within ±tolerance (relative)
 * of its fair share until the end; null if never.
 */
export function convergedAt(samples, weights, tolerance = 0.1, from = 0) {
  let since = null;
  for (const s of samples) {
    if (s.t < from) continue;
    const ok = imbalanceWithin(s.counts, weights, tolerance);
    if (ok && since == null) since = s.t;
    if (!ok) since = null;
  }
  return since;
}

function imbalanceWithin(counts, weights, tolerance) {
  const ids = Object.keys(counts);
  const total = ids.reduce((a, id) => a + counts[id], 0);
  const wsum = ids.reduce((a, id) => a + weights[id], 0);
  return total > 0 && ids.every((id) => Math.abs(counts[id] / ((total * weights[id]) / wsum) - 1) <= tolerance);
}

export const CLIENTS = 3000;

/** The scale-out scenario: one origin, two more become ready 5 s later. */
export function scaleOut(policy) {
  return {
    policy,
    clients: CLIENTS,
    // capacity 3300 clients per origin: 0.3 load at the fair share, 0.91 on the first alone
    perWeight: 3300,
    origins: [
      { id: 'origin-a', weight: 1, upAt: 0 },
      { id: 'origin-b', weight: 1, upAt: 5_000 },
      { id: 'origin-c', weight: 1, upAt: 5_000 },
    ],
    duration: 65_000,
    seed: 7,
  };
}
export const SCALE_OUT_AT = 5_000;

/** The failure scenario: weights 1, 2, 3, 4 settle for 60 s, then origin-2 (weight 2) crashes. */
export function failure(policy) {
  return {
    policy,
    clients: CLIENTS,
    perWeight: 1000, // 0.3 load at the fair share before, 0.375 after
    origins: [
      { id: 'origin-1', weight: 1 },
      { id: 'origin-2', weight: 2, downAt: 60_000 },
      { id: 'origin-3', weight: 3 },
      { id: 'origin-4', weight: 4 },
    ],
    duration: 90_000,
    seed: 11,
  };
}
export const FAILURE_AT = 60_000;

/**
 * The join-burst scenario: 3 equal origins settled with 3000 clients; at t = 60 s a burst of
 * 1500 new clients joins within one second (a popular stream starting).
 */
export function burst(policy) {
  return {
    policy,
    clients: CLIENTS,
    perWeight: 5000, // 0.2 load at the fair share before the burst, 0.3 after
    origins: [
      { id: 'origin-a', weight: 1 },
      { id: 'origin-b', weight: 1 },
      { id: 'origin-c', weight: 1 },
    ],
    joins: { at: BURST_AT, clients: CLIENTS / 2, over: 1_000 },
    duration: 90_000,
    seed: 13,
  };
}
export const BURST_AT = 60_000;

/** Everything the document reports, for one policy. */
export async function measure(policy) {
  const so = await simulate(scaleOut(policy));
  const soEnd = so.samples.at(-1);
  const soPerSecond = movesPerSecond(so.moves, SCALE_OUT_AT, SCALE_OUT_AT + 60_000);
  const soSeries = [10, 20, 30, 40, 50, 60].map((sec) => {
    const s = so.samples.find((x) => x.t === SCALE_OUT_AT + sec * 1000);
    return s ? imbalance(s.counts, so.weights) : NaN;
  });
  const firstShareA = Math.min(...so.samples.filter((s) => s.t > SCALE_OUT_AT).map((s) => s.counts['origin-a'] / CLIENTS));
  const fa = await simulate(failure(policy));
  const before = fa.samples.find((s) => s.t === FAILURE_AT - 1000);
  const after = fa.samples.at(-1);
  const faPerSecond = movesPerSecond(fa.moves, FAILURE_AT, FAILURE_AT + 30_000);
  const victims = new Set(); // clients of the dead origin: the moves *from* it
  const firstSecond = fa.moves.filter((m) => m.t >= FAILURE_AT && m.t < FAILURE_AT + 2_000);
  for (const m of firstSecond) if (m.from === 'origin-2') victims.add(m);
  const landed = {};
  for (const m of firstSecond) if (m.from === 'origin-2') landed[m.to] = (landed[m.to] ?? 0) + 1;
  const bu = await simulate(burst(policy));
  const buBefore = bu.samples.find((s) => s.t === BURST_AT);
  const buJust = bu.samples.find((s) => s.t === BURST_AT + 2_000);
  return {
    policy,
    burst: {
      before: buBefore?.counts,
      beforeImbalance: buBefore ? imbalance(buBefore.counts, bu.weights) : NaN,
      justAfter: buJust?.counts,
      justAfterImbalance: buJust ? imbalance(buJust.counts, bu.weights) : NaN,
      end: bu.samples.at(-1).counts,
      endImbalance: imbalance(bu.samples.at(-1).counts, bu.weights),
      laterMoves: bu.moves.filter((m) => m.t >= BURST_AT).length,
    },
    scaleOut: {
      convergedAt: convergedAt(so.samples, so.weights, 0.1, SCALE_OUT_AT),
      end: soEnd.counts,
      endImbalance: imbalance(soEnd.counts, so.weights),
      series: soSeries,
      lowestShareOfFirst: firstShareA,
      maxMovesPerSecond: Math.max(...soPerSecond),
      totalMoves: so.moves.filter((m) => m.t >= SCALE_OUT_AT).length,
      limit: 0.05 * CLIENTS,
    },
    failure: {
      before: before?.counts,
      beforeImbalance: before ? imbalance(before.counts, fa.weights) : NaN,
      end: after.counts,
      endImbalance: imbalance(after.counts, { 'origin-1': 1, 'origin-3': 3, 'origin-4': 4 }),
      peakImbalance: Math.max(
        ...fa.samples.filter((s) => s.t > FAILURE_AT).map((s) => imbalance(s.counts, { 'origin-1': 1, 'origin-3': 3, 'origin-4': 4 })),
      ),
      deadClients: before?.counts['origin-2'] ?? 0,
      movedInTwoSeconds: firstSecond.length,
      movedFromOthers: firstSecond.filter((m) => m.from !== 'origin-2').length,
      landed,
      laterMoves: fa.moves.filter((m) => m.t >= FAILURE_AT + 2_000).length,
      maxMovesPerSecond: Math.max(...faPerSecond),
    },
  };
}

const pct = (x) => `${(100 * x).toFixed(1)} %`;
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const counts = (c) =>
  Object.entries(c ?? {})
    .map(([id, n]) => `${id.replace('origin-', '')}: ${n}`)
    .join(', ');

/** The markdown section. @param {any} hrw @param {any} ll @param {{rank10k: any}} extra */
export function render(hrw, ll, extra) {
  const so = (m) => m.scaleOut;
  const fa = (m) => m.failure;
  const bu = (m) => m.burst;
  const shares = extra.shares;
  return `## Ranking simulation: weighted rendezvous vs. least-loaded first

Generated by \`clients/js/dev/ranking-sim.js\` (\`npm run simulate\` in \`clients/js\`); the same
scenarios are asserted by \`clients/js/test/simulation.test.js\`. ${CLIENTS} simulated clients each
run the real \`connectWithFailover\` with rebalancing at its defaults (rate 0.05 of the clients per
second, margin 0.1, minimum connection age 10 s) against a simulated discovery, on a simulated
clock. Both policies get the same helper, the same load reports and the same limits; only the
ranking differs:

- **weighted rendezvous** — the contract's ranking (\`weight × (1 − load)\`, README "Ranking").
- **least-loaded first** — ready origins sorted by reported load, ties by id, the rebalance
  condition being "another origin's load is lower by more than 0.1" (the approach LiveKit used
  when it sent bursts of rooms to one node).

Model: an origin's load is its clients / (capacity per weight unit × weight), the capacity
chosen so the fair share is at load 0.2–0.375 (below); every second the controller samples loads
and publishes them as the index does (steps of 0.05, a sample must move 3/4 of a step, at most
one change per origin per 5 s); connecting takes 20 ms; a crashed origin's connections close at
once and discovery drops it 50 ms later. *Imbalance* is the largest \`clients / fair share\` over
the live origins (fair share ∝ weight; max/mean for equal weights). Each scenario runs once with
a fixed seed; the test asserts the same bounds with the same seeds.

### Distribution (10,000 keys, ranking only)

| origins | shares |
|---|---|
| weights 1, 2, 3 | ${shares.w123.map(pct).join(', ')} (fair 16.7 %, 33.3 %, 50.0 %) |
| 10 × weight 1 | max/mean ${fmt(shares.equalMaxMean)} |
| weight 1 at load 0.5 vs weight 1 | ${pct(shares.halfLoaded)} (fair 33.3 %) |
| weight 1 at load 1 vs weight 1 | ${pct(shares.fullLoaded)} (fair 1/21 = 4.8 %: a full origin still ranks) |

### Scale-out: 1 → 3 origins (equal weights; the new two become ready at t = 5 s)

Capacity 3300 clients per origin: the first origin alone runs at load 0.91, the fair share is 0.3.

| | weighted rendezvous | least-loaded first |
|---|---|---|
| every share within ±10 % of fair, for good, after | ${so(hrw).convergedAt == null ? 'never' : `${(so(hrw).convergedAt - SCALE_OUT_AT) / 1000} s`} | ${so(ll).convergedAt == null ? 'never (within 60 s)' : `${(so(ll).convergedAt - SCALE_OUT_AT) / 1000} s`} |
| clients per origin at 60 s | ${counts(so(hrw).end)} | ${counts(so(ll).end)} |
| imbalance 10, 20, 30, 40, 50, 60 s after | ${so(hrw).series.map(fmt).join(', ')} | ${so(ll).series.map(fmt).join(', ')} |
| lowest share of the first origin (fair 33.3 %) | ${pct(so(hrw).lowestShareOfFirst)} | ${pct(so(ll).lowestShareOfFirst)} |
| moves in 60 s (at least 2/3 of the clients must move: ${(2 * CLIENTS) / 3}) | ${so(hrw).totalMoves} | ${so(ll).totalMoves} |
| most moves in one second (limit: rate × clients = ${so(hrw).limit}) | ${so(hrw).maxMovesPerSecond} | ${so(ll).maxMovesPerSecond} |

### Join burst: 3 equal origins with ${CLIENTS} clients; ${CLIENTS / 2} more join within 1 s at t = 60 s

Capacity 5000 per origin (load 0.2 before, 0.3 after). A load report reaches the clients only
after the next sample (≤ 1 s) and at most every 5 s per origin, so everyone joining in between
sees the same "least loaded" origin.

| | weighted rendezvous | least-loaded first |
|---|---|---|
| clients per origin before | ${counts(bu(hrw).before)} | ${counts(bu(ll).before)} |
| clients per origin 2 s after the burst | ${counts(bu(hrw).justAfter)} | ${counts(bu(ll).justAfter)} |
| imbalance before / 2 s after / 30 s after | ${fmt(bu(hrw).beforeImbalance)} / ${fmt(bu(hrw).justAfterImbalance)} / ${fmt(bu(hrw).endImbalance)} | ${fmt(bu(ll).beforeImbalance)} / ${fmt(bu(ll).justAfterImbalance)} / ${fmt(bu(ll).endImbalance)} |
| rebalancing moves in the 30 s after | ${bu(hrw).laterMoves} | ${bu(ll).laterMoves} |

### Failure: weights 1, 2, 3, 4; origin-2 (weight 2) crashes at t = 60 s

Capacity 1000 per weight unit (load 0.3 at the fair share before, 0.375 after).

| | weighted rendezvous | least-loaded first |
|---|---|---|
| clients per origin before (1, 2, 3, 4) | ${counts(fa(hrw).before)} | ${counts(fa(ll).before)} |
| imbalance before | ${fmt(fa(hrw).beforeImbalance)} | ${fmt(fa(ll).beforeImbalance)} |
| clients that moved within 2 s / of them not on the dead origin | ${fa(hrw).movedInTwoSeconds} / ${fa(hrw).movedFromOthers} | ${fa(ll).movedInTwoSeconds} / ${fa(ll).movedFromOthers} |
| where the dead origin's clients went (1, 3, 4; fair 1/8, 3/8, 4/8) | ${counts(fa(hrw).landed)} | ${counts(fa(ll).landed)} |
| imbalance 30 s after | ${fmt(fa(hrw).endImbalance)} | ${fmt(fa(ll).endImbalance)} |
| worst imbalance after the failure | ${fmt(fa(hrw).peakImbalance)} | ${fmt(fa(ll).peakImbalance)} |
| moves after the first 2 s (rebalancing) | ${fa(hrw).laterMoves} | ${fa(ll).laterMoves} |

Failover itself is never rate-limited: the dead origin's clients reconnect at once; the rate
limit applies to rebalancing moves only.
`;
}

/** Ranking-only distribution numbers for the document. */
export function distribution() {
  const o = (id, extra = {}) => ({ id, ip: '10.0.0.1', port: 1, state: 'ready', since: '', ...extra });
  const share = (origins) => {
    const n = new Map(origins.map((x) => [x.id, 0]));
    for (let k = 0; k < 10_000; k++) {
      const id = rank(origins, `stream-${k}`, { count: 1 })[0].id;
      n.set(id, n.get(id) + 1);
    }
    return origins.map((x) => n.get(x.id) / 10_000);
  };
  const equal = share(Array.from({ length: 10 }, (_, i) => o(`origin-${i}`)));
  return {
    w123: share([o('a', { weight: 1 }), o('b', { weight: 2 }), o('c', { weight: 3 })]),
    equalMaxMean: Math.max(...equal) / 0.1,
    halfLoaded: share([o('a', { load: 0.5 }), o('b')])[0],
    fullLoaded: share([o('a', { load: 1 }), o('b')])[0],
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = process.argv[2] ?? fileURLToPath(new URL('../../../docs/ranking-simulation.md', import.meta.url));
  const hrw = await measure('hrw');
  const ll = await measure('least-loaded');
  writeFileSync(out, render(hrw, ll, { shares: distribution() }));
  console.log(JSON.stringify({ hrw, ll }, null, 1));
  console.log(`wrote ${out}`);
}
