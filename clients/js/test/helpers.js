// Test helpers: a scripted watch server (real `ws` WebSocketServer on 127.0.0.1:0), event
// waiters with timeouts, a fake clock, and fake connections/discovery for the failover helper.

import { once } from 'node:events';
import { createServer } from 'node:net';
import { WebSocketServer } from 'ws';
import { rank } from '../src/index.js';

export const EPOCH = 'e1';

/**
 * @param {string} id
 * @param {Partial<import('../index.d.ts').Origin>} [extra]
 * @returns {import('../index.d.ts').Origin}
 */
export function origin(id, extra = {}) {
  return { id, ip: '10.0.0.1', port: 5080, state: 'ready', since: '2026-11-22T00:00:00.000Z', ...extra };
}

/** A scripted server-side connection. */
class ScriptedConnection {
  constructor(ws, req) {
    this.ws = ws;
    this.url = new URL(req.url, 'http://localhost');
    this.received = [];
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data) => this.received.push(String(data)));
  }
  send(msg) {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }
  snapshot(revision, origins, extra = {}) {
    this.send({ type: 'snapshot', pool: 'demo/origin', epoch: EPOCH, revision, stale: false, origins, ...extra });
  }
  delta(revision, upsert = [], remove = [], extra = {}) {
    this.send({ type: 'delta', pool: 'demo/origin', epoch: EPOCH, revision, upsert, remove, ...extra });
  }
  close(code = 1000, reason = '') {
    this.ws.close(code, reason);
  }
}

/** Starts a scripted watch server; `next()` resolves with the next client connection. */
export async function startServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const queue = [];
  const waiters = [];
  const all = [];
  wss.on('connection', (ws, req) => {
    const c = new ScriptedConnection(ws, req);
    all.push(c);
    const w = waiters.shift();
    if (w) w(c);
    else queue.push(c);
  });
  const { port } = wss.address();
  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    connections: all,
    next(timeout = 2000) {
      const c = queue.shift();
      if (c) return Promise.resolve(c);
      return withTimeout(new Promise((resolve) => waiters.push(resolve)), timeout, 'server connection');
    },
    /** Drops every client without a close handshake (a crashed process). */
    terminateAll() {
      for (const ws of wss.clients) ws.terminate();
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

/** A URL on which nothing listens (connection refused). */
export async function deadUrl() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return `http://127.0.0.1:${port}`;
}

export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/** Waits for an event of `type` on an `on()`-capable target whose detail satisfies `pred`. */
export function waitFor(target, type, pred = () => true, ms = 2000) {
  let off;
  const p = new Promise((resolve) => {
    off = target.on(type, (d) => {
      if (pred(d)) resolve(d);
    });
  });
  return withTimeout(p, ms, `"${type}" event`).finally(() => off());
}

/** Deterministic timers: nothing runs until `advance()`. */
export class FakeClock {
  constructor() {
    this.t = 0;
    this.seq = 0;
    this.pending = new Map();
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.pending.set(id, { at: this.t + Math.max(0, ms), fn, ms });
      return id;
    };
    this.clearTimeout = (id) => {
      this.pending.delete(id);
    };
    this.now = () => this.t;
  }
  /** Delays of the timers currently scheduled. */
  scheduled() {
    return [...this.pending.values()].map((p) => p.ms);
  }
  /** Moves time forward, running due timers in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, p] of this.pending) if (p.at <= end && (!next || p.at < next[1].at)) next = [id, p];
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

/** A connection that opens/dies on command (EventTarget + readyState, like a WebSocket). */
export class FakeConn extends EventTarget {
  constructor(origin) {
    super();
    this.origin = origin;
    this.readyState = 0;
    this.closedByClient = false;
  }
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event('open'));
  }
  kill(code = 1006) {
    this.readyState = 3;
    const ev = new Event('close');
    ev.code = code;
    this.dispatchEvent(ev);
  }
  close() {
    this.closedByClient = true;
    this.readyState = 3;
  }
}

/** Stands in for OriginDiscovery: a list you set, with `change` (and other) events you push. */
export class FakeDiscovery {
  constructor(origins = [], revision = 1) {
    this.list = origins;
    this.revision = revision;
    /** @type {Map<string, Set<(d: any) => void>>} */
    this.listeners = new Map();
  }
  get origins() {
    return this.list;
  }
  rank(key, opts) {
    return rank(this.list, key, opts);
  }
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }
  /** Number of subscribers of `type`. */
  subscribers(type) {
    return this.listeners.get(type)?.size ?? 0;
  }
  emit(type, detail) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(detail);
  }
  /** Replaces the list and emits a `change` with the diff. */
  set(origins, reason = 'delta') {
    const prev = new Map(this.list.map((o) => [o.id, o]));
    const next = new Map(origins.map((o) => [o.id, o]));
    const added = origins.filter((o) => !prev.has(o.id));
    const updated = origins.filter((o) => prev.has(o.id) && JSON.stringify(prev.get(o.id)) !== JSON.stringify(o));
    const removed = this.list.filter((o) => !next.has(o.id));
    this.list = origins;
    this.revision += 1;
    this.emit('change', { reason, origins, added, updated, removed, epoch: EPOCH, revision: this.revision, message: {}, receivedAt: 0 });
  }
  /** A watch session (re)connected and brought the list up to date. */
  sync(resumed = false) {
    this.emit('sync', { url: 'http://fake', resumed, epoch: EPOCH, revision: this.revision });
  }
}

/** Resolves on the next macrotask turn (lets promise chains and I/O settle). */
export const tick = () => new Promise((resolve) => setImmediate(resolve));
