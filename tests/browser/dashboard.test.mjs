// The dashboard the controller serves at `GET <api>/`, in Debian's headless chromium: it
// lists the pool, shows its origins, and updates live when an origin is deleted (draining at
// once, gone when the grace period ends). Runs against `origin-discovery dev` and its seeded
// `demo/origin` pool (three simulated origins), and its simulated clients rebalance onto a
// weighted origin that joins. Each test starts its own controller and
// browser, so they pass alone, in any order. Screenshots: test-artifacts/dashboard*.png.

import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { ARTIFACTS, Sim, cleanup, launchBrowser, startDev } from './lib/harness.mjs';

const POOL = 'demo/origin';
const VICTIM = 'origin-1';
const GRACE_SECONDS = 2;

/**
 * Everything one test needs, started for that test alone: its own `origin-discovery dev`
 * (a fresh seeded pool, whatever another test deleted), its own browser context and page,
 * opened on the pool and waited for until it is live and shows the three ready origins.
 * Stopped by `cleanup()` after the test.
 * @param {string} name used for the controller's log file
 */
async function openDashboard(name) {
  const dev = await startDev({ logName: `dashboard-${name}-dev.log` });
  const context = await launchBrowser();
  const page = await context.newPage();
  /** @type {string[]} */
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${dev.api}/#${POOL}`);
  await page.locator(`#pools a[href="#${POOL}"]`).waitFor({ timeout: 10_000 });
  await page.locator('#pool-title', { hasText: POOL }).waitFor({ timeout: 10_000 });
  await page.locator('#status', { hasText: /^live/ }).waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => document.querySelectorAll('#origins tr.ready').length === 3, null, { timeout: 10_000 });
  return { dev, page, pageErrors };
}

/** A demo-pool pod (like the seed's) with `annotations`. */
function demoPod(name, annotations) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'demo', labels: { app: 'origin' }, annotations },
    spec: {
      containers: [{ name: 'origin', image: 'origin-discovery/sim-origin:latest', ports: [{ name: 'ws', containerPort: 5080, protocol: 'TCP' }] }],
      terminationGracePeriodSeconds: 30,
    },
  };
}

/** The simulated clients per origin, as the bars show them: label → count. */
async function bars(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('#bars .bar-row:not(.error)')].map((r) => [
        r.querySelector('.bar-label')?.textContent ?? '',
        Number(r.querySelector('.num')?.textContent ?? 0),
      ]),
    ),
  );
}

describe('dashboard', { concurrency: 1 }, () => {
  afterEach(cleanup);

  test('shows the pool and its origins', { timeout: 60_000 }, async () => {
    const { page, pageErrors } = await openDashboard('shows');
    const ids = await page.locator('#origins td.id').allTextContents();
    assert.deepEqual(ids, ['origin-0', 'origin-1', 'origin-2']);
    const badges = await page.locator('#origins .badge').allTextContents();
    assert.deepEqual(badges, ['ready', 'ready', 'ready']);
    // The pool list shows the pool's ready count.
    assert.equal(await page.locator(`#pools a[href="#${POOL}"] .count.ready`).textContent(), '3');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-initial.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  });

  test('updates live when an origin is deleted', { timeout: 60_000 }, async () => {
    const { dev, page, pageErrors } = await openDashboard('delete');
    const sim = new Sim(dev.sim);
    const row = page.locator('#origins tr', { has: page.locator('td.id', { hasText: VICTIM }) });
    assert.equal(await row.count(), 1);

    const t0 = Date.now();
    await sim.deletePod('demo', VICTIM, GRACE_SECONDS);
    // At once: the row turns draining (the Pod watch sees deletionTimestamp)…
    await page.waitForFunction(
      (id) => [...document.querySelectorAll('#origins tr.draining td.id')].some((td) => td.textContent === id),
      VICTIM,
      { timeout: 5_000, polling: 20 },
    );
    const drainingMs = Date.now() - t0;
    assert.equal(await row.locator('.badge').textContent(), 'draining');
    await page.locator('#timeline .chg.upd', { hasText: `${VICTIM} → draining` }).first().waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-draining.png'), fullPage: true });

    // …and it disappears when the grace period has ended and the pod is gone.
    await page.waitForFunction(
      (id) => ![...document.querySelectorAll('#origins td.id')].some((td) => td.textContent === id),
      VICTIM,
      { timeout: (GRACE_SECONDS + 10) * 1_000, polling: 50 },
    );
    const goneMs = Date.now() - t0;
    await page.locator('#timeline .chg.del', { hasText: `−${VICTIM}` }).first().waitFor({ timeout: 5_000 });
    assert.deepEqual(await page.locator('#origins td.id').allTextContents(), ['origin-0', 'origin-2']);
    assert.equal(await page.locator('#origins tr.ready').count(), 2);
    // The simulated clients of the deleted origin moved: nobody is left without an origin.
    assert.equal(await page.locator('#bars .bar-row.error').count(), 0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    console.log(`dashboard: ${VICTIM} shown draining ${drainingMs} ms after the delete, gone after ${goneMs} ms (grace ${GRACE_SECONDS}s)`);
    assert.ok(drainingMs < 1_000, `draining shown only after ${drainingMs} ms`);
    assert.deepEqual(pageErrors, []);
  });

  test('shows weights and load, and its simulated clients rebalance onto new capacity', { timeout: 120_000 }, async () => {
    const { dev, page, pageErrors } = await openDashboard('rebalance');
    const sim = new Sim(dev.sim);
    // Every simulated client connected somewhere first (the dashboard's default crowd: 200).
    const clients = 200;
    const total = async () => Object.values(await bars(page)).reduce((a, b) => a + b, 0);
    await page.waitForFunction(
      (n) =>
        !document.querySelector('#bars .bar-row.error') &&
        [...document.querySelectorAll('#bars .bar-row .num')].reduce((a, e) => a + Number(e.textContent), 0) === n,
      clients,
      { timeout: 15_000, polling: 100 },
    );
    const before = await bars(page);
    assert.equal(await total(), clients, JSON.stringify(before));
    const t0 = Date.now();
    await sim.createPod('demo', demoPod('origin-big', { 'origin-discovery.io/weight': '3', 'origin-discovery.io/load': '0.4' }));
    const row = page.locator('#origins tr', { has: page.locator('td.id', { hasText: 'origin-big' }) });
    await row.locator('.badge', { hasText: 'ready' }).waitFor({ timeout: 15_000 });
    assert.equal(await row.locator('td.weight').textContent(), '3');
    assert.equal(await row.locator('td.load').textContent(), '40 %');
    // Weight 3 of 6, at 40 % load against idle ones: about 30 % of the clients belong on it
    // (measured: 61 of 200). With rebalancing (on in the dashboard) they move there at the
    // library's bounded rate once their connections are 10 s old.
    const label = 'origin-big ×3 · load 40 %';
    await page.waitForFunction(
      ([l, want]) =>
        [...document.querySelectorAll('#bars .bar-row')].some(
          (r) => r.querySelector('.bar-label')?.textContent === l && Number(r.querySelector('.num')?.textContent) >= want,
        ),
      [label, Math.floor(clients * 0.25)],
      { timeout: 90_000, polling: 250 },
    ).catch(async (e) => {
      throw new Error(`${e.message}; bars now ${JSON.stringify(await bars(page))}; timeline ${JSON.stringify(await page.locator('#timeline').textContent())}`);
    });
    const movedMs = Date.now() - t0;
    const after = await bars(page);
    assert.equal(Object.values(after).reduce((a, b) => a + b, 0), clients, 'no client lost on the way');
    await page.locator('#timeline', { hasText: /rebalanc/ }).waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-rebalance.png'), fullPage: true });
    console.log(`dashboard: ${after[label]} of ${clients} simulated clients on the new weight-3 origin ${movedMs} ms after it was created; before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    assert.deepEqual(pageErrors, []);
  });
});
