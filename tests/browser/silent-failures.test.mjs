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
// - 12 echo origins (lib/echo-server.mjs, one Node process each), 4 on each simulated node
//   (node-a/b/c), registered as pods whose IP (sim.origin-discovery.io/pod-ip) is 127.0.0.1
//   and whose container port is the process's port, so the probes reach the real process.
// - Debian's chromium with SAMPLES (20) origin-discovery pages (each its own stream key, the
//   JS client served by the controller, session state published on every connection) and
//   SAMPLES baseline pages in the same run: the Service-VIP page of failover.test.mjs (one
//   fixed address = lib/vip-proxy.mjs, kube-proxy-like: random ready endpoint from the
//   EndpointSlices; 3 s retry floor). A frozen origin never closes the baseline's socket, so
//   the baseline page gets an application liveness check the origin-discovery page does not
//   have: no echo for 3 s (or an attempt not open within 3 s) → drop and retry. Without it,
//   the baseline would never recover until Kubernetes deletes the pod.
// - Every page sends a message every 100 ms (40 pages on 2 cores); every echo names the origin
//   that answered.
//
// Scenarios:
// 1. Frozen origin (rounds until SAMPLES pages of each kind were affected): up to 4 of the 12
//    origins (below the 50 % panic threshold), those carrying the most origin-discovery pages,
//    are SIGSTOPped at t0 — sockets open, port accepting, pod still Ready (checked). Time =
//    first echo from another origin − t0. origin-discovery: p95 ≤ 2 s (asserted; at most
//    interval × failures + timeout ≈ 1.3 s of it is detection). Baseline: measured, capped at
//    15 s. Then the frozen processes are killed, their pods deleted and replaced.
// 2. Dead node: every origin on one node SIGSTOPped and the node killed in the simulator
//    (`POST /sim/v1/nodes/{name}/kill`: its Lease is no longer renewed; with --node-signals the
//    controller would act after the 20 s lease grace, Kubernetes after 40 s). Same measurement
//    and bound; the node is revived and refilled after each round.
// 3. Viewer-side outage of 5 s and of 30 s: a fresh set of pages reaches discovery *and* media
//    through lib/viewer-proxy.mjs, which stops forwarding without closing anything (and, at
//    the network's return, delivers what it held: optimistic TCP). Here both page kinds have
//    the 3 s liveness check (the application noticing the stall), so the client's failover
//    and back-off run through the outage. All pages share the outage (one proxy), in parallel.
//    Recovery = first echo received after the return − the return; 100 % of pages must
//    recover and origin-discovery's p95 must be ≤ 1 s (asserted); baseline measured.
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
import { ViewerProxy } from './lib/viewer-proxy.mjs';

const SAMPLES = Number(process.env.BROWSER_E2E_SAMPLES ?? 20);
const NODES = ['node-a', 'node-b', 'node-c'];
const PER_NODE = 4;
const POOL_SIZE = NODES.length * PER_NODE;
const MAX_FROZEN = 4; // of 12: below --probe-panic-threshold 50
const MAX_ROUNDS = 8;
const ECHO_INTERVAL_MS = 100;
const FREEZE_P95_BOUND_MS = 2_000;
const OUTAGE_P95_BOUND_MS = 1_000;
const STALL_MS = 3_000;
const BASELINE_RETRY_FLOOR_MS = 3_000;
const BASELINE_CAP_MS = 15_000;
const OUTAGES_MS = [5_000, 30_000];
const RECOVERY_WINDOW_MS = 20_000;
const OUTAGE_STAGGER_MS = 150;

/** @type {{api: string, admin: string, sim: string, log: string}} */ let dev;
/** @type {Sim} */ let sim;
/** @type {EchoFleet} */ let fleet;
/** @type {VipProxy} */ let vip;
/** @type {import('playwright-core').BrowserContext} */ let browser;
/** @type {string} */ let pagesUrl;

/**
 * @typedef {{page: import('playwright-core').Page, kind: 'od' | 'baseline', label: string}} EchoPage
 */
/** @type {EchoPage[]} */ let directPages = [];
/** Every origin-discovery page's session checks (filled before its page closes). */
/** @type {{label: string, session: any, conns: number[]}[]} */ const sessionPages = [];

const results = {
  startedAt: new Date().toISOString(),
  setup: {
    samples: SAMPLES,
    poolSize: POOL_SIZE,
    nodes: NODES,
    echoIntervalMs: ECHO_INTERVAL_MS,
    probeFlags: 'defaults: --probe-interval 500ms --probe-timeout 250ms --probe-failures 2 --probe-successes 1 --probe-panic-threshold 50',
    probe: 'http (Service annotation)',
    endpointSliceDelay: '1s',
    nodeSignals: true,
    baselineRetryFloorMs: BASELINE_RETRY_FLOOR_MS,
    baselineStallMs: STALL_MS,
    outageStallMs: STALL_MS,
    baselineCapMs: BASELINE_CAP_MS,
    chromium: '',
  },
  /** @type {any[]} */ frozenRounds: [],
  /** @type {any[]} */ deadNodeRounds: [],
  /** @type {any[]} */ outages: [],
  /** @type {any} */ session: {},
  /** @type {any} */ summary: {},
};

// ---------------------------------------------------------------------------------------------
// helpers

function stats(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return {
    n: v.length,
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    max: v.length ? Math.max(...v) : NaN,
  };
}

async function snapshot() {
  const res = await fetch(`${dev.api}/v1/pools/${POOL}`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET /v1/pools/${POOL}: HTTP ${res.status}`);
  return res.json();
}

/** Origins the controller lists `ready` whose process runs (not frozen, not killed). */
async function liveReady() {
  const alive = new Set(fleet.alive().map((o) => o.name));
  const snap = await snapshot();
  return new Set(snap.origins.filter((o) => o.state === 'ready' && alive.has(o.id)).map((o) => o.id));
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
 */
async function openPage(kind, label, query) {
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
  return /** @type {EchoPage} */ ({ page, kind, label });
}

/**
 * SAMPLES origin-discovery and SAMPLES baseline pages.
 * @param {string} prefix page label prefix
 * @param {{viewer?: (label: string, role: string) => Promise<ViewerProxy>, stall?: number}} opts
 *   `viewer`: the page reaches discovery and media through proxies made by this (one per page
 *   and role: like separate viewers' networks, and a browser throttles WebSocket handshakes
 *   per host, which one shared proxy address would turn into a queue across pages)
 */
async function openPages(prefix, { viewer, stall }) {
  const apiPort = Number(new URL(dev.api).port);
  const od = Array.from({ length: SAMPLES }, (_, i) => async () => {
    const label = `${prefix}od${i}`;
    const route = viewer
      ? { via: (await viewer(label, 'media')).ws, disc: (await viewer(label, 'discovery')).base(apiPort) }
      : {};
    return openPage('od', label, {
      mode: 'od',
      api: dev.api,
      pool: POOL,
      key: `stream-${prefix}${i}`,
      session: '1',
      ...route,
      ...(stall ? { stall: String(stall) } : {}),
    });
  });
  const base = Array.from({ length: SAMPLES }, (_, i) => async () => {
    const label = `${prefix}base${i}`;
    const route = viewer ? { via: (await viewer(label, 'media')).ws } : {};
    return openPage('baseline', label, {
      mode: 'baseline',
      target: await vip.addListener(), // each viewer its own Service address
      retryFloor: String(BASELINE_RETRY_FLOOR_MS),
      stall: String(STALL_MS),
      ...route,
    });
  });
  // A few at a time: page start-up competes with the running pages for the two cores.
  // Interleaved, so that staggered events alternate between the two kinds.
  const all = od.flatMap((o, i) => [o, base[i]]);
  const pages = [];
  for (let i = 0; i < all.length; i += 4) pages.push(...(await Promise.all(all.slice(i, i + 4).map((open) => open()))));
  return pages;
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

async function allEchoing(pages, timeout, what) {
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

/** Records an origin-discovery page's session data, for the final check. */
async function keepSessionData(pages) {
  for (const p of pages.filter((x) => x.kind === 'od')) {
    const d = await p.page.evaluate(() => {
      const T = /** @type {any} */ (window).T;
      return { session: T.session, conns: [...new Set(T.segments.map((s) => s.conn))] };
    });
    sessionPages.push({ label: p.label, ...d });
  }
}

async function closePages(pages) {
  await Promise.all(pages.map((p) => p.page.close().catch(() => {})));
}

/**
 * One round of a failure that freezes `victims` at t0 (and whatever `extra` does then):
 * measures every page on a victim, then kills the victims and replaces their pods.
 */
async function failureRound(round, origins, victims, extra = async () => {}) {
  const on = new Map(directPages.map((p, i) => [p, origins[i]]));
  const affected = directPages.filter((p) => victims.includes(on.get(p)));
  const t0 = Date.now();
  for (const v of victims) fleet.freeze(v);
  await extra();
  /** @type {any} */
  const rec = { round, t0, victims, od: [], baseline: [] };
  const measured = affected.map(async (p) => {
    const cap = p.kind === 'od' ? 10_000 : BASELINE_CAP_MS;
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

/** Replaces `victims` (killed) by new origins on the same nodes; waits until all are ready. */
async function refill(victims) {
  const nodes = victims.map((v) => fleet.byName.get(v)?.node ?? null);
  await fleet.ensureSpares(victims.length);
  await Promise.all(nodes.map((n) => fleet.add(n)));
  await waitFor(async () => (await liveReady()).size >= POOL_SIZE, { timeout: 30_000, interval: 100, what: `${POOL_SIZE} ready origins` });
  await waitFor(() => vip.endpoints.filter((e) => e.ready && fleet.byName.get(e.pod)?.killed === false).length >= POOL_SIZE, {
    timeout: 10_000,
    what: 'the VIP proxy to see the replacements',
  });
}

function done(rounds) {
  const n = (kind) => rounds.reduce((a, r) => a + r[kind].length, 0);
  return n('od') >= SAMPLES && n('baseline') >= SAMPLES;
}

function summarize(rounds) {
  const od = rounds.flatMap((r) => r.od);
  const base = rounds.flatMap((r) => r.baseline);
  return {
    rounds: rounds.length,
    od: { ...stats(od.map((r) => r.ms)), recovered: od.filter((r) => r.ms != null).length, samples: od.length },
    odPushRemovedMs: stats(od.map((r) => r.pushRemovedMs)),
    odPodStillReady: od.filter((r) => r.podStillReady).length,
    baseline: {
      ...stats(base.map((r) => r.ms)),
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
  assert.equal(s.od.recovered, od.length, `${name}: origin-discovery pages not back within 10 s: ${JSON.stringify(od.filter((r) => r.ms == null))}`);
  assert.ok(s.od.p95 <= FREEZE_P95_BOUND_MS, `${name}: origin-discovery p95 ${s.od.p95} ms > ${FREEZE_P95_BOUND_MS} ms: ${JSON.stringify(od)}`);
  assert.equal(s.odPodStillReady, od.length, `${name}: a victim's pod was no longer Ready when its page moved (not the probe's doing)`);
}

// ---------------------------------------------------------------------------------------------

describe('browser: silent failures (frozen origin, dead node, viewer outage)', { concurrency: 1 }, () => {
  before(async () => {
    dev = await startDev({ extraArgs: ['--endpointslice-delay', '1s', '--node-signals'], logName: 'silent-failures-dev.log' });
    sim = new Sim(dev.sim);
    await sim.createService(NAMESPACE, echoService({ probe: 'http' }));
    fleet = new EchoFleet(sim, 'silent-failures-origins.log');
    await fleet.ensureSpares(POOL_SIZE + MAX_FROZEN);
    for (const node of NODES) for (let i = 0; i < PER_NODE; i++) await fleet.add(node);
    await waitFor(async () => (await liveReady()).size >= POOL_SIZE, { timeout: 30_000, what: `${POOL_SIZE} ready origins in ${POOL}` });
    vip = await new VipProxy({ sim, namespace: NAMESPACE, service: SERVICE, portOf: (p) => fleet.portOf(p) }).start();
    await waitFor(() => vip.endpoints.filter((e) => e.ready).length >= POOL_SIZE, { timeout: 10_000, what: 'the VIP proxy to see the ready endpoints' });
    pagesUrl = (await serveStatic(path.join(HERE, 'pages'))).url;
    browser = await launchBrowser();
    results.setup.chromium = browser.browser()?.version() ?? '';
    directPages = await openPages('f', {});
    await allEchoing(directPages, 30_000, 'every page echoing');
  });

  after(async () => {
    try {
      writeSummary();
    } finally {
      await cleanup();
    }
  });

  test(`frozen origin (SIGSTOP, pod still Ready): origin-discovery pages echo on another origin, p95 ≤ ${FREEZE_P95_BOUND_MS} ms`, { timeout: 300_000 }, async () => {
    for (let round = 1; round <= MAX_ROUNDS && !done(results.frozenRounds); round++) {
      const origins = await allEchoing(directPages, 30_000, `frozen round ${round}: every page echoing`);
      // The origins carrying the most pages (origin-discovery first), to gather samples fast.
      const count = new Map();
      directPages.forEach((p, i) => {
        count.set(origins[i], (count.get(origins[i]) ?? 0) + (p.kind === 'od' ? 1.01 : 1));
      });
      const victims = [...count.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_FROZEN).map(([o]) => o);
      const rec = await failureRound(round, origins, victims);
      results.frozenRounds.push(rec);
      const od = rec.od.map((r) => r.ms).join(', ');
      const base = rec.baseline.map((r) => r.ms ?? `>${BASELINE_CAP_MS}`).join(', ');
      console.log(`frozen round ${round}: froze ${victims.join(' ')}; origin-discovery [${od}] ms; baseline [${base}] ms`);
      await refill(victims);
    }
    assertRounds('frozen origin', results.frozenRounds);
  });

  test(`dead node (its origins frozen, lease no longer renewed): origin-discovery p95 ≤ ${FREEZE_P95_BOUND_MS} ms`, { timeout: 300_000 }, async () => {
    for (let round = 1; round <= MAX_ROUNDS && !done(results.deadNodeRounds); round++) {
      const origins = await allEchoing(directPages, 30_000, `dead-node round ${round}: every page echoing`);
      const byNode = new Map(NODES.map((n) => [n, 0]));
      directPages.forEach((p, i) => {
        const node = fleet.byName.get(origins[i])?.node;
        if (node) byNode.set(node, byNode.get(node) + (p.kind === 'od' ? 1.01 : 1));
      });
      const node = [...byNode.entries()].sort((a, b) => b[1] - a[1])[0][0];
      const victims = fleet.alive().filter((o) => o.node === node).map((o) => o.name);
      const rec = await failureRound(round, origins, victims, () => sim.killNode(node));
      rec.node = node;
      await sim.reviveNode(node);
      results.deadNodeRounds.push(rec);
      const od = rec.od.map((r) => r.ms).join(', ');
      const base = rec.baseline.map((r) => r.ms ?? `>${BASELINE_CAP_MS}`).join(', ');
      console.log(`dead-node round ${round}: killed ${node} (${victims.join(' ')}); origin-discovery [${od}] ms; baseline [${base}] ms`);
      await refill(victims);
    }
    assertRounds('dead node', results.deadNodeRounds);
  });

  test(`viewer-side outage ${OUTAGES_MS.map((d) => `${d / 1000} s`).join(' and ')}: every page recovers, origin-discovery p95 ≤ ${OUTAGE_P95_BOUND_MS} ms after the return`, { timeout: 300_000 }, async () => {
    await keepSessionData(directPages);
    await closePages(directPages);
    directPages = [];
    const apiPort = Number(new URL(dev.api).port);
    const allow = (port) => port === apiPort || vip.ports.has(port) || [...fleet.byName.values()].some((o) => o.port === port);
    /** each page's network: its proxies */
    /** @type {Map<string, ViewerProxy[]>} */
    const networks = new Map();
    const viewer = async (label) => {
      const v = await new ViewerProxy({ allow }).start();
      networks.set(label, [...(networks.get(label) ?? []), v]);
      return v;
    };
    const pages = await openPages('o', { viewer, stall: STALL_MS });
    try {
      for (const outage of OUTAGES_MS) {
        await allEchoing(pages, 30_000, 'every page echoing before the outage');
        // Steady state: every page's discovery watch is connected (its back-off reset).
        await Promise.all(
          pages
            .filter((p) => p.kind === 'od')
            .map((p) => p.page.waitForFunction(() => /** @type {any} */ (window).T.events.filter((e) => e.type === 'sync').length > 0 && /** @type {any} */ (window).handle?.state === 'connected', null, { timeout: 30_000 })),
        );
        // Every viewer's network fails on its own, all in parallel, starts staggered by
        // OUTAGE_STAGGER_MS (a shared instant would measure the burst of 40 pages
        // reconnecting on two cores at once, not the client).
        /** @type {any} */
        const rec = { outageMs: outage, staggerMs: OUTAGE_STAGGER_MS, od: [], baseline: [] };
        await Promise.all(
          pages.map(async (p, i) => {
            await sleep(i * OUTAGE_STAGGER_MS);
            const net = networks.get(p.label) ?? [];
            const tDown = Date.now();
            net.forEach((v) => v.outage(true));
            await sleep(outage); // the outage itself
            const tUp = Date.now();
            net.forEach((v) => v.outage(false));
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
      }
    } finally {
      await keepSessionData(pages);
      await closePages(pages);
      await Promise.all([...networks.values()].flat().map((v) => v.stop()));
    }
    for (const rec of results.outages) {
      const od = stats(rec.od.map((r) => r.ms));
      assert.equal(od.n, rec.od.length, `outage ${rec.outageMs} ms: origin-discovery pages not back within ${RECOVERY_WINDOW_MS} ms: ${JSON.stringify(rec.od.filter((r) => r.ms == null))}`);
      assert.ok(od.p95 <= OUTAGE_P95_BOUND_MS, `outage ${rec.outageMs} ms: origin-discovery p95 ${od.p95} ms after the return > ${OUTAGE_P95_BOUND_MS} ms: ${JSON.stringify(rec.od)}`);
    }
  });

  test('every media connection of an origin-discovery page re-published the same session state', () => {
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
    const part = (rs) => ({ ...stats(rs.map((r) => r.ms)), recovered: rs.filter((r) => r.ms != null).length, samples: rs.length });
    return {
      od: part(rec.od),
      baseline: part(rec.baseline),
      odDiscoverySyncMs: stats(rec.od.map((r) => r.discoverySyncMs)),
      odPagesThatReconnected: rec.od.filter((r) => r.newConnections > 0).length,
    };
  };
  results.summary = {
    frozen: summarize(results.frozenRounds),
    deadNode: summarize(results.deadNodeRounds),
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
      row('frozen origin (SIGSTOP), from the freeze', s.frozen.od.samples ? s.frozen : null),
      row('dead node, from the kill', s.deadNode.od.samples ? s.deadNode : null),
      row('viewer outage 5 s, from the return', s.outage5s),
      row('viewer outage 30 s, from the return', s.outage30s),
      `session state: ${s.session.connectionsChecked ?? 0} connections checked (${s.session.reconnects ?? 0} reconnects), ${s.session.mismatches ?? 'n/a'} mismatches`,
      `details: ${path.relative(process.cwd(), path.join(ARTIFACTS, 'silent-failures.json'))}`,
      '',
    ].join('\n'),
  );
}
