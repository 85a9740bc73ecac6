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
  const { h, log, conns, clock } = harness(d, 'k', { backoff: { immediate: 0, initial: 100, max: 300, maxRetries: 3 } });
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

test('back-off schedule by default: at once, then 1 s doubling to 30 s with full jitter (GBB-style)', async () => {
  const d = new FakeDiscovery([origin('only')]);
  const delays = [];
  const timerDelays = [];
  let r = 0;
  const randoms = [0.5, 0.5, 0.999, 0.25, 0.999, 0.999, 0.999, 0.999, 0.999, 0.999, 0.5, 0];
  const clock = new FakeClock();
  const conns = [];
  const h = connectWithFailover(d, 'k', (o) => {
    const c = new FakeConn(o);
    conns.push(c);
    return c;
  }, {
    timers: clock,
    random: () => randoms[r++],
    onRetry: (i) => {
      delays.push(i.delay);
      // the retry timer is set right after onRetry; record what was actually scheduled
      queueMicrotask(() => timerDelays.push(clock.scheduled()));
    },
  });
  cleanups.push(() => h.close());
  for (let i = 0; i < 12; i++) {
    await tick();
    conns.at(-1).kill();
    await tick();
    clock.advance(delays.at(-1)); // exactly to the retry: the next attempt's connect timeout stays pending
  }
  const ceilings = [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000, 30000];
  assert.equal(delays.length, 12, 'one round per failure, no give-up');
  delays.forEach((dl, i) => assert.ok(dl === 0 ? ceilings[i] >= 0 : dl < ceilings[i], `retry ${i + 1}: ${dl}`));
  assert.deepEqual(delays, [0, 500, 1998, 1000, 7992, 15984, 29970, 29970, 29970, 29970, 15000, 0]);
  // each round schedules exactly the reported delay and nothing else (the failed attempt's
  // connect timeout is gone)
  assert.deepEqual(timerDelays, delays.map((dl) => [dl]));
  assert.equal(conns.length, 13, 'every round retried the origin');
  assert.equal(h.state, 'connecting', 'still trying after 12 rounds');
});

test('no give-up across a 5 minute outage; reconnects within the 30 s cap once origins answer', async () => {
  const d = new FakeDiscovery(five().slice(0, 3));
  let down = true;
  const opens = [];
  const retries = [];
  let gaveUp = false;
  let connected = null;
  const clock = new FakeClock();
  const h = connectWithFailover(
    d,
    'k',
    (o) => {
      opens.push(clock.now());
      if (down) return Promise.reject(new Error('connection refused'));
      const c = new FakeConn(o);
      queueMicrotask(() => c.open());
      return c;
    },
    {
      timers: clock,
      random: () => 0.9999,
      onRetry: (i) => retries.push(i),
      onGiveUp: () => (gaveUp = true),
      onConnect: (i) => (connected = { at: clock.now(), origin: i.origin.id }),
    },
  );
  cleanups.push(() => h.close());
  const step = async (ms) => {
    await tick();
    clock.advance(ms);
    await tick();
  };
  for (let t = 0; t < 300_000; t += 500) await step(500);
  assert.equal(gaveUp, false);
  assert.equal(h.state, 'backoff');
  assert.ok(retries.length > 10, `${retries.length} rounds in 5 minutes (more than the old 10-round limit)`);
  assert.ok(retries.every((r) => r.delay < 30_000), 'capped at 30 s');
  assert.match(retries.at(-1).error.message, /refused/);
  // attempts never stopped: no gap between two opening attempts exceeds the cap
  for (let i = 1; i < opens.length; i++) assert.ok(opens[i] - opens[i - 1] <= 30_000, `gap ${opens[i] - opens[i - 1]}`);
  assert.ok(opens.at(-1) > 270_000, `still trying at the end (${opens.at(-1)})`);

  down = false;
  const upAt = clock.now();
  for (let t = 0; t < 31_000 && !connected; t += 500) await step(500);
  assert.ok(connected, 'connected after the outage');
  assert.ok(connected.at - upAt <= 30_000, `connected ${connected.at - upAt} ms after the origins came back`);
  assert.equal(h.state, 'connected');
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

// ---------------------------------------------------------------------------------------------
// Removal while the media socket still looks open (frozen origin, dead node: no TCP reset)

test('removed while its socket is still open: migrates to the next ranked origin, old socket closed without waiting', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 5 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'cam');
  await tick();
  conns[0].open();
  await tick();
  // A frozen origin: its socket never closes, never answers; only discovery knows.
  conns[0].close = () => {
    conns[0].closedByClient = true; // readyState stays 1 and no `close` event ever comes
  };
  d.set(d.origins.filter((o) => o.id !== order[0]));
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', order[0], order[1], 'removed'], ['open', order[1]]]);
  assert.equal(h.state, 'migrating');
  conns[1].open();
  await tick();
  assert.deepEqual(log.at(-1), ['connect', order[1], true]);
  assert.equal(conns[0].closedByClient, true, 'the frozen socket was closed');
  assert.equal(conns[0].readyState, 1, 'and nothing waited for it to finish closing');
  assert.equal(h.state, 'connected');
  assert.equal(h.origin.id, order[1]);
  assert.equal(h.connection, conns[1]);
  assert.equal(log.filter((l) => l[0] === 'failover').length, 0);
});

test('removed in a snapshot (left the list): migrates as for a delta removal', async () => {
  const d = new FakeDiscovery(five());
  const order = rank(d.origins, 'cam', { count: 5 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'cam');
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.filter((o) => o.id !== order[0]), 'snapshot');
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', order[0], order[1], 'removed'], ['open', order[1]]]);
  conns[1].open();
  await tick();
  assert.equal(h.origin.id, order[1]);
  assert.ok(conns[0].closedByClient);
});

test('removed with no other origin: the removal is a failure — socket dropped, back-off', async () => {
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, conns, clock } = harness(d, 'k');
  await tick();
  conns[0].open();
  await tick();
  d.set([]);
  await tick();
  assert.deepEqual(log.slice(2), [
    ['migrate', 'a', null, 'removed'],
    ['failover', 'a', null, 'removed'],
    ['retry', 1, 0],
  ]);
  assert.equal(h.state, 'backoff');
  assert.equal(h.connection, null);
  assert.ok(conns[0].closedByClient, 'not kept open on a removed origin');
  clock.advance(0);
  await tick();
  assert.equal(conns.length, 1, 'nothing to open while the list is empty');
  // a replacement appears → connects at once
  d.set([origin('b')]);
  await tick();
  assert.deepEqual(log.at(-1), ['open', 'b']);
});

test('removed while every replacement fails: the removed origin\'s socket is dropped, not kept', async () => {
  const d = new FakeDiscovery(five().slice(0, 3));
  const order = rank(d.origins, 'k', { count: 3 }).map((o) => o.id);
  const { h, log, conns } = harness(d, 'k');
  await tick();
  conns[0].open();
  await tick();
  d.set(d.origins.filter((o) => o.id !== order[0]));
  await tick();
  conns[1].kill();
  await tick();
  conns[2].kill();
  await tick();
  assert.deepEqual(log.slice(2), [
    ['migrate', order[0], order[1], 'removed'],
    ['open', order[1]],
    ['failover', order[1], order[2], 'error'],
    ['open', order[2]],
    ['failover', order[2], null, 'error'],
    ['failover', order[0], null, 'removed'],
    ['retry', 1, 0],
  ]);
  assert.equal(h.state, 'backoff');
  assert.equal(h.connection, null);
  assert.ok(conns[0].closedByClient);
});

test('draining, then removed while the move is under way: no longer a fallback', async () => {
  const d = new FakeDiscovery([origin('a'), origin('b')]);
  const { h, log, conns } = harness(d, 'k');
  await tick();
  const first = conns[0].origin.id;
  const other = first === 'a' ? 'b' : 'a';
  conns[0].open();
  await tick();
  d.set([origin(first, { state: 'draining' }), origin(other)]);
  await tick();
  assert.deepEqual(log.slice(2), [['migrate', first, other, 'draining'], ['open', other]]);
  d.set([origin(other)]); // the draining one is now gone
  await tick();
  assert.equal(h.state, 'migrating');
  conns[1].kill(); // and the replacement fails
  await tick();
  assert.deepEqual(log.slice(4), [
    ['failover', other, null, 'error'],
    ['failover', first, null, 'removed'],
    ['retry', 1, 0],
  ]);
  assert.equal(h.connection, null);
  assert.ok(conns[0].closedByClient);
});

test('end to end: a frozen origin removed by discovery (delta, then snapshot) is left at once', async () => {
  const origins = [];
  for (let i = 0; i < 3; i++) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    cleanups.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }));
    origins.push({ wss, o: origin(`origin-${i}`, { url: `ws://127.0.0.1:${wss.address().port}/`, port: wss.address().port }) });
  }
  const server = await startServer();
  cleanups.push(() => server.close());
  const d = new OriginDiscovery({ urls: [server.url], pool: 'demo/origin', WebSocket });
  cleanups.push(() => d.close());
  const sc = await server.next();
  sc.snapshot(1, origins.map((x) => x.o));
  await d.ready;
  const order = d.rank('live-1', { count: 3 }).map((o) => o.id);
  let connected;
  const h = connectWithFailover(d, 'live-1', (o) => new WebSocket(o.url), { onConnect: (i) => connected?.(i) });
  cleanups.push(() => h.close());
  let next = new Promise((r) => (connected = r));
  assert.equal((await withTimeout(next, 2000, 'first connect')).origin.id, order[0]);

  // Freeze the first origin: its server side stops reading (no close handshake will ever be
  // answered) while the TCP connection stays up.
  const freeze = (id) => {
    for (const c of origins.find((x) => x.o.id === id).wss.clients) c._socket.pause();
  };
  freeze(order[0]);
  let old = h.connection;
  next = new Promise((r) => (connected = r));
  const t0 = performance.now();
  sc.delta(2, [], [order[0]]);
  let moved = await withTimeout(next, 2000, 'migration after a delta removal');
  assert.equal(moved.origin.id, order[1]);
  assert.equal(moved.migrated, true);
  assert.ok(performance.now() - t0 < 1000, `moved after ${(performance.now() - t0).toFixed(0)} ms`);
  assert.notEqual(old.readyState, WebSocket.OPEN, 'the frozen socket was closed by the client');

  // The second one freezes and leaves the list in a later snapshot.
  freeze(order[1]);
  old = h.connection;
  next = new Promise((r) => (connected = r));
  sc.snapshot(9, [origins.find((x) => x.o.id === order[2]).o]);
  moved = await withTimeout(next, 2000, 'migration after a snapshot without the origin');
  assert.equal(moved.origin.id, order[2]);
  assert.notEqual(old.readyState, WebSocket.OPEN);
  assert.equal(h.state, 'connected');
});

// ---------------------------------------------------------------------------------------------
// Session state: what the app re-publishes with on every new connection

test('session state: every open() gets a copy taken at the call — first, after failures, migrations and back-off', async () => {
  const d = new FakeDiscovery(five().slice(0, 3));
  const order = rank(d.origins, 's', { count: 3 }).map((o) => o.id);
  const opens = [];
  const connects = [];
  const migrates = [];
  const clock = new FakeClock();
  const conns = [];
  const h = connectWithFailover(
    d,
    's',
    (o, ctx) => {
      opens.push({ id: o.id, session: ctx.session });
      const c = new FakeConn(o);
      conns.push(c);
      return c;
    },
    {
      timers: clock,
      random: () => 0.9999,
      session: { streamId: 's', publish: { bitrate: 1000, codecs: ['h264'] } },
      onConnect: (i) => connects.push(i.session),
      onMigrate: (i) => migrates.push(i.session),
    },
  );
  cleanups.push(() => h.close());
  await tick();
  assert.deepEqual(opens[0], { id: order[0], session: { streamId: 's', publish: { bitrate: 1000, codecs: ['h264'] } } });
  assert.notEqual(opens[0].session, h.session, 'a copy, not the live object');
  assert.notEqual(opens[0].session.publish, h.session.publish, 'a deep copy');

  // The app changes its state in place; what the first open() got does not change.
  h.session.publish.bitrate = 2000;
  assert.equal(opens[0].session.publish.bitrate, 1000);
  // … and a mutation of the copy does not reach the handle.
  opens[0].session.publish.codecs.push('vp8');
  assert.deepEqual(h.session.publish.codecs, ['h264']);

  // A failed attempt: the next open() gets the state as it is now.
  conns[0].kill();
  await tick();
  assert.deepEqual(opens[1], { id: order[1], session: { streamId: 's', publish: { bitrate: 2000, codecs: ['h264'] } } });
  conns[1].open();
  await tick();
  assert.deepEqual(connects, [opens[1].session], 'onConnect sees the copy its open() got');
  assert.equal(connects[0], opens[1].session);

  // Replaced wholesale, then a migration (draining).
  h.session = { streamId: 's', publish: { bitrate: 3000 } };
  d.set(d.origins.map((o) => (o.id === order[1] ? { ...o, state: 'draining' } : o)));
  await tick();
  assert.deepEqual(migrates, [{ streamId: 's', publish: { bitrate: 3000 } }]);
  assert.notEqual(migrates[0], h.session);
  const target = opens.at(-1).id;
  assert.notEqual(target, order[1]);
  assert.deepEqual(opens.at(-1).session, { streamId: 's', publish: { bitrate: 3000 } });
  conns.at(-1).open();
  await tick();

  // Everything fails → back-off → the retry's open() gets the state as of the retry.
  d.set(d.origins.map((o) => (o.id === target ? o : { ...o, state: 'draining' })));
  conns.at(-1).kill();
  await tick();
  assert.equal(h.state, 'backoff');
  h.session.publish.bitrate = 4000;
  clock.advance(0);
  await tick();
  assert.deepEqual(opens.at(-1), { id: target, session: { streamId: 's', publish: { bitrate: 4000 } } });
  assert.equal(new Set(opens.map((o) => o.session)).size, opens.length, 'a fresh copy for every call');
});

test('session state: no session → undefined; a value that cannot be copied is a clear error, not a crash', async () => {
  const d = new FakeDiscovery([origin('a'), origin('b')]);
  const sessions = [];
  const failovers = [];
  const clock = new FakeClock();
  const h = connectWithFailover(d, 'k', (o, ctx) => {
    sessions.push(ctx.session);
    return new FakeConn(o);
  }, { timers: clock, onFailover: (i) => failovers.push(i) });
  cleanups.push(() => h.close());
  await tick();
  assert.deepEqual(sessions, [undefined]);
  assert.equal(h.session, undefined);

  assert.throws(() => {
    const leaked = connectWithFailover(d, 'k', () => new FakeConn(origin('a')), { timers: new FakeClock(), session: { f() {} } });
    leaked.close(); // reached only if the constructor failed to reject the value
  }, TypeError);
  assert.throws(() => (h.session = { cb: () => {} }), /structured-cloneable/);
  assert.equal(h.session, undefined, 'a rejected value is not stored');

  // An in-place mutation that makes it uncloneable: the attempt fails with the reason.
  h.session = { ok: 1 };
  h.session.fn = () => {};
  h.fail(new Error('app says broken'));
  await tick();
  assert.ok(failovers.some((f) => /structured-cloneable/.test(f.error.message)), JSON.stringify(failovers.map((f) => f.error.message)));
});

// ---------------------------------------------------------------------------------------------
// Ending a back-off wait: discovery reconnected, network back

/** Fails the single origin `rounds` times so that the helper waits in a long back-off. */
async function intoLongBackoff(d, rounds, extra = {}) {
  const hh = harness(d, 'k', extra);
  await tick();
  for (let i = 0; i < rounds; i++) {
    hh.last().kill();
    await tick();
    assert.equal(hh.h.state, 'backoff');
    if (i < rounds - 1) {
      hh.clock.advance(hh.log.at(-1)[2]);
      await tick();
    }
  }
  return hh;
}

test('a discovery reconnect (fresh sync) ends a back-off wait at once; the round count is kept', async () => {
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, conns, clock } = await intoLongBackoff(d, 5);
  assert.deepEqual(log.at(-1), ['retry', 5, 7999]);
  const before = conns.length;
  d.sync();
  await tick();
  assert.equal(conns.length, before + 1, 'retried without waiting the 8 s');
  assert.deepEqual(log.at(-1), ['open', 'a']);
  assert.equal(h.state, 'connecting');
  assert.deepEqual(clock.scheduled(), [5000], 'only the connect timeout is pending');
  conns.at(-1).kill();
  await tick();
  assert.deepEqual(log.at(-1), ['retry', 6, 15998], 'the next wait continues the schedule');
});

test('a discovery sync while connected changes nothing; close() unsubscribes', async () => {
  const d = new FakeDiscovery([origin('a')]);
  const { h, log, last } = harness(d, 'k');
  await tick();
  last().open();
  await tick();
  assert.equal(d.subscribers('sync'), 1);
  d.sync();
  await tick();
  assert.equal(log.length, 2);
  h.close();
  assert.equal(d.subscribers('sync'), 0);
  assert.equal(d.subscribers('change'), 0);
});

test('a browser `online` event ends a back-off wait at once', async () => {
  const d = new FakeDiscovery([origin('a')]);
  const net = new EventTarget();
  const { h, log, conns } = await intoLongBackoff(d, 4, { onlineEvents: net });
  const before = conns.length;
  net.dispatchEvent(new Event('online'));
  await tick();
  assert.equal(conns.length, before + 1);
  assert.deepEqual(log.at(-1), ['open', 'a']);
  h.close();
  net.dispatchEvent(new Event('online')); // unsubscribed: nothing happens
  await tick();
  assert.equal(conns.length, before + 1);
});

test('end to end: discovery reconnects after an outage → the media back-off wait ends at once', async () => {
  const server = await startServer();
  cleanups.push(() => server.close());
  const d = new OriginDiscovery({ urls: [server.url], pool: 'demo/origin', WebSocket });
  cleanups.push(() => d.close());
  const c1 = await server.next();
  c1.snapshot(1, [origin('a')]);
  await d.ready;
  // The media side runs on a fake clock that is never advanced: only an event can wake it.
  const clock = new FakeClock();
  const conns = [];
  const retries = [];
  let opened;
  const h = connectWithFailover(d, 'k', (o) => {
    const c = new FakeConn(o);
    conns.push(c);
    opened?.(c);
    return c;
  }, { timers: clock, random: () => 0.9999, onRetry: (i) => retries.push(i) });
  cleanups.push(() => h.close());
  await tick();
  for (let i = 0; i < 3; i++) {
    conns.at(-1).kill();
    await tick();
    if (i < 2) clock.advance(retries.at(-1).delay);
    await tick();
  }
  assert.equal(h.state, 'backoff');
  assert.equal(retries.at(-1).delay, 1999);
  const n = conns.length;

  // Discovery drops (its server went away) and comes back with the same list: no `change`.
  let changes = 0;
  d.on('change', () => changes++);
  const next = new Promise((r) => (opened = r));
  server.terminateAll();
  const c2 = await server.next();
  c2.snapshot(1, [origin('a')]);
  const c = await withTimeout(next, 2000, 'the media retry after discovery synced');
  assert.equal(c.origin.id, 'a');
  assert.equal(conns.length, n + 1);
  assert.equal(changes, 0, 'the list did not change: only the sync woke the helper');
});
