// Real-browser end to end: how fast does a browser page's media WebSocket get back to a live
// origin when its origin dies — with the origin-discovery JS client, and with today's setup?
//
// What runs (everything on 127.0.0.1, everything stopped in `after`, also on failure):
// - `origin-discovery dev --endpointslice-delay 1s --heartbeat-interval 1s --cors-allow-origin '*'`:
//   the real controller against its embedded simulated apiserver. The 1 s EndpointSlice delay
//   makes the simulated slice controller trail pod changes the way a real cluster's does.
// - Real origins: `lib/echo-server.mjs`, one Node process each (SIGKILL-able), registered in
//   the simulator — through its Kubernetes REST API with plain fetch — as pods of the Service
//   `demo/echo` (label `origin-discovery.io/enabled: "true"`, selector `app: echo`, port `ws`
//   5080) whose `origin-discovery.io/url` annotation is `ws://127.0.0.1:<port>/`.
// - Debian's `/usr/bin/chromium`, headless, driven by playwright-core (never a downloaded
//   browser), with two pages from `pages/` (served on loopback by this harness):
//   * the origin-discovery page imports the client from the controller
//     (`<api>/client/index.js`) and uses `connectWithFailover` with a fixed key;
//   * the baseline page is what a plain Service plus today's SDKs give: it knows one fixed
//     address and, after any failure, retries it no sooner than 3 s later (Ant Media's JS SDK
//     reconnect floor). The fixed address is `lib/vip-proxy.mjs`, a TCP forwarder standing in
//     for the Service VIP + kube-proxy: it re-reads the Service's EndpointSlices from the
//     simulator every 1 s (kube-proxy's minimum resync) and sends each new connection to a
//     random endpoint listed ready there; an established connection breaks with its origin.
//   Both pages send a message every 25 ms (and at once on connect); every echo names the
//   origin that answered, so a page knows when it echoes again and where.
//
// Crash rounds (×ROUNDS, default 20): the origin the origin-discovery page is on, and the
// one the baseline page is on when that is another, are SIGKILLed and their pods crashed in
// the simulator (containers terminated, Ready=False) at the same moment `t0`. Failover time
// = first echo received from a surviving origin − t0, per page. The origin-discovery page
// must echo again within 1 s in every round. Replacements (pre-started spare processes →
// new pods) are registered once the origin-discovery page has recovered, and crashed pods
// deleted, so that the pool always keeps ≥ 2 live origins (it is held at 4: each round kills
// up to two).
//
// Graceful rounds (×ROUNDS): the origin-discovery page's origin is deleted with
// gracePeriodSeconds=5 (a replacement registered at once). Its process keeps serving until the
// simulator's kubelet finishes the deletion at the end of the grace period, and is SIGKILLed
// then. The page must migrate (onMigrate) and move to another origin make-before-break —
// the old connection closed by the page, not by the dying origin — before that.
//
// What the baseline is and is not: it is the *best case* of a plain Service. The killed
// process's TCP connections are reset by the kernel at once (so the page notices in
// milliseconds, no readiness probe has to fail first), the proxy refuses instead of
// black-holing a dead endpoint, and the 1 s-late EndpointSlice plus the 1 s resync are always
// done before the 3 s retry floor ends — so it lands at ≈ 3 s. Hung origins, dead nodes
// (40–50 s until Kubernetes notices) and DNS TTLs make the real thing far slower; those are
// not simulated here. The origin-discovery page is measured in exactly the same events.
//
// Results: printed at the end and written to `test-artifacts/failover.json`.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ARTIFACTS,
  HERE,
  Sim,
  cleanup,
  launchBrowser,
  percentile,
  serveStatic,
  startDev,
  waitFor,
  withTimeout,
} from './lib/harness.mjs';
import { EchoFleet, NAMESPACE, POOL, SERVICE, echoService } from './lib/origins.mjs';
import { VipProxy } from './lib/vip-proxy.mjs';

const ROUNDS = Number(process.env.BROWSER_E2E_ROUNDS ?? 20);
const POOL_SIZE = 4; // live origins held in the pool
const FAILOVER_BOUND_MS = 1_000;
const GRACE_SECONDS = 5;
const BASELINE_RETRY_FLOOR_MS = 3_000;
const ECHO_INTERVAL_MS = 25;
const KEY = 'stream-42';

/** @type {{api: string, admin: string, sim: string, log: string}} */ let dev;
/** @type {Sim} */ let sim;
/** @type {EchoFleet} */ let fleet;
/** @type {VipProxy} */ let proxy;
/** @type {import('playwright-core').BrowserContext} */ let browser;
/** @type {import('playwright-core').Page} */ let odPage;
/** @type {import('playwright-core').Page | null} */ let basePage = null;
/** @type {string} */ let pagesUrl;

const results = {
  startedAt: new Date().toISOString(),
  setup: {
    rounds: ROUNDS,
    poolSize: POOL_SIZE,
    echoIntervalMs: ECHO_INTERVAL_MS,
    endpointSliceDelay: '1s',
    heartbeatInterval: '1s',
    baselineRetryFloorMs: BASELINE_RETRY_FLOOR_MS,
    vipResyncMs: 1_000,
    graceSeconds: GRACE_SECONDS,
    chromium: '',
  },
  /** @type {any[]} */ crashRounds: [],
  /** @type {any[]} */ gracefulRounds: [],
  /** @type {any} */ summary: {},
  pageStats: {},
};

// ---------------------------------------------------------------------------------------------
// helpers

/**
 * Waits until the page echoes steadily (≥ 3 replies on its latest connection, the last one
 * fresh) and returns the origin answering.
 * @param {import('playwright-core').Page} page
 */
async function echoingOn(page, timeout, what) {
  const h = await page.waitForFunction(
    () => {
      const T = /** @type {any} */ (window).T;
      const s = T?.segments[T.segments.length - 1];
      return s && s.count >= 3 && Date.now() - s.last < 250 ? s.origin : null;
    },
    null,
    { timeout, polling: 20 },
  );
  const origin = await h.jsonValue();
  await h.dispose();
  if (!origin) throw new Error(`${what}: no origin`);
  return /** @type {string} */ (origin);
}

/**
 * Waits for the first echo from an origin not in `killed`, received at or after `t0`;
 * returns its receive time (page clock = this host's wall clock).
 */
async function firstEchoAfter(page, killed, t0, timeout) {
  const h = await page.waitForFunction(
    ({ killed, t0 }) => {
      const T = /** @type {any} */ (window).T;
      for (let i = T.segments.length - 1; i >= 0; i--) {
        const s = T.segments[i];
        if (s.last < t0) break;
        if (!killed.includes(s.origin) && s.first >= t0) {
          // the earliest such segment
          let first = s;
          for (let j = i - 1; j >= 0 && T.segments[j].last >= t0; j--) {
            const p = T.segments[j];
            if (!killed.includes(p.origin) && p.first >= t0) first = p;
          }
          return { t: first.first, origin: first.origin };
        }
      }
      return null;
    },
    { killed, t0 },
    { timeout, polling: 15 },
  );
  const v = await h.jsonValue();
  await h.dispose();
  return /** @type {{t: number, origin: string}} */ (v);
}

/** Page events since `t0`. */
async function eventsSince(page, t0) {
  return page.evaluate((t0) => /** @type {any} */ (window).T.events.filter((e) => e.t >= t0), t0);
}

async function openEchoPage(query) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${pagesUrl}/echo.html?${new URLSearchParams({ interval: String(ECHO_INTERVAL_MS), ...query })}`);
  await page.waitForFunction(() => /** @type {any} */ (window).T?.ready || /** @type {any} */ (window).T?.error, null, {
    timeout: 15_000,
  });
  const err = await page.evaluate(() => /** @type {any} */ (window).T.error);
  assert.equal(err, null, `echo page (${query.mode}) failed to start: ${err}; console: ${errors.join(' | ')}`);
  return page;
}

function stats(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return {
    n: v.length,
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    min: v.length ? Math.min(...v) : NaN,
    max: v.length ? Math.max(...v) : NaN,
    mean: v.length ? Math.round(v.reduce((a, b) => a + b, 0) / v.length) : NaN,
  };
}

// ---------------------------------------------------------------------------------------------

describe('browser failover (origin-discovery client vs. Service-VIP baseline)', { concurrency: 1 }, () => {
  before(async () => {
    dev = await startDev({ extraArgs: ['--endpointslice-delay', '1s'], logName: 'failover-dev.log' });
    sim = new Sim(dev.sim);
    await sim.createService(NAMESPACE, echoService());
    fleet = new EchoFleet(sim);
    await fleet.ensureSpares(POOL_SIZE + 2);
    for (let i = 0; i < POOL_SIZE; i++) await fleet.add();
    await waitFor(async () => (await fleet.liveReady(dev.api)).size >= POOL_SIZE, {
      timeout: 20_000,
      what: `${POOL_SIZE} ready origins in ${POOL}`,
    });
    proxy = await new VipProxy({ sim, namespace: NAMESPACE, service: SERVICE, portOf: (p) => fleet.portOf(p) }).start();
    await waitFor(() => proxy.endpoints.filter((e) => e.ready).length >= POOL_SIZE, {
      timeout: 10_000,
      what: 'the VIP proxy to see the ready endpoints',
    });
    pagesUrl = (await serveStatic(path.join(HERE, 'pages'))).url;
    browser = await launchBrowser();
    results.setup.chromium = browser.browser()?.version() ?? '';
    odPage = await openEchoPage({ mode: 'od', api: dev.api, pool: POOL, key: KEY });
    basePage = await openEchoPage({
      mode: 'baseline',
      target: proxy.url,
      retryFloor: String(BASELINE_RETRY_FLOOR_MS),
    });
    await echoingOn(odPage, 10_000, 'origin-discovery page');
    await echoingOn(basePage, 10_000, 'baseline page');
  });

  after(async () => {
    try {
      for (const [name, page] of [['od', odPage], ['baseline', basePage]]) {
        if (page && !page.isClosed()) {
          results.pageStats[name] = await withTimeout(
            page.evaluate(() => {
              const T = /** @type {any} */ (window).T;
              return { sent: T.sent, received: T.received, lateTicks: T.lateTicks, maxTickGapMs: Math.round(T.maxTickGap), visibility: T.visibility };
            }),
            5_000,
            'page stats',
          ).catch((e) => ({ error: e.message }));
        }
      }
      if (proxy) results.pageStats.vipProxy = proxy.stats;
    } finally {
      await cleanup();
      writeSummary();
    }
  });

  test(`crash: the origin-discovery page echoes again on another origin within ${FAILOVER_BOUND_MS} ms (${ROUNDS} rounds, baseline alongside)`, { timeout: 180_000 }, async () => {
    assert.ok(basePage);
    for (let round = 1; round <= ROUNDS; round++) {
      // Preconditions: both pages echo steadily, on origins the controller lists ready, and
      // the pool keeps ≥ 2 live origins after this round's kills.
      const odOrigin = await echoingOn(odPage, 10_000, `round ${round}: origin-discovery page echoing`);
      const baseOrigin = await echoingOn(basePage, 15_000, `round ${round}: baseline page echoing`);
      const killed = [...new Set([odOrigin, baseOrigin])];
      await waitFor(
        async () => {
          const ready = await fleet.liveReady(dev.api);
          return killed.every((k) => ready.has(k)) && ready.size - killed.length >= 2 && ready.size >= POOL_SIZE;
        },
        { timeout: 15_000, interval: 50, what: `round ${round}: ${POOL_SIZE} live ready origins incl. ${killed}` },
      );
      assert.deepEqual(proxy.activeBackends(), [baseOrigin], 'the VIP proxy carries exactly the baseline connection');

      // The moment: SIGKILL the processes and crash their pods.
      const t0 = Date.now();
      for (const name of killed) fleet.kill(name);
      const crashed = Promise.all(killed.map((name) => sim.crashPod(NAMESPACE, name)));

      /** @type {any} */
      const rec = { round, t0, killed, od: { from: odOrigin }, baseline: { from: baseOrigin } };
      try {
        const od = await firstEchoAfter(odPage, killed, t0, 10_000);
        rec.od = { ...rec.od, to: od.origin, ms: od.t - t0 };
      } catch (e) {
        rec.od.error = /** @type {Error} */ (e).message;
      }
      await crashed;
      // Like a Deployment: replacements for the killed origins, crashed pods removed.
      const replacements = await Promise.all(killed.map(() => fleet.add()));
      rec.replacements = replacements.map((o) => o.name);
      try {
        const b = await firstEchoAfter(basePage, killed, t0, 25_000);
        rec.baseline = { ...rec.baseline, to: b.origin, ms: b.t - t0 };
      } catch (e) {
        rec.baseline.error = /** @type {Error} */ (e).message;
      }
      await Promise.all(killed.map((name) => sim.deletePod(NAMESPACE, name, 0)));
      const odEvents = await eventsSince(odPage, t0);
      // Which told the page first that its origin was gone: its own socket closing (the
      // kernel tearing down the killed process's connections), or the controller's push
      // (pod crashed → origin removed)?
      const dead = odEvents.find((e) => e.type === 'ws-close' && e.origin === odOrigin);
      const pushed = odEvents.find(
        (e) => e.type === 'change' && [...e.removed, ...e.updated].some((x) => x.split(':')[0] === odOrigin),
      );
      rec.od.socketClosedMs = dead ? dead.t - t0 : null;
      rec.od.pushRemovedMs = pushed ? pushed.t - t0 : null;
      rec.od.firstSignal =
        rec.od.socketClosedMs == null && rec.od.pushRemovedMs == null
          ? null
          : (rec.od.pushRemovedMs ?? Infinity) < (rec.od.socketClosedMs ?? Infinity)
            ? 'push'
            : 'socket';
      // The client's own reaction: first signal → next connection attempt opened (docs/DESIGN.md:
      // "try the next ranked target at once (≤ 100 ms)").
      const signalAt = Math.min(rec.od.socketClosedMs ?? Infinity, rec.od.pushRemovedMs ?? Infinity);
      const nextAttempt = odEvents.find((e) => e.type === 'ws-new' && e.t - t0 >= signalAt);
      rec.od.reactionMs = nextAttempt && Number.isFinite(signalAt) ? nextAttempt.t - t0 - signalAt : null;
      rec.od.steps = odEvents
        .filter((e) => ['failover', 'migrate', 'connect', 'retry', 'giveup', 'ws-close'].includes(e.type))
        .map((e) => ({ ms: e.t - t0, ...e, t: undefined }));
      results.crashRounds.push(rec);
      console.log(
        `crash round ${String(round).padStart(2)}: killed ${killed.join('+')}; ` +
          `origin-discovery ${rec.od.ms ?? 'FAILED'} ms (${odOrigin}→${rec.od.to ?? '?'}, first signal: ${rec.od.firstSignal}), ` +
          `baseline ${rec.baseline.ms ?? 'FAILED'} ms (${baseOrigin}→${rec.baseline.to ?? '?'})`,
      );
      await fleet.ensureSpares(2);
    }

    const odMs = results.crashRounds.map((r) => r.od.ms);
    const failed = results.crashRounds.filter((r) => !(r.od.ms <= FAILOVER_BOUND_MS));
    assert.equal(
      failed.length,
      0,
      `origin-discovery page did not echo on another origin within ${FAILOVER_BOUND_MS} ms in ${failed.length} round(s): ` +
        JSON.stringify(failed.map((r) => ({ round: r.round, ms: r.od.ms, error: r.od.error, steps: r.od.steps }))),
    );
    assert.equal(odMs.length, ROUNDS);
    const baseFailed = results.crashRounds.filter((r) => !Number.isFinite(r.baseline.ms));
    assert.equal(baseFailed.length, 0, `baseline never recovered in: ${JSON.stringify(baseFailed.map((r) => r.round))}`);
  });

  test(`graceful delete: the page migrates (onMigrate, make-before-break) before the old origin closes (${ROUNDS} rounds)`, { timeout: 120_000 }, async () => {
    // The baseline page is not measured here; stop it so it does not compete for CPU.
    if (basePage && !basePage.isClosed()) {
      results.pageStats.baseline = await basePage.evaluate(() => {
        const T = /** @type {any} */ (window).T;
        return { sent: T.sent, received: T.received, lateTicks: T.lateTicks, maxTickGapMs: Math.round(T.maxTickGap), visibility: T.visibility };
      });
      await basePage.close();
    }
    /** @type {Promise<void>[]} */
    const graceEnds = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const from = await echoingOn(odPage, 10_000, `graceful round ${round}: page echoing`);
      await waitFor(
        async () => {
          const ready = await fleet.liveReady(dev.api);
          return ready.has(from) && ready.size >= 3;
        },
        { timeout: 15_000, interval: 50, what: `graceful round ${round}: ≥ 3 live ready origins incl. ${from}` },
      );
      const old = fleet.byName.get(from);
      assert.ok(old);
      const t0 = Date.now();
      await sim.deletePod(NAMESPACE, from, GRACE_SECONDS);
      const replacement = await fleet.add();
      /** @type {any} */
      const rec = { round, t0, from, replacement: replacement.name };
      results.gracefulRounds.push(rec);
      try {
        // migrated: a `connect` with migrated=true to another origin, and the old socket
        // closed by the page after that
        const h = await odPage.waitForFunction(
          ({ t0, from }) => {
            const T = /** @type {any} */ (window).T;
            const ev = T.events.filter((e) => e.t >= t0);
            const migrate = ev.find((e) => e.type === 'migrate' && e.from === from);
            const connect = ev.find((e) => e.type === 'connect' && e.migrated && e.previous === from);
            if (!migrate || !connect) return null;
            const oldConn = T.events.filter((e) => e.type === 'connect' && e.origin === from && e.t < t0).pop()?.conn;
            const closed = ev.find((e) => e.type === 'client-close' && e.conn === oldConn);
            if (!closed) return null;
            const echo = T.segments.find((s) => s.first >= t0 && s.origin === connect.origin);
            if (!echo) return null;
            let lastOld = 0;
            for (const s of T.segments) if (s.origin === from && s.last > lastOld) lastOld = s.last;
            return {
              to: connect.origin,
              migrate: migrate.t,
              migrateReason: migrate.reason,
              connect: connect.t,
              closedOld: closed.t,
              oldReadyState: closed.readyState,
              firstEchoNew: echo.first,
              lastEchoOld: lastOld,
              failovers: ev.filter((e) => e.type === 'failover' && e.t <= connect.t).length,
            };
          },
          { t0, from },
          { timeout: (GRACE_SECONDS - 1) * 1_000, polling: 15 },
        );
        const v = await h.jsonValue();
        await h.dispose();
        Object.assign(rec, {
          to: v.to,
          reason: v.migrateReason,
          migrateMs: v.migrate - t0,
          connectedMs: v.connect - t0,
          oldClosedMs: v.closedOld - t0,
          firstEchoNewMs: v.firstEchoNew - t0,
          echoGapMs: Math.max(0, v.firstEchoNew - v.lastEchoOld),
          oldSocketOpenWhenClosed: v.oldReadyState === 1,
          failoversDuringMigration: v.failovers,
        });
      } catch (e) {
        rec.error = /** @type {Error} */ (e).message;
      }
      // The origin keeps serving until the kubelet finishes the deletion (end of the grace
      // period): then it is killed. Record whether the page had already left it.
      graceEnds.push(
        (async () => {
          try {
            await waitFor(
              async () => {
                const res = await fetch(`${dev.sim}/api/v1/namespaces/${NAMESPACE}/pods/${from}`);
                await res.arrayBuffer();
                return res.status === 404;
              },
              { timeout: (GRACE_SECONDS + 5) * 1_000, interval: 100, what: `pod ${from} to finish terminating` },
            );
            rec.podGoneMs = Date.now() - t0;
          } catch (e) {
            rec.graceError = /** @type {Error} */ (e).message;
          }
          rec.pageConnectionsOpenAtKill = old.open.od ?? 0;
          fleet.kill(from);
        })(),
      );
      console.log(
        `graceful round ${String(round).padStart(2)}: ${from} deleted; ` +
          (rec.error
            ? `NOT MIGRATED: ${rec.error}`
            : `onMigrate +${rec.migrateMs} ms (${rec.reason}), on ${rec.to} +${rec.connectedMs} ms, old closed by page +${rec.oldClosedMs} ms, echo gap ${rec.echoGapMs} ms`),
      );
      await fleet.ensureSpares(2);
    }
    await withTimeout(Promise.all(graceEnds), (GRACE_SECONDS + 10) * 1_000, 'the grace periods to end');

    const bad = results.gracefulRounds.filter(
      (r) =>
        r.error ||
        r.graceError ||
        r.reason !== 'draining' ||
        !r.oldSocketOpenWhenClosed ||
        r.failoversDuringMigration !== 0 ||
        r.pageConnectionsOpenAtKill !== 0 ||
        !(r.oldClosedMs < r.podGoneMs),
    );
    assert.equal(bad.length, 0, `rounds without a clean migration before the old origin closed: ${JSON.stringify(bad)}`);
  });
});

function writeSummary() {
  const od = stats(results.crashRounds.map((r) => r.od.ms));
  const base = stats(results.crashRounds.map((r) => r.baseline.ms));
  const g = results.gracefulRounds;
  const clean = g.filter(
    (r) => !r.error && r.reason === 'draining' && r.oldSocketOpenWhenClosed && r.failoversDuringMigration === 0 && r.pageConnectionsOpenAtKill === 0 && r.oldClosedMs < r.podGoneMs,
  );
  results.summary = {
    failoverOriginDiscovery: od,
    failoverBaseline: base,
    failoverBoundMs: FAILOVER_BOUND_MS,
    odRoundsOverBound: results.crashRounds.filter((r) => !(r.od.ms <= FAILOVER_BOUND_MS)).length,
    odFirstSignal: {
      push: results.crashRounds.filter((r) => r.od.firstSignal === 'push').length,
      socket: results.crashRounds.filter((r) => r.od.firstSignal === 'socket').length,
    },
    odSocketClosedMs: stats(results.crashRounds.map((r) => r.od.socketClosedMs)),
    odPushRemovedMs: stats(results.crashRounds.map((r) => r.od.pushRemovedMs)),
    odReactionMs: stats(results.crashRounds.map((r) => r.od.reactionMs)),
    migration: {
      rounds: g.length,
      migratedBeforeOldOriginClosed: clean.length,
      onMigrateMs: stats(g.map((r) => r.migrateMs)),
      connectedMs: stats(g.map((r) => r.connectedMs)),
      echoGapMs: stats(g.map((r) => r.echoGapMs)),
    },
  };
  results.finishedAt = new Date().toISOString();
  writeFileSync(path.join(ARTIFACTS, 'failover.json'), `${JSON.stringify(results, null, 2)}\n`);
  const m = results.summary.migration;
  const lines = [
    '',
    '==== browser end-to-end summary ====',
    `failover (origin-discovery client): p50 ${od.p50} ms, p95 ${od.p95} ms, n=${od.n} (max ${od.max} ms; bound ${FAILOVER_BOUND_MS} ms)`,
    `failover (baseline: Service VIP + 3 s retry floor): p50 ${base.p50} ms, p95 ${base.p95} ms, n=${base.n} (max ${base.max} ms)`,
    `  origin-discovery page learned of the crash first from: the controller's push in ${results.summary.odFirstSignal.push} rounds, ` +
      `its own socket closing in ${results.summary.odFirstSignal.socket} (push p50 ${results.summary.odPushRemovedMs.p50} ms, ` +
      `socket close p50 ${results.summary.odSocketClosedMs.p50} ms after the kill); ` +
      `first signal → next connection attempt p50 ${results.summary.odReactionMs.p50} ms, max ${results.summary.odReactionMs.max} ms`,
    `migration (graceful delete, grace ${GRACE_SECONDS}s): ${m.migratedBeforeOldOriginClosed}/${m.rounds} migrated make-before-break before the old origin closed; ` +
      `onMigrate p50 ${m.onMigrateMs.p50} ms / p95 ${m.onMigrateMs.p95} ms after the delete, ` +
      `on the new origin p50 ${m.connectedMs.p50} ms / p95 ${m.connectedMs.p95} ms, echo gap p50 ${m.echoGapMs.p50} ms / max ${m.echoGapMs.max} ms`,
    `details: ${path.relative(process.cwd(), path.join(ARTIFACTS, 'failover.json'))}`,
    '',
  ];
  console.log(lines.join('\n'));
}
