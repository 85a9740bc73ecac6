import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { once } from 'node:events';
import { OriginDiscovery, connectWithFailover, rank } from '../src/index.js';
import { FakeClock, FakeConn, FakeDiscovery, origin, startServer, tick, waitFor, withTimeout } from './helpers.js';

const cleanups = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

const five = () => ['o1', 'o2', 'o3', 'o4', 'o5'].map((id) => origin(id));

/** Records every step; `open` hands out FakeConns that the test opens/kills. */
function harness(discovery, key, options = {}) {
  const log = [];
  const conns = [];
  const clock = options.timers ?? new FakeClock();
  const h = connectWithFailover(
    discovery,
    key,
    (o) => {
      const c = new FakeConn(o);
      conns.push(c);
      log.push(['open', o.id]);
      options.onOpenCall?.(c);
      return c;
    },
    {
      timers: clock,
      random: () => 0.9999,
      onConnect: (i) => log.push(['connect', i.origin.id, i.migrated]),
      onFailover: (i) => log.push(['failover', i.from.id, i.to?.id ?? null, i.reason]),
      onMigrate: (i) => log.push(['migrate', i.from.id, i.to?.id ?? null, i.reason]),
      onRetry: (i) => log.push(['retry', i.attempt, i.delay]),
      onGiveUp: (i) => log.push(['giveup', i.retries]),
      ...options,
    },
  );
  cleanups.push(() => h.close());
  return { h, log, conns, clock, last: () => conns[conns.length - 1] };
}

test('connects to the first ranked origin for the key', async () => {
  const d = new FakeDiscovery(five());
  const { h, log, last } = harness(d, 'stream-a');
  await tick();
  const want = rank(d.origins, 'stream-a', { count: 1 })[0].id;
  assert.deepEqual(log, [['open', want]]);
  assert.equal(h.state, 'connecting');
  last().open();
  await tick();
  assert.deepEqual(log[1], ['connect', want, false]);
  assert.equal(h.state, 'connected');
  assert.equal(h.origin.id, want);
  assert.equal(h.connection, last());
});

test('waits for the first snapshot before connecting', async () => {
  const d = new FakeDiscovery([], null);
  const { log, last } = harness(d, 'k');
  await tick();
  assert.deepEqual(log, [], 'no retries burnt before discovery knows anything');
  d.set(five());
  await tick();
  assert.equal(log[0][0], 'open');
  last().open();
  await tick();
  assert.equal(log[1][0], 'connect');
});

test('on close: the next ranked origin (excluding the dead one) within 100 ms', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'stream-b', { count: 5 }).map((o) => o.id);
  let opened;
  const { log, conns } = harness(d, 'stream-b', { timers: undefined, onOpenCall: (c) => opened?.(c) });
  await tick();
  conns[0].open();
  await tick();
  const next = new Promise((resolve) => (opened = resolve));
  const t0 = performance.now();
  conns[0].kill();
  const c2 = await withTimeout(next, 100, 'the failover open');
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < 100, `${elapsed} ms`);
  assert.equal(c2.origin.id, order[1]);
  assert.deepEqual(log.slice(2), [['failover', order[0], order[1], 'closed'], ['open', order[1]]]);
  c2.open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', order[1], false]);
});

test('failed opening attempts move down the ranking, then back off with full jitter and give up', async () => {
  const d = new FakeDiscovery(five().slice(0, 3));
  const order = rank(d.origins, 'k', { count: 3 }).map((o) => o.id);
  const { h, log, conns, clock } = harness(d, 'k', { backoff: { initial: 100, max: 300, maxRetries: 3 } });
  const failAll = async () => {
    for (let i = 0; i < 3; i++) {
      await tick();
      conns.at(-1).kill();
    }
    await tick();
  };
  await failAll();
  assert.deepEqual(log, [
    ['open', order[0]],
    ['failover', order[0], order[1], 'error'],
    ['open', order[1]],
    ['failover', order[1], order[2], 'error'],
    ['open', order[2]],
    ['failover', order[2], null, 'error'],
    ['retry', 1, 99],
  ]);
  assert.equal(h.state, 'backoff');
  assert.deepEqual(clock.scheduled(), [99]);
  log.length = 0;
  clock.advance(99);
  await failAll();
  assert.deepEqual(log.at(-1), ['retry', 2, 199]);
  assert.equal(log[0][1], order[0], 'each round starts again from the best origin');
  log.length = 0;
  clock.advance(199);
  await failAll();
  assert.deepEqual(log.at(-1), ['retry', 3, 299], 'capped at max');
  log.length = 0;
  clock.advance(299);
  await failAll();
  assert.deepEqual(log.at(-1), ['giveup', 3]);
  assert.equal(h.state, 'gaveup');
  assert.deepEqual(clock.scheduled(), [], 'nothing left running after giving up');
  // retry() starts over
  log.length = 0;
  h.retry();
  await tick();
  assert.deepEqual(log, [['open', order[0]]]);
});

test('back-off delays stay within the full-jitter bounds', async () => {
  const d = new FakeDiscovery([origin('only')]);
  const delays = [];
  let r = 0;
  const randoms = [0, 0.5, 0.999, 0.25, 0.999, 0.999, 0.999, 0.999, 0.999, 0.999];
  const clock = new FakeClock();
  const conns = [];
  const h = connectWithFailover(d, 'k', (o) => {
    const c = new FakeConn(o);
    conns.push(c);
    return c;
  }, { timers: clock, random: () => randoms[r++], onRetry: (i) => delays.push(i.delay), backoff: { maxRetries: 10 } });
  cleanups.push(() => h.close());
  for (let i = 0; i < 10; i++) {
    await tick();
    conns.at(-1).kill();
    await tick();
    clock.advance(30_000);
  }
  const ceilings = [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  assert.equal(delays.length, 10);
  delays.forEach((dl, i) => assert.ok(dl >= 0 && dl < ceilings[i], `retry ${i + 1}: ${dl}`));
  assert.deepEqual(delays.slice(0, 4), [0, 250, 999, 500]);
  assert.equal(delays[9], 29970);
});

test('a new ready origin ends a back-off wait early', async () => {
  const d = new FakeDiscovery([origin('a')]);
  const { log, conns, clock } = harness(d, 'k');
  await tick();
  conns[0].kill();
  await tick();
  assert.equal(log.at(-1)[0], 'retry');
  d.set([origin('a'), origin('b')]);
  await tick();
  assert.equal(log.at(-1)[0], 'open');
  assert.equal(clock.scheduled().length, 1, 'only the connect timeout is pending');
});

test('a hanging open times out and the next origin is tried', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'k', { count: 2 }).map((o) => o.id);
  const { log, conns, clock } = harness(d, 'k', { connectTimeout: 1000 });
  await tick();
  clock.advance(1000);
  await tick();
  assert.deepEqual(log.slice(1, 3), [['failover', order[0], order[1], 'timeout'], ['open', order[1]]]);
  assert.ok(conns[0].closedByClient, 'the hanging attempt was closed');
});

test('draining origin: onMigrate, new connection first, old one closed after it opened', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 2 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'cam');
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.map((o) => (o.id === order[0] ? { ...o, state: 'draining' } : o)));
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', order[0], order[1], 'draining'], ['open', order[1]]]);
  assert.equal(h.state, 'migrating');
  assert.equal(conns[0].closedByClient, false, 'the old connection serves until the new one is up');
  assert.equal(h.origin.id, order[0]);
  conns[1].open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', order[1], true]);
  assert.equal(conns[0].closedByClient, true);
  assert.equal(h.origin.id, order[1]);
  // the old socket closing now is not a failure
  conns[0].kill();
  await tick();
  assert.equal(log.filter((l) => l[0] === 'failover').length, 0);
});

test('removed origin: onMigrate with reason "removed"; returning false leaves the move to the app', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 2 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'cam', {
    onMigrate: (i) => {
      log.push(['migrate', i.from.id, i.to?.id, i.reason]);
      return false;
    },
  });
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.filter((o) => o.id !== order[0]));
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', order[0], order[1], 'removed']]);
  assert.equal(h.state, 'connected');
  assert.equal(conns.length, 1);
});

test('the old connection dying during a migration is not a second failover', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 2 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'cam');
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.filter((o) => o.id !== order[0]));
  await tick();
  conns[0].kill();
  await tick();
  assert.equal(conns.length, 2);
  conns[1].open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', order[1], true]);
  assert.equal(h.state, 'connected');
});

test('a migration whose old connection died midway still reports where it moved from', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 2 }).map((o) => o.id);
  const connects = [];
  const { conns } = harness(d, 'cam', { onConnect: (i) => connects.push(i) });
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.filter((o) => o.id !== order[0]));
  await tick();
  conns[0].kill();
  await tick();
  conns[1].open();
  await tick();
  const last = connects.at(-1);
  assert.equal(last.migrated, true);
  assert.equal(last.previous?.id, order[0]);
});

test('many clients of a dead origin spread over the survivors by key', async () => {
  const d = new FakeDiscovery(five());
  const handles = [];
  const connsByKey = new Map();
  for (let k = 0; k < 200; k++) {
    const key = `stream-${k}`;
    const h = connectWithFailover(d, key, (o) => {
      const c = new FakeConn(o);
      connsByKey.set(key, c);
      queueMicrotask(() => c.open());
      return c;
    }, { timers: new FakeClock() });
    handles.push(h);
    cleanups.push(() => h.close());
  }
  await tick();
  await tick();
  const before = new Map(handles.map((h, k) => [k, h.origin.id]));
  // o3 crashes: its connections close
  for (const [, c] of connsByKey) if (c.origin.id === 'o3' && c.readyState === 1) c.kill();
  await tick();
  await tick();
  const landed = new Map();
  handles.forEach((h, k) => {
    assert.equal(h.state, 'connected');
    if (before.get(k) === 'o3') landed.set(h.origin.id, (landed.get(h.origin.id) ?? 0) + 1);
    else assert.equal(h.origin.id, before.get(k), 'clients of live origins do not move');
  });
  const moved = [...landed.values()].reduce((a, b) => a + b, 0);
  assert.ok(moved > 10, `${moved} clients were on o3`);
  assert.equal(landed.size, 4, `moved clients landed on ${JSON.stringify([...landed])}`);
  for (const n of landed.values()) assert.ok(n < moved * 0.6, 'no survivor takes the whole crowd');
});

test('end to end: real discovery and real origin WebSockets, crash and drain', async () => {
  // three origins, each a WebSocket server; the discovery server announces them
  const origins = [];
  for (let i = 0; i < 3; i++) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    cleanups.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }));
    origins.push({ wss, o: origin(`origin-${i}`, { url: `ws://127.0.0.1:${wss.address().port}/LiveApp/websocket`, port: wss.address().port }) });
  }
  const server = await startServer();
  cleanups.push(() => server.close());
  const d = new OriginDiscovery({ urls: [server.url], pool: 'demo/origin', WebSocket });
  cleanups.push(() => d.close());
  const sc = await server.next();
  sc.snapshot(1, origins.map((x) => x.o));
  await d.ready;

  const order = d.rank('live-1', { count: 3 }).map((o) => o.id);
  const events = [];
  let connected;
  const h = connectWithFailover(d, 'live-1', (o) => new WebSocket(o.url), {
    onConnect: (i) => {
      events.push(['connect', i.origin.id, performance.now()]);
      connected?.(i);
    },
    onFailover: (i) => events.push(['failover', i.from.id, performance.now()]),
    onMigrate: (i) => events.push(['migrate', i.from.id, i.to.id]),
  });
  cleanups.push(() => h.close());
  let next = new Promise((r) => (connected = r));
  assert.equal((await withTimeout(next, 2000, 'first connect')).origin.id, order[0]);

  // crash the first origin: its sockets drop without a close handshake
  next = new Promise((r) => (connected = r));
  const t0 = performance.now();
  for (const c of origins.find((x) => x.o.id === order[0]).wss.clients) c.terminate();
  const second = await withTimeout(next, 2000, 'failover connect');
  assert.equal(second.origin.id, order[1]);
  const fo = events.find((e) => e[0] === 'failover');
  assert.ok(fo[2] - t0 < 100, `failover began ${(fo[2] - t0).toFixed(1)} ms after the crash`);

  // discovery announces the second one draining → migrate to the third
  next = new Promise((r) => (connected = r));
  const drained = origins.find((x) => x.o.id === order[1]);
  const oldSocket = h.connection;
  sc.delta(2, [{ ...drained.o, state: 'draining' }], [order[0]]);
  const third = await withTimeout(next, 2000, 'migration connect');
  assert.equal(third.origin.id, order[2]);
  assert.equal(third.migrated, true);
  assert.deepEqual(events.find((e) => e[0] === 'migrate'), ['migrate', order[1], order[2]]);
  await withTimeout(once(oldSocket, 'close'), 2000, 'old socket close');
});

test('draining with nowhere to go: stays, and moves once a ready origin appears', async () => {
  const d = new FakeDiscovery([origin('a'), origin('b', { state: 'draining' })]);
  const { h, log, conns } = harness(d, 'k');
  await tick();
  conns[0].open();
  await tick();
  d.set([origin('a', { state: 'draining' }), origin('b', { state: 'draining' })]);
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', 'a', null, 'draining']]);
  assert.equal(h.state, 'connected', 'keeps serving on the draining origin');
  d.set([origin('a', { state: 'draining' }), origin('b', { state: 'draining' }), origin('c')]);
  await tick();
  assert.deepEqual(log.slice(3), [['migrate', 'a', 'c', 'draining'], ['open', 'c']]);
  conns[1].open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', 'c', true]);
  assert.ok(conns[0].closedByClient);
});
