// Real-browser end to end: silent failures — nothing closes the page's media socket, so only
// the controller's active probes (docs/DESIGN.md, "Active probes") or the client's own policies
// can get it back to a live origin.
//
// What runs (everything on 127.0.0.1, everything stopped in `after`, also on failure):
// - `origin-discovery dev --endpointslice-delay 1s --node-signals` with the default probe flags
//   (`--probe-interval 500ms --probe-timeout 250ms --probe-failures 2 --probe-successes 1`);
//   the Service `demo/echo` is annotated `origin-discovery.io/probe: http`. HTTP, because a
//   stopped process still completes TCP handshakes (the kernel's listen backlog): a TCP
//   probe would never notice it.
// - echo origins (lib/echo-server.mjs, one Node process each) on three simulated nodes,
//   registered as pods whose IP (sim.origin-discovery.io/pod-ip) is 127.0.0.1 and whose
//   container port is the process's port, so the probes reach the real process. The pages
//   start while only node-a's 6 origins exist; then node-b and node-c get 6 each. No page
//   moves (the client does not rebalance by default, the VIP never moves a connection), so
//   all pages sit on node-a and one failure round affects every one of them.
// - Debian's chromium with SAMPLES (20) origin-discovery pages (each its own stream key, the
//   JS client served by the controller, session state published on every connection) and
//   SAMPLES baseline pages in the same run: the Service-VIP page of failover.test.mjs (one
//   fixed address = lib/vip-proxy.mjs, kube-proxy-like: random ready endpoint from the
//   EndpointSlices; 3 s retry floor). A frozen origin never closes the baseline's socket, so
//   the baseline page gets an application liveness check the origin-discovery page does not
//   have: no echo for 3 s (or an attempt not open within 3 s) → drop and retry. Without it,
//   the baseline would never recover until Kubernetes deletes the pod.
// - Every page sends a message every 200 ms (40 pages on 2 cores); every echo names the origin
//   that answered. Every page has viewer proxies of its own (lib/viewer-proxy.mjs, one per
//   page and role: separate viewers' networks; a browser also queues WebSocket handshakes per
//   address, which one shared address would turn into a queue across pages), all in one child
//   process (`ViewerNet`) so that forwarding never waits for the test process. In scenarios
//   1–2 pages talk to the controller and the origins directly (no extra hop through the busy
//   test process in what they measure); before scenario 3 every page moves onto its proxies
//   (`window.reroute`: the origin-discovery page opens a new watch and handle there with the
//   same session state).
// - Before a failure round the pool gets more origins when needed, so that the victims are at
//   most 40 % of it: --probe-panic-threshold 50 would rightly keep them if more than half
//   the pool failed, and a live origin the reconnect burst on a loaded 2-core machine keeps
//   from answering two probes in time counts as failing too.
//
// Scenarios (SAMPLES pages of each kind affected; rounds until then, one when every page sits
// on the victims):
// 1. Dead node: every origin on the node carrying the most pages is SIGSTOPped and the node
//    killed in the simulator at t0 (`POST /sim/v1/nodes/{name}/kill`: its Lease is no longer
//    renewed; with --node-signals the controller would act after the 20 s lease grace,
//    Kubernetes after 40 s). Time = first echo from another origin − t0. origin-discovery:
//    p95 ≤ 2 s (asserted; at most 1 s of it is detection: a probe within the interval, its timeout, the re-check half an interval later and its timeout),
//    and every victim's pod still Ready when its page moved (checked: only the probe knew).
//    Baseline: measured, capped at 15 s. Then the frozen processes are killed, their pods
//    deleted, the node revived.
// 2. Frozen origin: every origin carrying a page (after scenario 1: those on node-b and
//    node-c) is SIGSTOPped at t0 — sockets open, port accepting, pod still Ready (checked).
//    Same measurement and bound.
// 3. Viewer-side outage of 5 s and of 30 s: the same pages' viewer proxies stop forwarding
//    without closing anything (and, at the network's return, deliver what they held:
//    optimistic TCP). Now the origin-discovery pages get the baseline's 3 s liveness check too
//    (the application noticing the stall), so the client's failover and back-off run through
//    the outage. All pages' outages run at once (starts staggered by 100 ms, so the return is
//    not one burst of 40 reconnects on two cores). Recovery = first echo received after the
//    return − the return; 100 % of pages must recover and origin-discovery's p95 must be
//    ≤ 1 s (asserted); baseline measured.
// 4. Session state: every media connection of every origin-discovery page that echoed was
//    opened with the page's session state — the origin recorded the session message that is
//    the connection's first message, and it equals the state the page was given (asserted).
//
// Results: printed at the end and written to `test-artifacts/silent-failures.json`.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, HERE, Sim, cleanup, launchBrowser, percentile, serveStatic, sleep, startDev, waitFor, withTimeout } from './lib/harness.mjs';
import { EchoFleet, NAMESPACE, POOL, SERVICE, echoService } from './lib/origins.mjs';
import { VipProxy } from './lib/vip-proxy.mjs';
import { ViewerNet } from './lib/viewer-proxy.mjs';

const SAMPLES = Number(process.env.BROWSER_E2E_SAMPLES ?? 20);
const NODES = ['node-a', 'node-b', 'node-c'];
/** origins on node-a, where every page starts */
const FIRST = 6;
/** origins added on each other node once the pages run */
const PER_OTHER_NODE = 6;
/**
 * Victims are at most this share of the pool. Below the panic threshold (50 %) with room to
 * spare: a live origin the burst of reconnects (or a loaded machine) keeps from answering two
 * probes in time is removed too, and a few such would otherwise tip the pool into panic mode,
 * which rightly lists the victims again.
 */
const MAX_VICTIM_SHARE = 0.4;
const MAX_ROUNDS = 4;
/** pages opened at once (start-up competes with the running pages for the two cores) */
const OPEN_BATCH = 8;
const ECHO_INTERVAL_MS = 200;
const FREEZE_P95_BOUND_MS = 2_000;
const OUTAGE_P95_BOUND_MS = 1_000;
const STALL_MS = 3_000;
const BASELINE_RETRY_FLOOR_MS = 3_000;
const BASELINE_CAP_MS = 15_000;
/** an origin-discovery page not back within this long failed the round */
const OD_CAP_MS = 10_000;
const OUTAGES_MS = [5_000, 30_000];
const RECOVERY_WINDOW_MS = 20_000;
const OUTAGE_STAGGER_MS = 100;

/** @type {{api: string, admin: string, sim: string, log: string}} */ let dev;
/** @type {Sim} */ let sim;
/** @type {EchoFleet} */ let fleet;
/** @type {VipProxy} */ let vip;
/** @type {ViewerNet} */ let viewers;
/** @type {import('playwright-core').BrowserContext} */ let browser;
/** @type {string} */ let pagesUrl;

/**
 * @typedef {{page: import('playwright-core').Page, kind: 'od' | 'baseline', label: string, net: {id: number, ws: string, base: (port: number) => string}[]}} EchoPage
 */
/** @type {EchoPage[]} */ let pages = [];
/** Every origin-discovery page's session checks (filled before the pages close). */
/** @type {{label: string, session: any, conns: number[]}[]} */ const sessionPages = [];

const results = {
  startedAt: new Date().toISOString(),
  setup: {
    samples: SAMPLES,
    firstOrigins: `${FIRST} on node-a`,
    laterOrigins: `${PER_OTHER_NODE} on each of ${NODES.slice(1).join(', ')}`,
    echoIntervalMs: ECHO_INTERVAL_MS,
    probeFlags: 'defaults: --probe-interval 500ms --probe-timeout 250ms --probe-failures 2 --probe-successes 1 --probe-panic-threshold 50',
    probe: 'http (Service annotation)',
    endpointSliceDelay: '1s',
    nodeSignals: true,
    baselineRetryFloorMs: BASELINE_RETRY_FLOOR_MS,
    baselineStallMs: STALL_MS,
    outageStallMs: STALL_MS,
    outageStaggerMs: OUTAGE_STAGGER_MS,
    baselineCapMs: BASELINE_CAP_MS,
    chromium: '',
  },
  /** seconds each phase took */
  /** @type {Record<string, number>} */ phases: {},
  /** @type {any[]} */ deadNodeRounds: [],
  /** @type {any[]} */ frozenRounds: [],
  /** @type {any[]} */ outages: [],
  /** @type {any} */ session: {},
  /** @type {any} */ summary: {},
};

// ---------------------------------------------------------------------------------------------
// helpers

/**
 * p50/p95/max. With `cap`, a missing value (`null`: not back within the cap) counts as longer
 * than any other and a statistic that lands on one reads `">CAP"`; without, missing values
 * are left out.
 * @param {(number | null | undefined)[]} values
 * @param {number} [cap]
 */
function stats(values, cap) {
  const v = values.map((x) => (Number.isFinite(x) ? /** @type {number} */ (x) : cap ? Infinity : NaN)).filter((x) => !Number.isNaN(x));
  const show = (/** @type {number} */ x) => (x === Infinity ? `>${cap}` : x);
  return {
    n: v.filter(Number.isFinite).length,
    p50: show(percentile(v, 50)),
    p95: show(percentile(v, 95)),
    max: v.length ? show(Math.max(...v)) : NaN,
  };
}

/** Runs `fn`, recording how long it took in `results.phases[name]`. */
async function phase(name, fn) {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    results.phases[name] = (Date.now() - t) / 1000;
    console.log(`phase ${name}: ${results.phases[name].toFixed(1)} s`);
  }
}

/** Waits until `n` live origins are listed ready and the VIP proxy routes to them. */
async function waitPool(n) {
  await waitFor(async () => (await fleet.liveReady(dev.api)).size >= n, { timeout: 30_000, interval: 100, what: `${n} ready origins in ${POOL}` });
  const alive = new Set(fleet.alive().map((o) => o.name));
  await waitFor(() => vip.endpoints.filter((e) => e.ready && alive.has(e.pod)).length >= n, {
    timeout: 10_000,
    what: `the VIP proxy to see ${n} ready origins`,
  });
}

/** Registers `n` more origins, spread over `nodes`, and waits until they are listed. */
async function grow(n, nodes) {
  if (n <= 0) return;
  const want = fleet.alive().length + n;
  await fleet.ensureSpares(n);
  await Promise.all(Array.from({ length: n }, (_, i) => fleet.add(nodes[i % nodes.length])));
  await waitPool(want);
}

/** Adds origins until `victims` are at most MAX_VICTIM_SHARE of the live pool. */
async function dilute(victims, nodes) {
  await grow(Math.ceil(victims / MAX_VICTIM_SHARE) - fleet.alive().length, nodes);
}

async function podReady(name) {
  const pod = await sim.getPod(NAMESPACE, name);
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/**
 * Opens one echo page and waits until it started.
 * @param {'od' | 'baseline'} kind
 * @param {string} label
 * @param {Record<string, string>} query
 * @param {EchoPage['net']} net the page's viewer proxies
 */
async function openPage(kind, label, query, net) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  const q = new URLSearchParams({ interval: String(ECHO_INTERVAL_MS), page: label, ...query });
  await page.goto(`${pagesUrl}/echo.html?${q}`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  await page.waitForFunction(() => /** @type {any} */ (window).T?.ready || /** @type {any} */ (window).T?.error, null, { timeout: 60_000 });
  const err = await page.evaluate(() => /** @type {any} */ (window).T.error);
  assert.equal(err, null, `echo page ${label} failed to start: ${err}; console: ${errors.join(' | ')}`);
  return /** @type {EchoPage} */ ({ page, kind, label, net });
}

/**
 * SAMPLES origin-discovery and SAMPLES baseline pages, each behind viewer proxies of its own.
 */
async function openPages() {
  const proxy = () => viewers.proxy();
  const od = Array.from({ length: SAMPLES }, (_, i) => async () => {
    const label = `od${i}`;
    const net = [await proxy(), await proxy()];
    return openPage(
      'od',
      label,
      { mode: 'od', api: dev.api, pool: POOL, key: `stream-${i}`, session: '1' },
      net,
    );
  });
  const base = Array.from({ length: SAMPLES }, (_, i) => async () => {
    const label = `base${i}`;
    const net = [await proxy()];
    return openPage(
      'baseline',
      label,
      {
        mode: 'baseline',
        target: await vip.addListener(), // each viewer its own Service address
        retryFloor: String(BASELINE_RETRY_FLOOR_MS),
        stall: String(STALL_MS),
      },
      net,
    );
  });
  // Interleaved, so that staggered events alternate between the two kinds.
  const all = od.flatMap((o, i) => [o, base[i]]);
  const opened = [];
  for (let i = 0; i < all.length; i += OPEN_BATCH) opened.push(...(await Promise.all(all.slice(i, i + OPEN_BATCH).map((open) => open()))));
  return opened;
}

/** Waits until the page echoes steadily and returns the origin answering. */
async function echoingOn(p, timeout) {
  const h = await p.page.waitForFunction(
    () => {
      const T = /** @type {any} */ (window).T;
      const s = T?.segments[T.segments.length - 1];
      return s && s.count >= 3 && Date.now() - s.last < 400 ? s.origin : null;
    },
    null,
    { timeout, polling: 50 },
  );
  const origin = await h.jsonValue();
  await h.dispose();
  return /** @type {string} */ (origin);
}

/** Every page echoing steadily; the origin each is on (a baseline page's: the one behind the VIP). */
async function allEchoing(timeout, what) {
  return withTimeout(Promise.all(pages.map((p) => echoingOn(p, timeout))), timeout + 5_000, what);
}

/** The first echo from an origin not in `excluded` received at or after `t0`. */
async function firstEchoAfter(p, excluded, t0, timeout) {
  const h = await p.page.waitForFunction(
    ({ excluded, t0 }) => {
      const T = /** @type {any} */ (window).T;
      let best = null;
      for (let i = T.segments.length - 1; i >= 0; i--) {
        const s = T.segments[i];
        if (s.last < t0) break;
        if (!excluded.includes(s.origin) && s.first >= t0) best = s;
      }
      return best ? { t: best.first, origin: best.origin } : null;
    },
    { excluded, t0 },
    { timeout, polling: 50 },
  );
  const v = await h.jsonValue();
  await h.dispose();
  return /** @type {{t: number, origin: string}} */ (v);
}

/** The page's first echo at or after `t` (the end of the silence that covers `t`). */
async function firstEchoSince(p, t, timeout) {
  const h = await p.page.waitForFunction(
    (t) => {
      const T = /** @type {any} */ (window).T;
      if (T.lastReplyAt < t) return null;
      const gap = T.gaps.find((g) => g.to >= t);
      return gap ? { t: gap.to, conn: gap.conn, origin: gap.origin, silentFrom: gap.from } : { t: T.lastReplyAt, conn: null, origin: null, silentFrom: null };
    },
    t,
    { timeout, polling: 50 },
  );
  const v = await h.jsonValue();
  await h.dispose();
  return v;
}

async function eventsSince(p, t0) {
  return p.page.evaluate((t0) => /** @type {any} */ (window).T.events.filter((e) => e.t >= t0), t0);
}

/** Records the origin-discovery pages' session data, for the final check. */
async function keepSessionData() {
  for (const p of pages.filter((x) => x.kind === 'od')) {
    const d = await p.page.evaluate(() => {
      const T = /** @type {any} */ (window).T;
      return { session: T.session, conns: [...new Set(T.segments.map((s) => s.conn))] };
    });
    sessionPages.push({ label: p.label, ...d });
  }
}

/**
 * One round of a failure that freezes `victims` at t0 (and whatever `extra` does then):
 * measures every page on a victim, then kills the victims and deletes their pods.
 */
async function failureRound(round, origins, victims, extra = async () => {}) {
  const on = new Map(pages.map((p, i) => [p, origins[i]]));
  const affected = pages.filter((p) => victims.includes(on.get(p)));
  const pool = fleet.alive().length;
  const t0 = Date.now();
  for (const v of victims) fleet.freeze(v);
  await extra();
  /** @type {any} */
  const rec = { round, t0, victims, pool, od: [], baseline: [] };
  const measured = affected.map(async (p) => {
    const cap = p.kind === 'od' ? OD_CAP_MS : BASELINE_CAP_MS;
    /** @type {any} */
    const r = { page: p.label, from: on.get(p) };
    try {
      const e = await firstEchoAfter(p, victims, t0, cap);
      r.ms = e.t - t0;
      r.to = e.origin;
    } catch {
      r.ms = null; // not back within the cap
    }
    if (p.kind === 'od') {
      const evs = await eventsSince(p, t0);
      const removed = evs.find((e) => e.type === 'change' && e.removed.some((x) => victims.includes(x.split(':')[0])));
      r.pushRemovedMs = removed ? removed.t - t0 : null;
      r.steps = evs
        .filter((e) => ['change', 'migrate', 'failover', 'connect', 'ws-new', 'ws-open', 'ws-close', 'client-close'].includes(e.type))
        .map((e) => ({ ms: e.t - t0, ...e, t: undefined }));
      // Kubernetes still said Ready when the page had moved: only the probe knew.
      r.podStillReady = await podReady(r.from);
    }
    rec[p.kind].push(r);
  });
  await Promise.all(measured);
  for (const v of victims) fleet.kill(v);
  await Promise.all(victims.map((v) => sim.deletePod(NAMESPACE, v, 0)));
  return rec;
}

function done(rounds) {
  const n = (kind) => rounds.reduce((a, r) => a + r[kind].length, 0);
  return n('od') >= SAMPLES && n('baseline') >= SAMPLES;
}

/** Per victim origin (`from`), the earliest recovery among its pages. */
function firstPerVictim(samples) {
  /** @type {Map<string, number>} */
  const first = new Map();
  for (const r of samples) {
    if (r.ms != null) first.set(r.from, Math.min(first.get(r.from) ?? Infinity, r.ms));
  }
  return [...first.values()];
}

function summarize(rounds) {
  const od = rounds.flatMap((r) => r.od);
  const base = rounds.flatMap((r) => r.baseline);
  return {
    rounds: rounds.length,
    od: { ...stats(od.map((r) => r.ms), OD_CAP_MS), recovered: od.filter((r) => r.ms != null).length, samples: od.length, capMs: OD_CAP_MS },
    odPushRemovedMs: stats(od.map((r) => r.pushRemovedMs)),
    // The pages of one victim share its detection: per victim origin, its first page's time
    // (how many independent failures the samples stand for, and their spread).
    odPerVictim: stats(firstPerVictim(od)),
    odPodStillReady: od.filter((r) => r.podStillReady).length,
    baseline: {
      ...stats(base.map((r) => r.ms), BASELINE_CAP_MS),
      recovered: base.filter((r) => r.ms != null).length,
      samples: base.length,
      capMs: BASELINE_CAP_MS,
    },
  };
}

function assertRounds(name, rounds) {
  const s = summarize(rounds);
  const od = rounds.flatMap((r) => r.od);
  assert.ok(od.length >= SAMPLES, `${name}: only ${od.length} origin-discovery samples in ${rounds.length} rounds`);
  assert.equal(s.od.recovered, od.length, `${name}: origin-discovery pages not back within ${OD_CAP_MS} ms: ${JSON.stringify(od.filter((r) => r.ms == null))}`);
  assert.ok(s.od.p95 <= FREEZE_P95_BOUND_MS, `${name}: origin-discovery p95 ${s.od.p95} ms > ${FREEZE_P95_BOUND_MS} ms: ${JSON.stringify(od)}`);
  assert.equal(s.odPodStillReady, od.length, `${name}: a victim's pod was no longer Ready when its page moved (not the probe's doing)`);
}

function logRound(what, rec) {
  const od = rec.od.map((r) => r.ms ?? `>${OD_CAP_MS}`).join(', ');
  const base = rec.baseline.map((r) => r.ms ?? `>${BASELINE_CAP_MS}`).join(', ');
  console.log(`${what} round ${rec.round}: ${rec.victims.length} of ${rec.pool} origins (${rec.victims.join(' ')}); origin-discovery [${od}] ms; baseline [${base}] ms`);
}

// ---------------------------------------------------------------------------------------------

describe('browser: silent failures (dead node, frozen origin, viewer outage)', { concurrency: 1 }, () => {
  before(async () => {
    await phase('setup', async () => {
      const t = Date.now();
      dev = await startDev({ extraArgs: ['--endpointslice-delay', '1s', '--node-signals'], logName: 'silent-failures-dev.log' });
      console.log(`setup: dev up after ${((Date.now() - t) / 1000).toFixed(1)} s`);
      sim = new Sim(dev.sim);
      await sim.createService(NAMESPACE, echoService({ probe: 'http' }));
      fleet = new EchoFleet(sim, 'silent-failures-origins.log');
      // node-a's and the later origins' processes, started now rather than while pages run
      // (the frozen round's growth is started before that round).
      const later = PER_OTHER_NODE * (NODES.length - 1);
      const started = await Promise.allSettled([fleet.ensureSpares(FIRST + later), launchBrowser()]);
      for (const r of started) if (r.status === 'rejected') throw r.reason;
      browser = /** @type {any} */ (started[1]).value;
      results.setup.chromium = browser.browser()?.version() ?? '';
      await Promise.all(Array.from({ length: FIRST }, () => fleet.add(NODES[0])));
      await waitFor(async () => (await fleet.liveReady(dev.api)).size >= FIRST, { timeout: 30_000, what: `${FIRST} ready origins in ${POOL}` });
      vip = await new VipProxy({ sim, namespace: NAMESPACE, service: SERVICE, portOf: (p) => fleet.portOf(p) }).start();
      await waitPool(FIRST);
      pagesUrl = (await serveStatic(path.join(HERE, 'pages'))).url;
      viewers = await new ViewerNet().start();
      console.log(`setup: origins, VIP and browser up after ${((Date.now() - t) / 1000).toFixed(1)} s`);
      pages = await openPages();
      console.log(`setup: pages open after ${((Date.now() - t) / 1000).toFixed(1)} s`);
      await allEchoing(30_000, 'every page echoing');
      await grow(later, NODES.slice(1));
    });
  });

  after(async () => {
    try {
      writeSummary();
    } finally {
      await cleanup();
    }
  });

  test(`dead node (its origins frozen, lease no longer renewed): origin-discovery p95 ≤ ${FREEZE_P95_BOUND_MS} ms`, { timeout: 300_000 }, async () => {
    await phase('deadNode', async () => {
      for (let round = 1; round <= MAX_ROUNDS && !done(results.deadNodeRounds); round++) {
        const origins = await allEchoing(30_000, `dead-node round ${round}: every page echoing`);
        const byNode = new Map(NODES.map((n) => [n, 0]));
        pages.forEach((p, i) => {
          const node = fleet.byName.get(origins[i])?.node;
          if (node) byNode.set(node, byNode.get(node) + (p.kind === 'od' ? 1.01 : 1));
        });
        const node = [...byNode.entries()].sort((a, b) => b[1] - a[1])[0][0];
        const victims = fleet.alive().filter((o) => o.node === node).map((o) => o.name);
        await dilute(victims.length, NODES.filter((n) => n !== node));
        const rec = await failureRound(round, origins, victims, () => sim.killNode(node));
        rec.node = node;
        await sim.reviveNode(node);
        results.deadNodeRounds.push(rec);
        logRound(`dead-node (${node})`, rec);
      }
    });
    assertRounds('dead node', results.deadNodeRounds);
  });

  test(`frozen origin (SIGSTOP, pod still Ready): origin-discovery pages echo on another origin, p95 ≤ ${FREEZE_P95_BOUND_MS} ms`, { timeout: 300_000 }, async () => {
    await phase('frozen', async () => {
      for (let round = 1; round <= MAX_ROUNDS && !done(results.frozenRounds); round++) {
        const origins = await allEchoing(30_000, `frozen round ${round}: every page echoing`);
        // Every origin carrying a page; the pool grows so that they stay below half of it.
        const victims = [...new Set(origins)];
        await dilute(victims.length, NODES);
        const rec = await failureRound(round, origins, victims);
        results.frozenRounds.push(rec);
        logRound('frozen', rec);
      }
    });
    assertRounds('frozen origin', results.frozenRounds);
  });

  test(`viewer-side outage ${OUTAGES_MS.map((d) => `${d / 1000} s`).join(' and ')}: every page recovers, origin-discovery p95 ≤ ${OUTAGE_P95_BOUND_MS} ms after the return`, { timeout: 300_000 }, async () => {
    await phase('reroute', async () => {
      // Every page onto its viewer proxies (od: discovery watch and media; baseline: media).
      const apiPort = Number(new URL(dev.api).port);
      const before = await Promise.all(pages.map((p) => p.page.evaluate(() => /** @type {any} */ (window).T.segments.at(-1)?.conn ?? 0)));
      await viewers.allow([apiPort, ...vip.ports, ...[...fleet.byName.values()].map((o) => o.port)]);
      const tReroute = Date.now();
      await Promise.all(pages.map((p) => p.page.evaluate(([v, d]) => /** @type {any} */ (window).reroute(v, d), [p.net[0].ws, p.net[1]?.base(apiPort)])));
      await Promise.all(
        pages.map((p, i) =>
          p.page.waitForFunction(
            (c) => {
              const s = /** @type {any} */ (window).T.segments.at(-1);
              return s && s.conn > c && s.count >= 3;
            },
            before[i],
            { timeout: 30_000, polling: 100 },
          ),
        ),
      );
      await Promise.all(
        pages
          .filter((p) => p.kind === 'od')
          .map((p) => p.page.waitForFunction((t) => /** @type {any} */ (window).T.events.some((e) => e.type === 'sync' && e.t >= t), tReroute, { timeout: 30_000 })),
      );
      const links = await viewers.links();
      const unrouted = pages.filter((p) => p.net.some((v) => !links[v.id])).map((p) => p.label);
      assert.deepEqual(unrouted, [], 'pages whose media does not go through their viewer proxy');
      // The application notices a stalled media socket on its own now (the baseline has all along).
      await Promise.all(pages.filter((p) => p.kind === 'od').map((p) => p.page.evaluate((ms) => /** @type {any} */ (window).setStall(ms), STALL_MS)));
    });
    for (const outage of OUTAGES_MS) {
      await phase(`outage${outage / 1000}s`, async () => {
        await allEchoing(30_000, 'every page echoing before the outage');
        // Steady state: every page's discovery watch is connected (its back-off reset).
        await Promise.all(
          pages
            .filter((p) => p.kind === 'od')
            .map((p) =>
              p.page.waitForFunction(
                () => /** @type {any} */ (window).T.events.some((e) => e.type === 'sync') && /** @type {any} */ (window).handle?.state === 'connected',
                null,
                { timeout: 30_000 },
              ),
            ),
        );
        /** @type {any} */
        const rec = { outageMs: outage, staggerMs: OUTAGE_STAGGER_MS, od: [], baseline: [] };
        await Promise.all(
          pages.map(async (p, i) => {
            await sleep(i * OUTAGE_STAGGER_MS);
            const tDown = Date.now();
            await viewers.outage(p.net.map((v) => v.id), true);
            await sleep(outage); // the outage itself
            const tUp = Date.now();
            await viewers.outage(p.net.map((v) => v.id), false);
            /** @type {any} */
            const r = { page: p.label, tDown, tUp };
            try {
              const e = await firstEchoSince(p, tUp, RECOVERY_WINDOW_MS);
              r.ms = e.t - tUp;
              r.origin = e.origin;
            } catch {
              r.ms = null;
            }
            const evs = await eventsSince(p, tDown);
            r.stalls = evs.filter((e) => e.type === 'stall').length;
            r.newConnections = evs.filter((e) => e.type === 'ws-new').length;
            const sync = evs.find((e) => e.type === 'sync' && e.t >= tUp);
            if (p.kind === 'od') r.discoverySyncMs = sync ? sync.t - tUp : null;
            r.steps = evs
              .filter((e) => ['stall', 'failover', 'migrate', 'connect', 'retry', 'ws-new', 'ws-open', 'ws-close', 'client-close', 'sync', 'discovery-disconnect'].includes(e.type))
              .map((e) => ({ ms: e.t - tUp, ...e, t: undefined }));
            rec[p.kind].push(r);
          }),
        );
        results.outages.push(rec);
        const fmt = (rs) => rs.map((r) => r.ms ?? 'FAILED').join(', ');
        console.log(`outage ${outage / 1000} s: origin-discovery [${fmt(rec.od)}] ms after the return; baseline [${fmt(rec.baseline)}] ms`);
      });
    }
    for (const rec of results.outages) {
      const od = stats(rec.od.map((r) => r.ms), RECOVERY_WINDOW_MS);
      assert.equal(od.n, rec.od.length, `outage ${rec.outageMs} ms: origin-discovery pages not back within ${RECOVERY_WINDOW_MS} ms: ${JSON.stringify(rec.od.filter((r) => r.ms == null))}`);
      assert.ok(od.p95 <= OUTAGE_P95_BOUND_MS, `outage ${rec.outageMs} ms: origin-discovery p95 ${od.p95} ms after the return > ${OUTAGE_P95_BOUND_MS} ms: ${JSON.stringify(rec.od)}`);
    }
  });

  test('every media connection of an origin-discovery page re-published the same session state', async () => {
    await keepSessionData();
    /** @type {any[]} */
    const bad = [];
    let checked = 0;
    for (const p of sessionPages) {
      for (const conn of p.conns) {
        const recs = fleet.sessions.filter((s) => s.client === 'od' && s.page === p.label && s.conn === conn);
        checked++;
        if (recs.length !== 1) bad.push({ page: p.label, conn, records: recs.length });
        else if (JSON.stringify(recs[0].session) !== JSON.stringify(p.session)) bad.push({ page: p.label, conn, got: recs[0].session, want: p.session });
      }
      assert.ok(p.session && p.session.viewer === p.label, `page ${p.label} had no session state`);
    }
    // Nothing recorded that is not a page's own state.
    for (const s of fleet.sessions.filter((x) => x.client === 'od')) {
      const p = sessionPages.find((x) => x.label === s.page);
      if (!p || JSON.stringify(s.session) !== JSON.stringify(p.session)) bad.push({ unexpected: s });
    }
    const reconnects = sessionPages.reduce((a, p) => a + Math.max(0, p.conns.length - 1), 0);
    results.session = { pages: sessionPages.length, connectionsChecked: checked, reconnects, recordsAtOrigins: fleet.sessions.filter((x) => x.client === 'od').length, mismatches: bad };
    assert.ok(reconnects >= SAMPLES, `only ${reconnects} reconnects to check`);
    assert.deepEqual(bad, [], 'connections whose origin did not get the page session state');
  });
});

function writeSummary() {
  const outage = (ms) => {
    const rec = results.outages.find((r) => r.outageMs === ms);
    if (!rec) return null;
    const part = (rs) => ({ ...stats(rs.map((r) => r.ms), RECOVERY_WINDOW_MS), recovered: rs.filter((r) => r.ms != null).length, samples: rs.length });
    return {
      od: part(rec.od),
      baseline: part(rec.baseline),
      odDiscoverySyncMs: stats(rec.od.map((r) => r.discoverySyncMs)),
      odPagesThatReconnected: rec.od.filter((r) => r.newConnections > 0).length,
    };
  };
  results.summary = {
    deadNode: summarize(results.deadNodeRounds),
    frozen: summarize(results.frozenRounds),
    outage5s: outage(5_000),
    outage30s: outage(30_000),
    session: { connectionsChecked: results.session.connectionsChecked, reconnects: results.session.reconnects, mismatches: results.session.mismatches?.length },
  };
  results.finishedAt = new Date().toISOString();
  writeFileSync(path.join(ARTIFACTS, 'silent-failures.json'), `${JSON.stringify(results, null, 2)}\n`);
  const s = results.summary;
  const row = (name, o) =>
    o
      ? `| ${name} | ${o.od.recovered}/${o.od.samples} | ${o.od.p50} / ${o.od.p95} / ${o.od.max} | ${o.baseline.recovered}/${o.baseline.samples} | ${o.baseline.p50} / ${o.baseline.p95} / ${o.baseline.max} |`
      : `| ${name} | not run | | | |`;
  console.log(
    [
      '',
      `==== browser silent-failure summary (ms; baseline capped at ${BASELINE_CAP_MS / 1000} s in scenarios 1–2) ====`,
      '| scenario | origin-discovery recovered | p50 / p95 / max | baseline recovered | p50 / p95 / max |',
      '|---|---|---|---|---|',
      row('dead node, from the kill', s.deadNode.od.samples ? s.deadNode : null),
      row('frozen origin (SIGSTOP), from the freeze', s.frozen.od.samples ? s.frozen : null),
      row('viewer outage 5 s, from the return', s.outage5s),
      row('viewer outage 30 s, from the return', s.outage30s),
      `session state: ${s.session.connectionsChecked ?? 0} connections checked (${s.session.reconnects ?? 0} reconnects), ${s.session.mismatches ?? 'n/a'} mismatches`,
      `phases (s): ${Object.entries(results.phases).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`,
      `details: ${path.relative(process.cwd(), path.join(ARTIFACTS, 'silent-failures.json'))}`,
      '',
    ].join('\n'),
  );
}
