// OriginDiscovery: one pool's live origin list, kept current over the watch WebSocket.
//
// Protocol (docs/DESIGN.md, "WebSocket messages"): the server sends a `snapshot` first (and again
// whenever it skips a slow client ahead), then one `delta` per revision, a `heartbeat` every
// interval, `stale` when the apiserver is unreachable and `removed` when the pool disappears.
// This client sends nothing. It detects
//   - a revision gap (delta not exactly previous+1 in the same epoch, or still behind the
//     revision announced by the previous heartbeat) → reconnects at once with
//     `?epoch=E&revision=R`, so the server replays only the missed deltas;
//   - a dead discovery connection (no frame for `heartbeatTimeout`) → abandons the socket
//     without waiting for a close handshake and reconnects to the next discovery URL;
// and reconnects with exponential back-off and full jitter once every discovery URL has
// failed in a row (a browser `online` event ends such a wait at once). The last known list is
// kept (and served by `origins`/`rank`) while disconnected: a dead control plane must never
// empty the client's view. Each session announces with `sync` when it has brought the list
// up to date, which the failover helper takes as "retry the media connection now".

import { backoffDelay, backoffOptions, onOnline, timerFunctions } from './backoff.js';
import { compareIds, rank } from './rank.js';

/** @typedef {import('../index.d.ts').Origin} Origin */
/** @typedef {import('../index.d.ts').OriginDiscoveryOptions} OriginDiscoveryOptions */
/** @typedef {import('../index.d.ts').ChangeDetail} ChangeDetail */
/** @typedef {import('../index.d.ts').RankOptions} RankOptions */
/** @typedef {import('../index.d.ts').SyncDetail} SyncDetail */

/** Default heartbeat timeout: three times the server's default 5 s heartbeat interval. */
export const DEFAULT_HEARTBEAT_TIMEOUT = 15_000;

/**
 * A session that applied state and lived this long counts as healthy: the next reconnect is
 * immediate again. Shorter sessions keep counting towards back-off, so a server that accepts
 * and then immediately fails (or keeps sending gaps) cannot drive a hot reconnect loop.
 */
const HEALTHY_AFTER_MS = 1_000;

/** Close code this client uses when it abandons a socket (heartbeat loss, gap, bad frame). */
const CLIENT_CLOSE_CODE = 4000;

const ORIGIN_FIELDS = /** @type {const} */ (['id', 'url', 'ip', 'port', 'node', 'zone', 'state', 'since', 'weight', 'load']);

/**
 * Builds the watch URL for `pool` on discovery base URL `base`.
 * `http(s):` bases are mapped to `ws(s):`; a path prefix and query parameters of the base are
 * kept; relative bases resolve against `location` in browsers.
 * @param {string} base
 * @param {string} pool `namespace/service`
 * @param {{epoch?: string | null, revision?: number | null}} [resume]
 * @returns {string}
 */
export function watchUrl(base, pool, resume = {}) {
  const [ns, svc, ...rest] = String(pool).split('/');
  if (!ns || !svc || rest.length) throw new TypeError(`pool must be "namespace/service", got ${JSON.stringify(pool)}`);
  const u = new URL(base, globalThis.location?.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/pools/${encodeURIComponent(ns)}/${encodeURIComponent(svc)}/watch`;
  u.searchParams.delete('epoch');
  u.searchParams.delete('revision');
  if (resume.epoch != null && resume.revision != null) {
    u.searchParams.set('epoch', String(resume.epoch));
    u.searchParams.set('revision', String(resume.revision));
  }
  u.hash = '';
  return u.toString();
}

/**
 * @param {Origin} a
 * @param {Origin} b
 */
function sameOrigin(a, b) {
  return ORIGIN_FIELDS.every((k) => a[k] === b[k]);
}

/** @param {unknown} data */
function frameText(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(/** @type {any} */ (data));
  return null;
}

/**
 * Live origin list of one pool.
 *
 * Events (DOM `EventTarget`, `CustomEvent` with `detail`; or use `on(type, fn)` which passes
 * the detail directly and returns an unsubscribe function):
 * - `change`  {@link ChangeDetail}: after every applied delta, after the first snapshot, and
 *   after a later snapshot that differs from the current list; also when the pool is removed.
 * - `stale`   `{stale}`: the server's apiserver connection went stale / recovered.
 * - `error`   `{error}`: connection or protocol problem (the client keeps reconnecting).
 * - `connect` `{url}` / `disconnect` `{url, reason, code, retryIn}`.
 * - `removed` `{pool}`: the pool disappeared (the client keeps retrying; it may come back).
 * - `sync`    {@link SyncDetail}: once per watch session, when its first frame has been
 *   applied (the snapshot, or the first delta/heartbeat of a resumed session): the list is
 *   as current as the server's again, e.g. after an outage.
 * - `message` `{message, receivedAt}`: every frame received, before it is applied.
 */
export class OriginDiscovery extends EventTarget {
  /** @param {OriginDiscoveryOptions} options */
  constructor(options) {
    super();
    const urls = Array.isArray(options?.urls) ? options.urls : options?.urls != null ? [options.urls] : [];
    if (urls.length === 0) throw new TypeError('OriginDiscovery: at least one discovery url is required');
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      throw new TypeError('OriginDiscovery: no global WebSocket; pass options.WebSocket (e.g. the "ws" package)');
    }
    for (const u of urls) watchUrl(u, options.pool); // validates pool and urls early

    /** Discovery base URLs, tried in rotation. */
    this.urls = urls.map(String);
    /** Pool id `namespace/service`. */
    this.pool = options.pool;
    /** @private */ this._WebSocket = WS;
    /** @private */ this._heartbeatTimeout = options.heartbeatTimeout ?? DEFAULT_HEARTBEAT_TIMEOUT;
    /** @private */ this._backoff = backoffOptions(options.backoff);
    /** @private */ this._timers = timerFunctions(options.timers);
    /** @private */ this._random = options.random ?? Math.random;

    /** @private @type {Map<string, Origin>} current origins by id */
    this._byId = new Map();
    /** @private @type {readonly Origin[] | null} sorted view of `_byId`, rebuilt lazily */
    this._sorted = null;
    /** @private @type {string | null} */ this._epoch = null;
    /** @private @type {number | null} */ this._revision = null;
    /** @private */ this._stale = false;
    /** @private */ this._hadSnapshot = false;
    /** @private index into `urls` of the next/current connection */
    this._urlIndex = 0;
    /** @private consecutive sessions that ended without becoming healthy */
    this._failures = 0;
    /** @private @type {any} */ this._session = null;
    /** @private @type {any} */ this._retryTimer = null;
    /** @private */ this._closed = false;
    /** @private network back (browser `online` event): end a reconnect wait */
    this._offOnline = onOnline(options.onlineEvents, () => this._onOnline());

    /** @private @type {(v: void) => void} */ this._resolveReady = () => {};
    /** @private @type {(e: Error) => void} */ this._rejectReady = () => {};
    /**
     * Resolves when the first snapshot has been applied; rejects if `close()` comes first.
     * @type {Promise<void>}
     */
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // nobody has to await it

    this._connect();
  }

  /**
   * Current origins (ready and draining), sorted by id. Frozen; replaced on every change.
   * @returns {readonly Origin[]}
   */
  get origins() {
    if (!this._sorted) {
      this._sorted = Object.freeze([...this._byId.values()].sort((a, b) => compareIds(a.id, b.id)));
    }
    return /** @type {readonly Origin[]} */ (this._sorted);
  }

  /** Server epoch of the current state, or null before the first snapshot. */
  get epoch() {
    return this._epoch;
  }

  /** Revision of the current state, or null before the first snapshot. */
  get revision() {
    return this._revision;
  }

  /** True while the server reports its view of the cluster as stale. */
  get stale() {
    return this._stale;
  }

  /** True while a watch session is open. */
  get connected() {
    return !!this._session?.open;
  }

  /** The discovery URL of the current (or next) connection. */
  get url() {
    return this.urls[this._urlIndex];
  }

  /**
   * @param {string} id
   * @returns {Origin | undefined}
   */
  get(id) {
    return this._byId.get(id);
  }

  /**
   * Ranks the current list exactly like `GET …/pick` would.
   * @param {string} key
   * @param {RankOptions} [options]
   */
  rank(key, options) {
    return rank(this._byId.values(), key, options);
  }

  /**
   * Subscribes to an event; `fn` receives the event's detail. Returns an unsubscribe function.
   * @param {string} type
   * @param {(detail: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    /** @param {Event} e */
    const listener = (e) => fn(/** @type {CustomEvent} */ (e).detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** Stops reconnecting and closes the watch connection. The last list stays readable. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._offOnline();
    if (this._retryTimer != null) this._timers.clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const s = this._session;
    if (s) {
      s.done = true;
      this._timers.clearTimeout(s.timer);
      this._session = null;
      try {
        s.ws.close(1000, 'client closed');
      } catch {
        /* already closing */
      }
    }
    this._rejectReady(new Error('OriginDiscovery closed'));
  }

  /**
   * @private
   * @param {string} type
   * @param {unknown} detail
   */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * The network is back: a reconnect wait (back-off) ends now. An open session is left alone;
   * if it died with the network, the heartbeat timeout notices.
   * @private
   */
  _onOnline() {
    if (this._closed || this._session || this._retryTimer == null) return;
    this._timers.clearTimeout(this._retryTimer);
    this._connect();
  }

  /** @private */
  _connect() {
    if (this._closed) return;
    this._retryTimer = null;
    const resume = { epoch: this._epoch, revision: this._revision };
    const url = watchUrl(this.urls[this._urlIndex], this.pool, resume);
    /** @type {any} */
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (error) {
      this._emit('error', { error });
      this._scheduleReconnect('error', null, false);
      return;
    }
    const session = {
      ws,
      url,
      open: false,
      done: false,
      openedAt: 0,
      /** a valid frame was applied (counts towards "healthy", see HEALTHY_AFTER_MS; `sync`) */
      applied: false,
      /** the session asked the server to resume from our revision */
      resuming: resume.epoch != null && resume.revision != null,
      /** revision announced by the previous heartbeat that we had not reached yet */
      behind: /** @type {number | null} */ (null),
      /** set when the server announced the pool's removal */
      removed: false,
      /** last transport error, reported when the socket closes */
      error: /** @type {Error | null} */ (null),
      timer: /** @type {any} */ (null),
    };
    this._session = session;
    this._armLiveness(session);
    ws.addEventListener('open', () => {
      if (session.done) return;
      session.open = true;
      session.openedAt = this._timers.now();
      this._armLiveness(session);
      this._emit('connect', { url });
    });
    ws.addEventListener('message', (/** @type {any} */ ev) => this._onFrame(session, ev.data));
    ws.addEventListener('error', (/** @type {any} */ ev) => {
      if (session.done) return;
      session.error = ev?.error ?? new Error(`WebSocket error on ${url}`);
    });
    ws.addEventListener('close', (/** @type {any} */ ev) => {
      if (session.done) return;
      const code = ev?.code ?? 1006;
      let reason = 'closed';
      if (session.removed) reason = 'removed';
      else if (code === 1001) reason = 'shutdown';
      else if (code === 1008) reason = 'policy';
      else if (!session.open || code === 1006) reason = 'error';
      if (reason === 'error' || reason === 'policy') {
        this._emit('error', {
          error: session.error ?? new Error(`watch connection to ${url} closed (${code}${ev?.reason ? ` ${ev.reason}` : ''})`),
        });
      }
      this._endSession(session, reason, code);
    });
  }

  /**
   * (Re)starts the timer that declares the connection dead when no frame arrives in time.
   * Also bounds how long an opening handshake may take.
   * @private
   * @param {any} session
   */
  _armLiveness(session) {
    this._timers.clearTimeout(session.timer);
    session.timer = this._timers.setTimeout(() => {
      if (session.done) return;
      this._emit('error', { error: new Error(`no frame from ${session.url} for ${this._heartbeatTimeout} ms`) });
      this._endSession(session, 'timeout', null);
    }, this._heartbeatTimeout);
  }

  /**
   * @private
   * @param {any} session
   * @param {unknown} data
   */
  _onFrame(session, data) {
    if (session.done) return;
    this._armLiveness(session);
    const receivedAt = this._timers.now();
    const text = frameText(data);
    /** @type {any} */
    let msg;
    try {
      msg = text == null ? null : JSON.parse(text);
    } catch {
      msg = null;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
      this._emit('error', { error: new Error('watch: malformed frame') });
      this._endSession(session, 'protocol', null);
      return;
    }
    this._emit('message', { message: msg, receivedAt });
    if (session.done) return; // a listener closed us
    switch (msg.type) {
      case 'snapshot':
        if (!Array.isArray(msg.origins)) {
          this._emit('error', { error: new Error('watch: snapshot without origins') });
          this._endSession(session, 'protocol', null);
          return;
        }
        session.behind = null;
        session.resuming = false;
        this._applySnapshot(msg, receivedAt);
        this._applied(session);
        return;
      case 'delta':
        if (this._epoch == null || msg.epoch !== this._epoch || msg.revision !== /** @type {number} */ (this._revision) + 1) {
          this._endSession(session, 'gap', null);
          return;
        }
        this._applyDelta(msg, receivedAt);
        this._applied(session);
        return;
      case 'heartbeat': {
        const rev = typeof msg.revision === 'number' ? msg.revision : null;
        // A delta may legitimately be in flight behind a heartbeat that already carries its
        // revision, so being behind once is fine; still being behind the *previous*
        // heartbeat's revision one interval later means a delta was lost.
        if (session.behind != null && this._revision != null && this._revision < session.behind) {
          this._endSession(session, 'gap', null);
          return;
        }
        session.behind = rev != null && this._revision != null && rev > this._revision ? rev : null;
        // A resumed session with nothing missed carries only heartbeats: still a working one.
        this._applied(session);
        return;
      }
      case 'stale':
        this._setStale(!!msg.stale);
        this._applied(session);
        return;
      case 'removed':
        session.removed = true;
        this._applyRemoved(msg, receivedAt);
        return;
      default:
        // `pong` and future message types: liveness only.
        return;
    }
  }

  /**
   * Marks that `session` applied a frame; the first time, announces `sync`.
   * @private
   * @param {any} session
   */
  _applied(session) {
    if (session.applied || session.done) return;
    session.applied = true;
    /** @type {SyncDetail} */
    const detail = { url: session.url, resumed: session.resuming, epoch: this._epoch, revision: this._revision };
    this._emit('sync', detail);
  }

  /**
   * @private
   * @param {any} msg
   * @param {number} receivedAt
   */
  _applySnapshot(msg, receivedAt) {
    const prev = this._byId;
    /** @type {Map<string, Origin>} */
    const next = new Map();
    for (const o of msg.origins) next.set(o.id, Object.freeze({ ...o }));
    /** @type {Origin[]} */ const added = [];
    /** @type {Origin[]} */ const updated = [];
    /** @type {Origin[]} */ const removed = [];
    for (const [id, o] of next) {
      const p = prev.get(id);
      if (!p) added.push(o);
      else if (!sameOrigin(p, o)) updated.push(o);
    }
    for (const [id, p] of prev) if (!next.has(id)) removed.push(p);
    const first = !this._hadSnapshot;
    this._hadSnapshot = true;
    this._byId = next;
    this._sorted = null;
    this._epoch = msg.epoch ?? null;
    this._revision = typeof msg.revision === 'number' ? msg.revision : null;
    if (first || added.length || updated.length || removed.length) {
      this._emitChange('snapshot', added, updated, removed, msg, receivedAt);
    }
    this._setStale(!!msg.stale);
    this._resolveReady();
  }

  /**
   * @private
   * @param {any} msg
   * @param {number} receivedAt
   */
  _applyDelta(msg, receivedAt) {
    const map = this._byId;
    /** @type {Origin[]} */ const added = [];
    /** @type {Origin[]} */ const updated = [];
    /** @type {Origin[]} */ const removed = [];
    for (const raw of Array.isArray(msg.upsert) ? msg.upsert : []) {
      const o = Object.freeze({ ...raw });
      const p = map.get(o.id);
      if (!p) added.push(o);
      else if (!sameOrigin(p, o)) updated.push(o);
      map.set(o.id, o);
    }
    for (const id of Array.isArray(msg.remove) ? msg.remove : []) {
      const p = map.get(id);
      if (p) {
        removed.push(p);
        map.delete(id);
      }
    }
    this._sorted = null;
    this._revision = msg.revision;
    this._emitChange('delta', added, updated, removed, msg, receivedAt);
  }

  /**
   * @private
   * @param {any} msg
   * @param {number} receivedAt
   */
  _applyRemoved(msg, receivedAt) {
    const removed = [...this._byId.values()];
    this._byId = new Map();
    this._sorted = null;
    // The pool is gone: a later subscription must start from a fresh snapshot.
    this._epoch = null;
    this._revision = null;
    this._emit('removed', { pool: this.pool });
    this._emitChange('removed', [], [], removed, msg, receivedAt);
  }

  /**
   * @private
   * @param {ChangeDetail['reason']} reason
   * @param {Origin[]} added
   * @param {Origin[]} updated
   * @param {Origin[]} removed
   * @param {any} message
   * @param {number} receivedAt
   */
  _emitChange(reason, added, updated, removed, message, receivedAt) {
    /** @type {ChangeDetail} */
    const detail = {
      reason,
      origins: this.origins,
      added,
      updated,
      removed,
      epoch: this._epoch,
      revision: this._revision,
      message,
      receivedAt,
    };
    this._emit('change', detail);
  }

  /**
   * @private
   * @param {boolean} stale
   */
  _setStale(stale) {
    if (stale === this._stale) return;
    this._stale = stale;
    this._emit('stale', { stale });
  }

  /**
   * Ends `session` (abandoning its socket if still open) and schedules the next connection.
   * @private
   * @param {any} session
   * @param {string} reason
   * @param {number | null} code
   */
  _endSession(session, reason, code) {
    if (session.done) return;
    session.done = true;
    this._timers.clearTimeout(session.timer);
    if (this._session === session) this._session = null;
    try {
      // Do not wait for the close handshake: a dead peer would never answer it.
      session.ws.close(CLIENT_CLOSE_CODE, reason);
    } catch {
      /* already closed */
    }
    const healthy = session.applied && session.open && this._timers.now() - session.openedAt >= HEALTHY_AFTER_MS;
    this._scheduleReconnect(reason, code, healthy);
  }

  /**
   * @private
   * @param {string} reason
   * @param {number | null} code
   * @param {boolean} healthy the session that just ended had been working
   */
  _scheduleReconnect(reason, code, healthy) {
    if (this._closed) return;
    const url = this.urls[this._urlIndex];
    if (healthy) this._failures = 0;
    this._failures += 1;
    const n = this.urls.length;
    // A gap or removal says nothing bad about this discovery server: stay on it.
    if (reason !== 'gap' && reason !== 'removed') this._urlIndex = (this._urlIndex + 1) % n;
    // Every discovery URL gets one immediate try (at least `backoff.immediate` in all: the
    // "first retry at once"); after that, the back-off schedule from its first timed round.
    const o = this._backoff;
    let attempt = this._failures - Math.max(n, o.immediate);
    if (reason === 'removed' || (reason === 'shutdown' && n === 1)) attempt = Math.max(1, attempt);
    const retryIn = attempt <= 0 ? 0 : backoffDelay(o, attempt + o.immediate, this._random);
    this._emit('disconnect', { url, reason, code, retryIn });
    if (this._closed) return;
    this._retryTimer = this._timers.setTimeout(() => this._connect(), retryIn);
  }
}
