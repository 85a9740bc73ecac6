// connectWithFailover: keeps the application's own media connection (publisher or player
// WebSocket, WebRTC signalling socket …) on a live origin.
//
// - Target choice is `discovery.rank(key, {zone})`: rendezvous hashing, so every client of
//   one stream agrees on the order, and when an origin dies its clients spread over the
//   survivors by key instead of stampeding onto one.
// - On close/error of the connection (or of an opening attempt) the next ranked origin,
//   excluding those that just failed, is tried at once — synchronously from the failure
//   event, far below the 100 ms budget.
// - When discovery announces the current origin `draining` or removed, `onMigrate` is called
//   and (unless it returns `false`) the helper opens the next target and closes the old
//   connection only after the new one is open (make-before-break). The old connection is
//   never waited on: a removed origin may be frozen or on a dead node, its socket still
//   looking open with nobody to answer a close handshake. A removal is a failure of that
//   origin: if no other target opens, the old connection is closed anyway and the helper
//   backs off (a draining origin, in contrast, keeps serving until somewhere else is up).
// - When every candidate failed, it backs off exponentially with full jitter (GBB-style
//   schedule, see backoff.js; by default it never gives up, `backoff.maxRetries` caps it). A
//   discovery change that brings a new ready origin, a discovery session that synced again
//   (`sync`: reconnected after an outage) or a browser `online` event ends a back-off wait at
//   once; the round counter is kept, so these cannot drive a hot loop.
// - The application's session state (`handle.session`) is copied with `structuredClone` into
//   every `open()` call and `onMigrate`, so the app re-publishes with identical parameters
//   and a later mutation never changes what an earlier call saw.
// - Rebalancing (opt-in, `rebalance`): when the current origin, still ready, is no longer the
//   first-ranked for the key by a margin (capacity joined, an origin recovered, load shifted),
//   the helper moves there make-before-break, through the same path as a drain. Each client
//   waits a uniformly random time in [0, 1.5/rate) s (after its connection reached `minAge`)
//   before moving and re-checks then, so however many clients want to move at the same
//   moment, the expected number that move in any one second is at most 2/3 of `rate` × the
//   pool's clients, and the actual number stays below `rate` × clients but for a vanishing
//   chance (the bound and its conditions: clients/js/README.md, "Rebalancing"). A rebalance is optional:
//   if its target does not open, the current connection simply stays.

import { backoffDelay, backoffOptions, onOnline, timerFunctions } from './backoff.js';
import { score } from './rank.js';

/** @typedef {import('../index.d.ts').Origin} Origin */
/** @typedef {import('../index.d.ts').FailoverOptions<any>} FailoverOptions */
/** @typedef {import('../index.d.ts').OriginDiscovery} OriginDiscoveryType */

/** Default time an `open()` may take before the next origin is tried. */
export const DEFAULT_CONNECT_TIMEOUT = 5_000;

/**
 * A client that wants to move waits uniformly in [0, REBALANCE_HEADROOM / rate) s, so the
 * expected aggregate is at most rate / REBALANCE_HEADROOM of the clients per second: the
 * headroom keeps the actual count in a second below `rate` × clients (clients/js/README.md, "Rebalancing").
 */
export const REBALANCE_HEADROOM = 1.5;

/** Rebalancing defaults (`rebalance: true`). */
export const DEFAULT_REBALANCE = Object.freeze({
  /** At most this fraction of a pool's clients move per second (expected). */
  rate: 0.05,
  /** Move only when the first-ranked origin's score beats the current one's by this factor. */
  margin: 0.1,
  /** Never move a connection younger than this (ms). */
  minAge: 10_000,
});

/**
 * @param {import('../index.d.ts').RebalanceOptions | boolean | undefined} options
 * @returns {(Required<Omit<import('../index.d.ts').RebalanceOptions, 'better'>> & {better: import('../index.d.ts').RebalanceOptions['better'], spread: number}) | null}
 */
export function rebalanceOptions(options) {
  if (!options) return null;
  const o = { ...DEFAULT_REBALANCE, better: undefined, ...(options === true ? {} : options) };
  if (!(o.rate > 0)) throw new RangeError('rebalance: rate must be > 0 (a fraction of the clients per second)');
  if (!(o.margin >= 0) || !Number.isFinite(o.margin)) throw new RangeError('rebalance: margin must be a finite number >= 0');
  if (!(o.minAge >= 0) || !Number.isFinite(o.minAge)) throw new RangeError('rebalance: minAge must be a finite number of ms >= 0');
  if (o.better !== undefined && typeof o.better !== 'function') throw new TypeError('rebalance: better must be a function');
  return { ...o, spread: (REBALANCE_HEADROOM * 1000) / o.rate };
}

const noop = () => {};

/**
 * A structured copy of the application's session state (`undefined` stays `undefined`).
 * @param {unknown} value
 */
function copySession(value) {
  if (value === undefined) return undefined;
  try {
    return structuredClone(value);
  } catch (e) {
    throw new TypeError(`connectWithFailover: session state must be structured-cloneable (${/** @type {any} */ (e)?.message ?? e})`);
  }
}

/** @param {unknown} e */
function toError(e) {
  if (e instanceof Error) return e;
  const inner = /** @type {any} */ (e)?.error;
  if (inner instanceof Error) return inner;
  const message = /** @type {any} */ (e)?.message;
  return new Error(typeof message === 'string' && message ? message : 'connection error');
}

/**
 * Watches a connection-like object for "open" and "dead".
 *
 * Supported shapes, in order: an object with a `closed` promise (settles when it dies); an
 * `EventTarget` (WebSocket, RTCDataChannel …) or Node `EventEmitter` emitting `close`/`error`;
 * and `readyState` (0 = still connecting → wait for `open`, 1 = open, 2/3 = dead). Anything
 * else counts as open at once; report its death with `handle.fail()`.
 *
 * @param {any} conn
 * @param {() => void} onOpen called at most once, asynchronously
 * @param {(error: Error) => void} onDead called at most once
 * @returns {() => void} detach
 */
function attach(conn, onOpen, onDead) {
  /** @type {(() => void)[]} */
  const cleanups = [];
  let finished = false;
  /**
   * @param {string} type
   * @param {(ev: any) => void} fn
   */
  const listen = (type, fn) => {
    if (typeof conn?.addEventListener === 'function') {
      conn.addEventListener(type, fn);
      cleanups.push(() => conn.removeEventListener(type, fn));
    } else if (typeof conn?.on === 'function') {
      conn.on(type, fn);
      cleanups.push(() => (conn.off ?? conn.removeListener)?.call(conn, type, fn));
    }
  };
  /** @param {unknown} e */
  const die = (e) => {
    if (finished) return;
    finished = true;
    onDead(toError(e));
  };
  const detach = () => {
    finished = true;
    for (const f of cleanups.splice(0)) f();
    // Node's EventEmitter (e.g. the `ws` package) throws on an `error` nobody listens to,
    // which closing a half-open socket can emit.
    listen('error', noop);
  };
  if (typeof conn?.closed?.then === 'function') {
    conn.closed.then(() => die(new Error('connection closed')), die);
  }
  listen('close', (/** @type {any} */ ev) => {
    const err = new Error(`connection closed${ev?.code != null ? ` (code ${ev.code})` : ''}`);
    /** @type {any} */ (err).code = ev?.code;
    die(err);
  });
  listen('error', die);
  const rs = conn?.readyState;
  if (typeof rs === 'number' && rs === 0) {
    listen('open', () => {
      if (!finished) onOpen();
    });
  } else if (typeof rs === 'number' && rs > 1) {
    queueMicrotask(() => die(new Error('connection already closed')));
  } else {
    queueMicrotask(() => {
      if (!finished) onOpen();
    });
  }
  return detach;
}

/**
 * A live, self-healing media connection. Created by {@link connectWithFailover}.
 * @template C
 */
export class FailoverConnection {
  /**
   * @param {OriginDiscoveryType} discovery
   * @param {string} key
   * @param {(origin: Origin, ctx: {signal: AbortSignal, session: any}) => C | Promise<C>} open
   * @param {FailoverOptions} [options]
   */
  constructor(discovery, key, open, options = {}) {
    if (typeof open !== 'function') throw new TypeError('connectWithFailover: open must be a function');
    copySession(options.session); // not cloneable → a clear error now, not at the first open
    /** @private the application's session state, see `session` */
    this._appSession = options.session;
    /** @private */ this._discovery = discovery;
    /** @private */ this._key = key;
    /** @private */ this._open = open;
    /** @private */ this._o = options;
    /** @private */ this._backoff = backoffOptions(options.backoff);
    /** @private */ this._timers = timerFunctions(options.timers);
    /** @private */ this._random = options.random ?? Math.random;
    /** @private */ this._connectTimeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    /** @private */ this._rb = rebalanceOptions(options.rebalance);
    /** @private @type {any} pending rebalance decision */ this._rbTimer = null;
    /** @private `timers.now()` when the current connection opened */ this._connectedAt = 0;

    /** @private @type {{origin: Origin, conn: C, detach: () => void} | null} */
    this._current = null;
    /** @private @type {any} attempt in flight */
    this._pending = null;
    /** @private @type {{from: Origin, reason: 'draining' | 'removed' | 'rebalance'} | null} make-before-break in progress */
    this._migrating = null;
    /** @private @type {Set<string>} origins that failed since the last success / retry */
    this._excluded = new Set();
    /** @private back-off rounds since the last success */
    this._round = 0;
    /** @private @type {any} */ this._retryTimer = null;
    /** @private @type {Error | null} */ this._lastError = null;
    /** @private @type {import('../index.d.ts').FailoverState} */ this._state = 'waiting';

    /** @private */
    this._offChange = discovery.on('change', (/** @type {any} */ d) => this._onChange(d));
    /** @private discovery reconnected and synced (e.g. after an outage): retry now */
    this._offSync = discovery.on('sync', () => this._wake()) ?? noop;
    /** @private the network is back (browser `online` event): retry now */
    this._offOnline = onOnline(options.onlineEvents, () => this._wake());

    if (discovery.revision == null && discovery.origins.length === 0) {
      // No snapshot yet: wait quietly for the first `change` instead of burning retries.
      this._state = 'waiting';
    } else {
      queueMicrotask(() => {
        if (this._state === 'waiting') this._advance(null);
      });
    }
  }

  /** The origin of the open connection, or null. */
  get origin() {
    return this._current?.origin ?? null;
  }

  /** The open connection, or null. @returns {C | null} */
  get connection() {
    return this._current?.conn ?? null;
  }

  /** `waiting` | `connecting` | `connected` | `migrating` | `backoff` | `gaveup` | `closed`. */
  get state() {
    return this._state;
  }

  /**
   * The application's session state (stream id, publish parameters …): any structured-
   * cloneable value. The handle keeps the object itself, so the app may mutate it in place or
   * assign a new one; every `open()` call (`ctx.session`) and `onMigrate` get a
   * `structuredClone` taken at the moment of the call, `onConnect` the copy its `open()` got.
   */
  get session() {
    return this._appSession;
  }

  set session(value) {
    copySession(value); // throws a TypeError for values that cannot be copied
    this._appSession = value;
  }

  /**
   * Reports the current connection as broken (for connection objects whose death the helper
   * cannot observe, or application-level errors such as "stream not found"). Fails over at
   * once, exactly as if the connection had closed.
   * @param {unknown} [error]
   */
  fail(error) {
    if (this._current) this._currentDead(this._current, toError(error ?? new Error('failed by application')));
    else if (this._pending) this._failAttempt(this._pending, toError(error ?? new Error('failed by application')), 'error');
  }

  /** Starts over after `onGiveUp` (retry counter reset). */
  retry() {
    if (this._state !== 'gaveup') return;
    this._round = 0;
    this._excluded.clear();
    this._advance(null);
  }

  /** Stops everything and closes the current connection. */
  close() {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this._offChange();
    this._offSync();
    this._offOnline();
    if (this._retryTimer != null) this._timers.clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._cancelRebalance();
    const p = this._pending;
    if (p) this._abandonAttempt(p);
    this._pending = null;
    const c = this._current;
    this._current = null;
    if (c) this._dropConnection(c);
  }

  /**
   * @private
   * @param {unknown} conn
   */
  _closeConn(conn) {
    try {
      if (this._o.close) this._o.close(/** @type {any} */ (conn));
      else /** @type {any} */ (conn)?.close?.();
    } catch {
      /* closing a dead connection may throw; nothing to do */
    }
  }

  /**
   * @private
   * @param {import('../index.d.ts').ChangeDetail} d
   */
  _onChange(d) {
    const st = this._state;
    if (st === 'closed' || st === 'gaveup') return;
    if (st === 'waiting') {
      this._advance(null);
      return;
    }
    if (st === 'backoff') {
      const fresh = [...d.added, ...d.updated].some((o) => o.state === 'ready' && !this._excluded.has(o.id));
      if (fresh) this._wake();
      return;
    }
    /**
     * @param {Origin} o
     * @returns {'removed' | 'draining' | null}
     */
    const gone = (o) => {
      if (d.removed.some((r) => r.id === o.id)) return 'removed';
      const u = d.updated.find((x) => x.id === o.id);
      if (u && u.state !== 'ready') return 'draining';
      return null;
    };
    // An attempt whose target just left `ready` is pointless: move on now.
    const p = this._pending;
    if (p) {
      const why = gone(p.origin);
      if (why) this._failAttempt(p, new Error(`origin ${p.origin.id} ${why}`), why);
    }
    const c = this._current;
    if (c) {
      const now = d.origins.find((x) => x.id === c.origin.id);
      if (now) c.origin = now;
      const why = !now ? 'removed' : now.state !== 'ready' ? 'draining' : null;
      // Removed while a move off it (draining) is under way: it is no fallback any more.
      if (why === 'removed' && this._migrating?.from.id === c.origin.id) this._migrating.reason = 'removed';
      // Draining while an (optional) rebalance move is under way: the move is needed now.
      if (why === 'draining' && this._migrating?.reason === 'rebalance' && this._migrating.from.id === c.origin.id) {
        this._migrating.reason = 'draining';
      }
      // Move when the origin just left `ready`, or — if an earlier move found nowhere to go —
      // as soon as a new ready origin appears.
      const newTarget = [...d.added, ...d.updated].some((o) => o.state === 'ready' && o.id !== c.origin.id);
      if (why && (gone(c.origin) || newTarget) && !this._migrating && !this._pending) this._migrate(c, why);
      if (!why) this._scheduleRebalance();
    }
  }

  /**
   * The origin to rebalance to: the first-ranked one, when the current origin is ready but
   * the first-ranked beats it by the margin (or by `better`); else null.
   * @private
   * @param {{origin: Origin}} c
   * @returns {Origin | null}
   */
  _rebalanceTarget(c) {
    const rb = this._rb;
    if (!rb || c.origin.state !== 'ready') return null;
    const best = this._rankFirst(new Set());
    if (!best || best.id === c.origin.id) return null;
    if (rb.better) return rb.better(c.origin, best, this._key) ? best : null;
    const zone = this._o.zone ?? null;
    // Zone first, as in the ranking: a same-zone origin beats an other-zone one outright.
    if (zone != null && best.zone === zone && c.origin.zone !== zone) return best;
    return score(this._key, c.origin) > (1 + rb.margin) * score(this._key, best) ? best : null;
  }

  /**
   * Schedules one rebalance decision when one is due: at a uniformly random moment within
   * `1500 / rate` ms after the connection reached `minAge` (or after now, if later). At most
   * one is pending; it re-checks when it fires, so a moment's preference does not move anyone.
   * @private
   */
  _scheduleRebalance() {
    const rb = this._rb;
    const c = this._current;
    if (!rb || !c || this._rbTimer != null || this._state !== 'connected' || this._migrating || this._pending) return;
    if (!this._rebalanceTarget(c)) return;
    const wait = Math.max(0, this._connectedAt + rb.minAge - this._timers.now());
    this._rbTimer = this._timers.setTimeout(() => {
      this._rbTimer = null;
      if (this._state !== 'connected' || this._current !== c || this._migrating || this._pending) return;
      if (this._rebalanceTarget(c)) this._migrate(c, 'rebalance');
    }, wait + this._random() * rb.spread);
  }

  /** @private */
  _cancelRebalance() {
    if (this._rbTimer != null) this._timers.clearTimeout(this._rbTimer);
    this._rbTimer = null;
  }

  /**
   * @private
   * @param {{origin: Origin, conn: C, detach: () => void}} c
   * @param {'draining' | 'removed' | 'rebalance'} reason
   */
  _migrate(c, reason) {
    const from = c.origin;
    const exclude = new Set([from.id]);
    const to = this._rankFirst(exclude);
    /** @type {unknown} */
    let session;
    try {
      session = copySession(this._appSession);
    } catch {
      session = undefined; // the next open() reports the error through onFailover
    }
    const r = this._o.onMigrate?.({ from, to, reason, connection: c.conn, session });
    if (r === false || this._o.migrate === false || this._current !== c || this._state === 'closed') return;
    if (!to) {
      // Draining (or rebalancing): keep serving here until a ready origin appears. Removed:
      // this origin failed.
      if (reason === 'removed') this._currentDead(c, new Error(`origin ${from.id} removed`), 'removed');
      return;
    }
    this._migrating = { from, reason };
    this._excluded = exclude;
    this._openCandidate(to);
  }

  /**
   * @private
   * @param {Set<string>} exclude
   * @returns {Origin | null}
   */
  _rankFirst(exclude) {
    return this._discovery.rank(this._key, { zone: this._o.zone ?? null, exclude, count: 1 })[0] ?? null;
  }

  /**
   * Picks the next candidate and opens it; when none is left, ends a migration off a draining
   * origin (keeping the old connection) or starts a back-off round (after dropping the old
   * connection of a migration off a removed origin).
   * @private
   * @param {{origin: Origin, error: Error, reason: import('../index.d.ts').FailoverReason} | null} failure what just failed
   */
  _advance(failure) {
    if (this._state === 'closed') return;
    const rebalancing = this._migrating?.reason === 'rebalance' ? this._current : null;
    if (failure && rebalancing) {
      // A rebalance is optional: its target failed, so the current connection stays.
      this._migrating = null;
      this._excluded.clear();
      this._state = 'connected';
      this._o.onFailover?.({ from: failure.origin, to: rebalancing.origin, error: failure.error, reason: failure.reason });
      return;
    }
    const to = this._rankFirst(this._excluded);
    if (failure) this._o.onFailover?.({ from: failure.origin, to, error: failure.error, reason: failure.reason });
    if (/** @type {string} */ (this._state) === 'closed') return; // a callback closed us
    if (to) {
      this._openCandidate(to);
      return;
    }
    const m = this._migrating;
    this._migrating = null;
    const c = this._current;
    if (m && c && m.reason === 'draining') {
      // Nowhere to go: a draining origin keeps serving (and we move once one appears).
      this._state = 'connected';
      return;
    }
    if (m && c) {
      // The old origin was removed: its connection is no fallback. Drop it without waiting.
      this._current = null;
      this._dropConnection(c);
      this._excluded.add(c.origin.id);
      this._o.onFailover?.({ from: c.origin, to: null, error: new Error(`origin ${c.origin.id} removed`), reason: 'removed' });
      if (/** @type {string} */ (this._state) === 'closed') return;
    }
    this._backoffRound();
  }

  /**
   * Ends a back-off wait now (the round counter is kept, so the next wait is still longer).
   * @private
   */
  _wake() {
    if (this._state !== 'backoff') return;
    this._timers.clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._excluded.clear();
    this._advance(null);
  }

  /**
   * Detaches from a connection and closes it without waiting for anything: a frozen origin
   * never answers a close handshake, and its late events must not count.
   * @private
   * @param {{conn: C, detach: () => void}} c
   */
  _dropConnection(c) {
    c.detach();
    this._closeConn(c.conn);
  }

  /** @private */
  _backoffRound() {
    this._round += 1;
    const error = this._lastError;
    if (this._round > this._backoff.maxRetries) {
      this._state = 'gaveup';
      this._o.onGiveUp?.({ retries: this._round - 1, error });
      return;
    }
    const delay = backoffDelay(this._backoff, this._round, this._random);
    this._state = 'backoff';
    this._o.onRetry?.({ attempt: this._round, delay, error });
    if (/** @type {string} */ (this._state) !== 'backoff') return; // a callback closed us
    this._retryTimer = this._timers.setTimeout(() => {
      this._retryTimer = null;
      this._excluded.clear();
      this._advance(null);
    }, delay);
  }

  /**
   * @private
   * @param {Origin} origin
   */
  _openCandidate(origin) {
    this._state = this._migrating ? 'migrating' : 'connecting';
    const ac = new AbortController();
    /** @type {any} */
    const p = { origin, conn: null, ac, timer: null, detach: noop, done: false, session: undefined };
    this._pending = p;
    p.timer = this._timers.setTimeout(
      () => this._failAttempt(p, new Error(`connect to ${origin.id} timed out after ${this._connectTimeout} ms`), 'timeout'),
      this._connectTimeout,
    );
    /** @type {unknown} */
    let result;
    try {
      p.session = copySession(this._appSession);
      result = this._open(origin, { signal: ac.signal, session: p.session });
    } catch (e) {
      this._failAttempt(p, toError(e), 'error');
      return;
    }
    Promise.resolve(result).then(
      (conn) => {
        if (p.done) {
          // Superseded (timeout, close()): do not leak it.
          this._closeConn(conn);
          return;
        }
        p.conn = conn;
        p.detach = attach(
          conn,
          () => this._opened(p),
          (err) => {
            if (!p.done) this._failAttempt(p, err, 'error');
            else if (this._current && this._current.conn === conn) this._currentDead(this._current, err);
          },
        );
      },
      (e) => this._failAttempt(p, toError(e), 'error'),
    );
  }

  /**
   * Stops an attempt without reporting anything.
   * @private
   * @param {any} p
   */
  _abandonAttempt(p) {
    if (p.done) return;
    p.done = true;
    this._timers.clearTimeout(p.timer);
    p.detach();
    p.ac.abort();
    if (p.conn != null) this._closeConn(p.conn);
  }

  /**
   * @private
   * @param {any} p
   * @param {Error} error
   * @param {import('../index.d.ts').FailoverReason} reason
   */
  _failAttempt(p, error, reason) {
    if (p.done || this._state === 'closed') return;
    this._abandonAttempt(p);
    if (this._pending === p) this._pending = null;
    this._lastError = error;
    this._excluded.add(p.origin.id);
    this._advance({ origin: p.origin, error, reason });
  }

  /**
   * @private
   * @param {any} p
   */
  _opened(p) {
    if (p.done || this._state === 'closed') return;
    p.done = true;
    this._timers.clearTimeout(p.timer);
    if (this._pending === p) this._pending = null;
    const previous = this._current;
    const migrated = !!this._migrating;
    // The old connection may have died mid-move; still report where the app moved from.
    const from = this._migrating?.from ?? null;
    this._migrating = null;
    this._current = { origin: p.origin, conn: p.conn, detach: p.detach };
    this._connectedAt = this._timers.now();
    this._cancelRebalance();
    this._excluded.clear();
    this._round = 0;
    this._lastError = null;
    this._state = 'connected';
    // make-before-break: the old connection goes only now that the new one is open
    if (previous) this._dropConnection(previous);
    this._o.onConnect?.({
      connection: p.conn,
      origin: p.origin,
      migrated,
      previous: previous?.origin ?? from,
      session: p.session,
    });
    // Not on the first-ranked origin (it failed a moment ago, or the ranking moved on)?
    // Reconsider once this connection is old enough.
    this._scheduleRebalance();
  }

  /**
   * @private
   * @param {{origin: Origin, conn: C, detach: () => void}} c
   * @param {Error} error
   * @param {'closed' | 'removed'} [reason]
   */
  _currentDead(c, error, reason = 'closed') {
    if (this._current !== c || this._state === 'closed') return;
    this._current = null;
    this._cancelRebalance();
    this._dropConnection(c);
    this._lastError = error;
    if (this._migrating) {
      // The replacement is already being opened; it takes over when it is up.
      this._excluded.add(c.origin.id);
      return;
    }
    this._excluded = new Set([c.origin.id]);
    this._advance({ origin: c.origin, error, reason });
  }
}

/**
 * Opens the application's media connection on the best origin for `key` and keeps it on a
 * live origin (see the module comment for the policy).
 *
 * @template C
 * @param {OriginDiscoveryType} discovery a running {@link OriginDiscovery}
 * @param {string} key affinity key, usually the stream id
 * @param {(origin: Origin, ctx: {signal: AbortSignal, session: any}) => C | Promise<C>} open
 *   opens a connection to `origin` (e.g. `o => new WebSocket(o.url)`); may return a promise;
 *   `ctx.session` is a copy of `handle.session` taken for this call
 * @param {FailoverOptions} [options]
 * @returns {FailoverConnection<C>}
 */
export function connectWithFailover(discovery, key, open, options) {
  return new FailoverConnection(discovery, key, open, options);
}
