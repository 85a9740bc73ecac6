import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { OriginDiscovery, watchUrl } from '../src/index.js';
import { EPOCH, deadUrl, origin, startServer, waitFor } from './helpers.js';

const cleanups = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function setup(opts = {}) {
  const server = await startServer();
  cleanups.push(() => server.close());
  const d = new OriginDiscovery({ urls: [server.url], pool: 'demo/origin', WebSocket, ...opts });
  cleanups.push(() => d.close());
  return { server, d };
}

const ids = (list) => list.map((o) => o.id);

test('watch URL: http→ws, path prefix kept, resume parameters', () => {
  assert.equal(watchUrl('http://h:8080', 'demo/origin'), 'ws://h:8080/v1/pools/demo/origin/watch');
  assert.equal(watchUrl('https://h/base/', 'ns/svc', { epoch: 'abc', revision: 7 }), 'wss://h/base/v1/pools/ns/svc/watch?epoch=abc&revision=7');
  assert.equal(watchUrl('ws://h/?token=t&epoch=old', 'a/b', {}), 'ws://h/v1/pools/a/b/watch?token=t');
  assert.throws(() => watchUrl('http://h', 'nopool'), TypeError);
});

test('applies the snapshot, then deltas in order, emitting what changed', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  assert.equal(c.url.pathname, '/v1/pools/demo/origin/watch');
  assert.equal(c.url.search, '', 'a fresh subscription carries no resume parameters');

  let change = waitFor(d, 'change');
  c.snapshot(5, [origin('a'), origin('b')]);
  let ev = await change;
  assert.equal(ev.reason, 'snapshot');
  assert.deepEqual(ids(ev.added), ['a', 'b']);
  await d.ready;
  assert.equal(d.epoch, EPOCH);
  assert.equal(d.revision, 5);
  assert.deepEqual(ids(d.origins), ['a', 'b']);

  change = waitFor(d, 'change');
  c.delta(6, [origin('b', { state: 'draining' }), origin('c')], ['a']);
  ev = await change;
  assert.equal(ev.reason, 'delta');
  assert.equal(ev.revision, 6);
  assert.deepEqual(ids(ev.added), ['c']);
  assert.deepEqual(ids(ev.updated), ['b']);
  assert.deepEqual(ids(ev.removed), ['a']);
  assert.deepEqual(ids(d.origins), ['b', 'c']);
  assert.equal(d.get('b').state, 'draining');
  assert.deepEqual(ids(d.rank('k', { count: 5 })), ['c'], 'draining origins are never ranked');
  assert.deepEqual(c.received, [], 'the client sends nothing');
});

test('a change of weight or load alone is an update (deltas and snapshots)', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  c.snapshot(1, [origin('a'), origin('b')]);
  await d.ready;
  let change = waitFor(d, 'change');
  c.delta(2, [origin('a', { load: 0.35 }), origin('b', { weight: 3 })]);
  let ev = await change;
  assert.deepEqual(ids(ev.updated), ['a', 'b']);
  assert.equal(d.get('a').load, 0.35);
  assert.equal(d.get('b').weight, 3);
  change = waitFor(d, 'change', (e) => e.revision === 9);
  c.snapshot(9, [origin('a', { load: 0.4 }), origin('b', { weight: 3 })]);
  ev = await change;
  assert.deepEqual(ids(ev.updated), ['a']);
  assert.equal(d.get('a').load, 0.4);
});

test('a later snapshot (server skipped us ahead) replaces the state entirely', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  c.snapshot(1, [origin('a'), origin('b')]);
  await d.ready;
  const change = waitFor(d, 'change', (e) => e.revision === 40);
  c.snapshot(40, [origin('b'), origin('z')]);
  const ev = await change;
  assert.equal(ev.reason, 'snapshot');
  assert.deepEqual(ids(ev.added), ['z']);
  assert.deepEqual(ids(ev.removed), ['a']);
  assert.deepEqual(ids(d.origins), ['b', 'z']);
  // and deltas continue from the new revision
  const next = waitFor(d, 'change', (e) => e.revision === 41);
  c.delta(41, [origin('y')]);
  await next;
  assert.deepEqual(ids(d.origins), ['b', 'y', 'z']);
});

test('a revision gap reconnects with epoch and revision, and the missed deltas apply', async () => {
  const { server, d } = await setup();
  const c1 = await server.next();
  c1.snapshot(10, [origin('a')]);
  await d.ready;
  const disconnected = waitFor(d, 'disconnect');
  c1.delta(12, [origin('lost')]); // 11 is missing
  const dis = await disconnected;
  assert.equal(dis.reason, 'gap');
  assert.equal(dis.retryIn, 0, 'a gap is repaired at once');

  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('epoch'), EPOCH);
  assert.equal(c2.url.searchParams.get('revision'), '10');
  assert.equal(d.revision, 10, 'the bad delta was not applied');
  assert.equal(d.get('lost'), undefined);
  const change = waitFor(d, 'change', (e) => e.revision === 12);
  c2.delta(11, [origin('b')]);
  c2.delta(12, [], ['a']);
  await change;
  assert.deepEqual(ids(d.origins), ['b']);
});

test('a delta from another epoch is a gap', async () => {
  const { server, d } = await setup();
  const c1 = await server.next();
  c1.snapshot(3, [origin('a')]);
  await d.ready;
  const dis = waitFor(d, 'disconnect');
  c1.delta(4, [origin('b')], [], { epoch: 'other' });
  assert.equal((await dis).reason, 'gap');
  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('revision'), '3');
  assert.equal(d.get('b'), undefined);
});

test('still behind the previous heartbeat\'s revision means a lost delta → resume', async () => {
  const { server, d } = await setup();
  const c1 = await server.next();
  c1.snapshot(3, [origin('a')]);
  await d.ready;
  let disconnected = false;
  const off = d.on('disconnect', () => (disconnected = true));
  // first heartbeat ahead: a delta may still be in flight, tolerated
  c1.send({ type: 'heartbeat', revision: 4 });
  c1.send({ type: 'heartbeat', revision: 4 });
  const c2 = await server.next();
  off();
  assert.ok(disconnected);
  assert.equal(c2.url.searchParams.get('revision'), '3');
});

test('a heartbeat ahead followed by the delta is not a gap', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  c.snapshot(3, [origin('a')]);
  await d.ready;
  let reasons = [];
  d.on('disconnect', (e) => reasons.push(e.reason));
  c.send({ type: 'heartbeat', revision: 4 });
  c.delta(4, [origin('b')]);
  c.send({ type: 'heartbeat', revision: 4 });
  const change = waitFor(d, 'change', (e) => e.revision === 5);
  c.delta(5, [origin('c')]);
  await change;
  assert.deepEqual(reasons, []);
});

test('missing heartbeats → the dead connection is abandoned and the client resumes', async () => {
  const { server, d } = await setup({ heartbeatTimeout: 400 });
  const c1 = await server.next();
  c1.snapshot(7, [origin('a')]);
  await d.ready;
  // heartbeats keep it alive well past the timeout …
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 50));
    c1.send({ type: 'heartbeat', revision: 7 });
  }
  assert.equal(server.connections.length, 1, 'heartbeats keep the session');
  // … then the server goes silent (a half-open TCP connection looks exactly like this)
  const t0 = Date.now();
  const dis = await waitFor(d, 'disconnect');
  assert.equal(dis.reason, 'timeout');
  assert.ok(Date.now() - t0 >= 350, 'not before the timeout');
  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('epoch'), EPOCH);
  assert.equal(c2.url.searchParams.get('revision'), '7');
  assert.deepEqual(ids(d.origins), ['a'], 'the last list is kept while reconnecting');
});

test('rotates to the next discovery URL when one is unreachable', async () => {
  const dead = await deadUrl();
  const server = await startServer();
  cleanups.push(() => server.close());
  const d = new OriginDiscovery({ urls: [dead, server.url], pool: 'demo/origin', WebSocket });
  cleanups.push(() => d.close());
  const errors = [];
  d.on('error', (e) => errors.push(e.error));
  const c = await server.next();
  c.snapshot(1, [origin('a')]);
  await d.ready;
  assert.equal(d.url, server.url);
  assert.ok(errors.length >= 1, 'the refused URL was reported');
});

test('server shutdown (1001) moves to another discovery URL at once, resuming', async () => {
  const s1 = await startServer();
  const s2 = await startServer();
  cleanups.push(() => s1.close(), () => s2.close());
  const d = new OriginDiscovery({ urls: [s1.url, s2.url], pool: 'demo/origin', WebSocket });
  cleanups.push(() => d.close());
  const c1 = await s1.next();
  c1.snapshot(2, [origin('a')]);
  await d.ready;
  const dis = waitFor(d, 'disconnect');
  c1.close(1001, 'shutting down');
  const ev = await dis;
  assert.equal(ev.reason, 'shutdown');
  assert.equal(ev.retryIn, 0);
  const c2 = await s2.next();
  assert.equal(c2.url.searchParams.get('revision'), '2');
});

test('stale is reported without touching the revision', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  c.snapshot(4, [origin('a')]);
  await d.ready;
  assert.equal(d.stale, false);
  let ev = waitFor(d, 'stale');
  c.send({ type: 'stale', pool: 'demo/origin', epoch: EPOCH, revision: 4, stale: true });
  assert.deepEqual(await ev, { stale: true });
  assert.equal(d.stale, true);
  assert.equal(d.revision, 4);
  assert.deepEqual(ids(d.origins), ['a'], 'a stale list is kept');
  ev = waitFor(d, 'stale');
  c.send({ type: 'stale', pool: 'demo/origin', epoch: EPOCH, revision: 4, stale: false });
  assert.deepEqual(await ev, { stale: false });
});

test('a removed pool empties the list and later subscribes afresh', async () => {
  const { server, d } = await setup({ backoff: { initial: 20, max: 20 } });
  const c1 = await server.next();
  c1.snapshot(9, [origin('a'), origin('b')]);
  await d.ready;
  const removed = waitFor(d, 'removed');
  const change = waitFor(d, 'change', (e) => e.reason === 'removed');
  c1.send({ type: 'removed', pool: 'demo/origin', epoch: EPOCH, revision: 10 });
  c1.close(1000);
  await removed;
  assert.deepEqual(ids((await change).removed), ['a', 'b']);
  assert.deepEqual(d.origins, []);
  const c2 = await server.next();
  assert.equal(c2.url.search, '', 'no resume into a pool that was removed');
});

test('a malformed frame is an error and the client reconnects', async () => {
  const { server, d } = await setup();
  const c1 = await server.next();
  c1.snapshot(1, [origin('a')]);
  await d.ready;
  const err = waitFor(d, 'error');
  c1.send('not json');
  assert.match((await err).error.message, /malformed/);
  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('revision'), '1');
});

test('unknown message types are ignored (forward compatible)', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  c.snapshot(1, [origin('a')]);
  await d.ready;
  c.send({ type: 'pong', revision: 1 });
  c.send({ type: 'something-new' });
  const change = waitFor(d, 'change');
  c.delta(2, [origin('b')]);
  await change;
  assert.equal(server.connections.length, 1);
});

test('close() stops reconnecting and rejects a pending ready', async () => {
  const { server, d } = await setup();
  const c = await server.next();
  d.close();
  await assert.rejects(d.ready, /closed/);
  await c.closed;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(server.connections.length, 1);
});

/**
 * Runs `fn` with `globalThis.WebSocket` replaced by `value` (undefined: none), restoring the
 * original property afterwards — Node >= 22 has a global WebSocket, Node 20 has none.
 */
function withGlobalWebSocket(value, fn) {
  const desc = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
  assert.ok(!desc || desc.configurable, 'globalThis.WebSocket must be replaceable for this test');
  Object.defineProperty(globalThis, 'WebSocket', { value, configurable: true, writable: true });
  try {
    return fn();
  } finally {
    if (desc) Object.defineProperty(globalThis, 'WebSocket', desc);
    else delete globalThis.WebSocket;
  }
}

test('needs a WebSocket class where there is no global one, and uses the global one when present', () => {
  const hadOne = typeof globalThis.WebSocket;
  withGlobalWebSocket(undefined, () => {
    assert.throws(() => new OriginDiscovery({ urls: ['http://x'], pool: 'a/b' }), (e) => e instanceof TypeError && /WebSocket/.test(e.message));
  });
  const urls = [];
  class GlobalSocket extends EventTarget {
    constructor(url) {
      super();
      urls.push(url);
      this.readyState = 0;
    }
    close() {}
  }
  withGlobalWebSocket(GlobalSocket, () => {
    const d = new OriginDiscovery({ urls: ['http://x'], pool: 'a/b' });
    d.close();
  });
  assert.deepEqual(urls, ['ws://x/v1/pools/a/b/watch']);
  assert.equal(typeof globalThis.WebSocket, hadOne, 'the original global is restored');
});

test('reconnect back-off: one immediate try per URL, then full jitter up to the cap', async () => {
  // A WebSocket whose every connection attempt is refused.
  class RefusedSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      queueMicrotask(() => {
        this.readyState = 3;
        this.dispatchEvent(new Event('error'));
        const ev = new Event('close');
        ev.code = 1006;
        this.dispatchEvent(ev);
      });
    }
    close() {}
  }
  const { FakeClock } = await import('./helpers.js');
  const clock = new FakeClock();
  const d = new OriginDiscovery({
    urls: ['http://a', 'http://b'],
    pool: 'demo/origin',
    WebSocket: RefusedSocket,
    timers: clock,
    random: () => 0.9999,
    backoff: { initial: 100, max: 1000 },
  });
  cleanups.push(() => d.close());
  const seen = [];
  d.on('disconnect', (e) => seen.push([new URL(e.url).host, e.retryIn]));
  d.on('error', () => {});
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(1000);
  }
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen.slice(0, 8), [
    ['a', 0], // after a failure every URL gets one immediate try …
    ['b', 0],
    ['a', 99], // … then back off: ceiling 100, 200, 400 …
    ['b', 199],
    ['a', 399],
    ['b', 799],
    ['a', 999], // capped
    ['b', 999],
  ]);
});

test('a resumed session that only ever saw heartbeats still resets the back-off', async () => {
  let now = 0;
  const { server, d } = await setup({ timers: { now: () => now }, random: () => 0.9999 });
  const c1 = await server.next();
  c1.snapshot(3, [origin('a')]);
  await d.ready;
  c1.delta(5); // gap → immediate resume
  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('revision'), '3');
  const beat = waitFor(d, 'message', (m) => m.message.type === 'heartbeat');
  c2.send({ type: 'heartbeat', revision: 3 });
  await beat;
  now += 5_000; // the resumed session has been working for a while
  const dis = waitFor(d, 'disconnect');
  c2.close(1011);
  const ev = await dis;
  assert.equal(ev.retryIn, 0, 'a working session ending is retried at once');
  await server.next();
});

test('sync: once per session, after its snapshot (fresh) or its first frame (resumed)', async () => {
  const { server, d } = await setup();
  const syncs = [];
  const order = [];
  d.on('sync', (e) => {
    syncs.push(e);
    order.push('sync');
  });
  d.on('change', () => order.push('change'));
  const c1 = await server.next();
  /** the session's own watch URL, as the client built it */
  const urlOf = (c) => `${server.wsUrl}${c.url.pathname}${c.url.search}`;
  const first = waitFor(d, 'sync');
  c1.snapshot(3, [origin('a')]);
  assert.deepEqual(await first, { url: urlOf(c1), resumed: false, epoch: EPOCH, revision: 3 });
  assert.deepEqual(order, ['change', 'sync'], 'the list is applied before sync is announced');
  const change = waitFor(d, 'change', (e) => e.revision === 4);
  c1.delta(4, [origin('b')]);
  await change;
  assert.equal(syncs.length, 1, 'a delta on the same session is no new sync');

  // a gap → resumed session; the replayed delta brings it up to date
  c1.delta(9);
  const c2 = await server.next();
  assert.equal(c2.url.searchParams.get('revision'), '4');
  let next = waitFor(d, 'sync');
  c2.delta(5, [origin('c')]);
  assert.deepEqual(await next, { url: urlOf(c2), resumed: true, epoch: EPOCH, revision: 5 });

  // nothing missed: a resumed session carries only a heartbeat, still a sync
  c2.delta(7);
  const c3 = await server.next();
  next = waitFor(d, 'sync');
  c3.send({ type: 'heartbeat', revision: 5 });
  assert.equal((await next).resumed, true);

  // the server could not resume (e.g. it restarted): a snapshot, so not resumed
  server.terminateAll();
  const c4 = await server.next();
  next = waitFor(d, 'sync');
  c4.snapshot(1, [origin('a')], { epoch: 'e2' });
  assert.deepEqual(await next, { url: urlOf(c4), resumed: false, epoch: 'e2', revision: 1 });
  assert.equal(syncs.length, 4);
});

test('a browser `online` event ends a reconnect back-off wait at once', async () => {
  const made = [];
  class RefusedSocket extends EventTarget {
    constructor(url) {
      super();
      made.push(url);
      this.readyState = 0;
      queueMicrotask(() => {
        this.readyState = 3;
        const ev = new Event('close');
        ev.code = 1006;
        this.dispatchEvent(ev);
      });
    }
    close() {}
  }
  const { FakeClock } = await import('./helpers.js');
  const clock = new FakeClock();
  const net = new EventTarget();
  const d = new OriginDiscovery({ urls: ['http://a'], pool: 'demo/origin', WebSocket: RefusedSocket, timers: clock, random: () => 0.9999, onlineEvents: net });
  cleanups.push(() => d.close());
  const waits = [];
  d.on('disconnect', (e) => waits.push(e.retryIn));
  d.on('error', () => {});
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(waits.at(-1) ?? 0);
  }
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(waits.slice(0, 4), [0, 999, 1999, 3999], 'GBB-style: at once, then 1 s, 2 s, 4 s ceilings');
  const n = made.length;
  net.dispatchEvent(new Event('online'));
  assert.equal(made.length, n + 1, 'reconnected without waiting the 4 s');
  d.close();
  net.dispatchEvent(new Event('online'));
  assert.equal(made.length, n + 1, 'close() unsubscribes');
});
