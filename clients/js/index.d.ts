// Type declarations for @origin-discovery/client (hand-written; the source is plain JS with JSDoc).

/** One endpoint of a pool, as the server sends it (docs/DESIGN.md, "Pools and origins"). */
export interface Origin {
  /** Pod name, or `ip:port` when the endpoint has no pod. Unique within the pool. */
  readonly id: string;
  /** Public URL of the origin (from the url template / pod annotation), when known. */
  readonly url?: string;
  readonly ip: string;
  readonly port: number;
  readonly node?: string;
  readonly zone?: string;
  /** `draining`: keeps its sessions but takes no new ones; never returned by `rank`. */
  readonly state: 'ready' | 'draining';
  /** RFC 3339 timestamp (milliseconds) of the origin's last state change. */
  readonly since: string;
  /**
   * Capacity relative to the pool's other origins: an integer from 1 to 10000 (pod annotation
   * `origin-discovery.io/weight`); absent means 1 (docs/DESIGN.md, "Weights and load").
   */
  readonly weight?: number;
  /**
   * Last reported load, 0 (idle) to 1 (full), in steps of 0.05, changing at most once per 5 s;
   * absent when unknown (counts as 0).
   */
  readonly load?: number;
}

// ---- Push messages (server → client), as in docs/schemas/message.json; checked against it
// by tests/api/test_messages.py. Fields a client does not know must be ignored. ----

/** The full list: the first message of a fresh subscription, or a reset after a gap. */
export interface SnapshotMessage {
  readonly type: 'snapshot';
  /** `namespace/service`. */
  readonly pool: string;
  /** Random id of the controller process; revisions compare only within one epoch. */
  readonly epoch: string;
  readonly revision: number;
  /** The apiserver has been unreachable longer than `--stale-after`. */
  readonly stale: boolean;
  /** Sorted by id. */
  readonly origins: readonly Origin[];
}

/** One revision's change (`revision` = previous + 1). */
export interface DeltaMessage {
  readonly type: 'delta';
  readonly pool: string;
  readonly epoch: string;
  readonly revision: number;
  /** Origins added or changed (full objects), sorted by id. */
  readonly upsert: readonly Origin[];
  /** Ids of origins that left, sorted. */
  readonly remove: readonly string[];
  /**
   * RFC 3339 (ms, UTC): when the controller received the signal that triggered this
   * revision; absent when unknown.
   */
  readonly received?: string;
}

/** Liveness for clients that cannot see ping frames. */
export interface HeartbeatMessage {
  readonly type: 'heartbeat';
  readonly revision: number;
}

/** The stale flag changed; the list did not. */
export interface StaleMessage {
  readonly type: 'stale';
  readonly pool: string;
  readonly epoch: string;
  readonly revision: number;
  readonly stale: boolean;
}

/** The pool disappeared; the server then closes. */
export interface RemovedMessage {
  readonly type: 'removed';
  readonly pool: string;
  readonly epoch: string;
  readonly revision: number;
}

/** The answer to a client `{"type":"ping"}`. */
export interface PongMessage {
  readonly type: 'pong';
  readonly revision: number;
}

export type Message =
  | SnapshotMessage
  | DeltaMessage
  | HeartbeatMessage
  | StaleMessage
  | RemovedMessage
  | PongMessage;

export interface RankOptions {
  /** Origins in this zone rank first. */
  zone?: string | null;
  /** Origin ids to skip (e.g. the ones just failed on). */
  exclude?: Iterable<string>;
  /** How many targets (default 3, like `/pick`); `Infinity` for all. */
  count?: number;
}

/**
 * Ranks ready origins for `key` exactly like the server's `GET …/pick`: weighted rendezvous
 * hashing on `weight × (1 − load)` (README, "Ranking").
 */
export function rank(origins: Iterable<Origin>, key: string, options?: RankOptions): Origin[];
/** The rendezvous hash (unsigned 64-bit) of origin `id` for `key`: `fmix64(FNV-1a-64(key ‖ 0x00 ‖ id))`. */
export function weight(key: string, id: string): bigint;
/** Fixed-point `2^24 · −log2((h + 1) / 2^64)` of a hash, 0 to 2^30, exactly as the server computes it. */
export function cost(h: bigint): number;
/** `weight × max(20 − loadSteps(load), 1)`; invalid weight → 1. */
export function capacity(origin: { weight?: number; load?: number }): number;
/** `round(load × 20)` clamped to 0–20; missing or non-numeric → 0. */
export function loadSteps(load: unknown): number;
/** `cost / capacity` of `origin` for `key` (lower ranks first), as a float, for margins. */
export function score(key: string, origin: { id: string; weight?: number; load?: number }): number;
/** Code-point (= UTF-8 byte) order of two ids, as the server sorts ties. */
export function compareIds(a: string, b: string): number;
export const DEFAULT_COUNT: number;
/** Largest origin weight (10000). */
export const MAX_WEIGHT: number;
/** Load steps between 0 and 1 (20: step 0.05). */
export const LOAD_STEPS: number;
/** `cost(0n)`: 2^30. */
export const MAX_COST: number;

/**
 * Retry schedule, GBB-style by default (Glimesh broadcast box: first retry at once, then 1 s,
 * doubling, capped at 30 s), with full jitter: retry n waits `random() * ceiling(n)` where
 * ceiling is 0 for the first `immediate` retries, then `min(max, initial · factor^(n-immediate-1))`.
 */
export interface BackoffOptions {
  /** Retries that run at once before the timed ones (default 1: "first retry at once"). */
  immediate?: number;
  /** Ceiling of the first timed retry in ms (default 1000). */
  initial?: number;
  /** Ceiling cap in ms (default 30000). */
  max?: number;
  /** Growth factor per retry (default 2). */
  factor?: number;
  /**
   * Back-off rounds before giving up (default `Infinity`: never — an outage of any length is
   * survived; failover helper only, discovery always retries forever).
   */
  maxRetries?: number;
}
export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;
export function backoffOptions(options?: BackoffOptions): Required<BackoffOptions>;
/** 0 for `attempt <= immediate`, else `min(max, initial * factor^(attempt-immediate-1))`; attempt starts at 1. */
export function backoffCeiling(options: Required<BackoffOptions>, attempt: number): number;
/** Full jitter: `floor(random() * backoffCeiling(options, attempt))`. */
export function backoffDelay(options: Required<BackoffOptions>, attempt: number, random: () => number): number;

/** Timer functions; inject fakes in tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  /** Milliseconds, monotonic enough for durations (default `Date.now`). */
  now(): number;
}

/** Minimal WebSocket constructor shape (browser WebSocket, or the `ws` package in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  close(code?: number, reason?: string): void;
  send(data: string): void;
  addEventListener(type: string, listener: (ev: any) => void): void;
  removeEventListener(type: string, listener: (ev: any) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface OriginDiscoveryOptions {
  /** Discovery base URL(s), e.g. `https://discovery.example.com` (http→ws, https→wss). Rotated on failure. */
  urls: string | string[];
  /** Pool id `namespace/service`. */
  pool: string;
  /** WebSocket class when there is no global one (Node 20: `import WebSocket from 'ws'`). */
  WebSocket?: WebSocketConstructor;
  /** No frame for this long (ms) → the connection is dead (default 15000 = 3 × 5 s heartbeat). */
  heartbeatTimeout?: number;
  /**
   * Reconnect back-off once every discovery URL had its immediate try (`maxRetries` ignored:
   * retries forever).
   */
  backoff?: BackoffOptions;
  timers?: Partial<Timers>;
  /** Uniform [0,1) source for jitter (default `Math.random`). */
  random?: () => number;
  /**
   * Source of `online` events that end a reconnect back-off wait at once (default
   * `globalThis` where it is an event target, i.e. the browser's `window`; `null` disables).
   */
  onlineEvents?: EventTarget | null;
}

export interface ChangeDetail {
  /** What caused the change. */
  reason: 'snapshot' | 'delta' | 'removed';
  /** The full current list (sorted by id, frozen). */
  origins: readonly Origin[];
  added: Origin[];
  /** New versions of origins whose fields changed (e.g. `state` → `draining`). */
  updated: Origin[];
  /** The last known versions of origins that are gone. */
  removed: Origin[];
  epoch: string | null;
  revision: number | null;
  /** The raw server message. */
  message: SnapshotMessage | DeltaMessage | RemovedMessage;
  /** `timers.now()` when the frame arrived. */
  receivedAt: number;
}

export interface DisconnectDetail {
  url: string;
  reason: 'closed' | 'error' | 'timeout' | 'gap' | 'shutdown' | 'policy' | 'protocol' | 'removed';
  code: number | null;
  /** ms until the next connection attempt. */
  retryIn: number;
}

/** A watch session brought the list up to date (once per session). */
export interface SyncDetail {
  /** The session's watch URL. */
  url: string;
  /** The server resumed from our revision (replayed deltas or nothing missed) instead of sending a snapshot. */
  resumed: boolean;
  epoch: string | null;
  revision: number | null;
}

export interface OriginDiscoveryEventMap {
  change: ChangeDetail;
  sync: SyncDetail;
  stale: { stale: boolean };
  error: { error: Error };
  connect: { url: string };
  disconnect: DisconnectDetail;
  removed: { pool: string };
  message: { message: Message; receivedAt: number };
}

/** Live origin list of one pool, kept current over `…/watch`. Connects on construction. */
export class OriginDiscovery extends EventTarget {
  constructor(options: OriginDiscoveryOptions);
  readonly urls: string[];
  readonly pool: string;
  /** Resolves after the first snapshot; rejects when closed before. */
  readonly ready: Promise<void>;
  /** Current origins (ready and draining), sorted by id. Kept while disconnected. */
  readonly origins: readonly Origin[];
  readonly epoch: string | null;
  readonly revision: number | null;
  readonly stale: boolean;
  readonly connected: boolean;
  /** Discovery URL of the current (or next) connection. */
  readonly url: string;
  get(id: string): Origin | undefined;
  /** `rank(this.origins, key, options)`. */
  rank(key: string, options?: RankOptions): Origin[];
  /** Subscribe; `fn` gets the event detail. Returns an unsubscribe function. */
  on<K extends keyof OriginDiscoveryEventMap>(type: K, fn: (detail: OriginDiscoveryEventMap[K]) => void): () => void;
  /** Stop reconnecting and close the socket. */
  close(): void;
}

/** Watch URL for `pool` on `base`, with resume parameters when given. */
export function watchUrl(base: string, pool: string, resume?: { epoch?: string | null; revision?: number | null }): string;
export const DEFAULT_HEARTBEAT_TIMEOUT: number;

export type FailoverState = 'waiting' | 'connecting' | 'connected' | 'migrating' | 'backoff' | 'gaveup' | 'closed';

/** What `open()` gets besides the origin. */
export interface OpenContext<S = any> {
  /** Aborted when the attempt is abandoned (timeout, superseded, `close()`). */
  signal: AbortSignal;
  /** `structuredClone` of `handle.session` taken for this call (undefined when none is set). */
  session: S;
}

/**
 * Why an origin counts as failed: its connection closed/errored, the attempt timed out, or
 * discovery announced the attempt's target draining / removed, or removed the origin of the
 * open connection while no other target could be opened.
 */
export type FailoverReason = 'closed' | 'error' | 'timeout' | 'draining' | 'removed';

/**
 * Rebalancing (clients/js/README.md, "Rebalancing"): move a healthy connection to the
 * first-ranked origin when it beats the current one by `margin`, make-before-break, at a random
 * moment so that a pool's clients together move about `rate` of themselves per second at most
 * (a statistical bound: clients do not coordinate).
 */
export interface RebalanceOptions {
  /**
   * Fraction of a pool's clients that may move per second (default 0.05). A client that wants
   * to move waits uniformly in [0, 1.5 / rate) s: the expected aggregate is ≤ 2/3 · rate · clients.
   */
  rate?: number;
  /**
   * Move only when `score(current) > (1 + margin) · score(first-ranked)` (default 0.1); a
   * same-zone origin beats an other-zone one outright when `zone` is set.
   */
  margin?: number;
  /** Never move a connection younger than this, in ms (default 10000). */
  minAge?: number;
  /**
   * Decides instead of the score margin whether `candidate` (the first-ranked origin) is worth
   * leaving `current` for (for a discovery whose `rank` is not the contract's).
   */
  better?: (current: Origin, candidate: Origin, key: string) => boolean;
}
export const DEFAULT_REBALANCE: Readonly<Required<Omit<RebalanceOptions, 'better'>>>;
/** 1.5: the jitter window is `REBALANCE_HEADROOM / rate` seconds. */
export const REBALANCE_HEADROOM: number;

export interface FailoverOptions<C, S = any> {
  /** Preferred zone (same-zone origins first). */
  zone?: string | null;
  /** Max time for one `open()` to become open before the next origin is tried (default 5000 ms). */
  connectTimeout?: number;
  /**
   * After every candidate failed: GBB-style full-jitter back-off (default: first retry at once,
   * then 1 s doubling to 30 s, never giving up).
   */
  backoff?: BackoffOptions;
  timers?: Partial<Timers>;
  random?: () => number;
  /**
   * Source of `online` events that end a back-off wait at once (default `globalThis` where it
   * is an event target, i.e. the browser's `window`; `null` disables).
   */
  onlineEvents?: EventTarget | null;
  /**
   * Initial session state (any structured-cloneable value, e.g. `{streamId, publishParams}`);
   * see `FailoverConnection.session`. A value that cannot be cloned throws a `TypeError`.
   */
  session?: S;
  /** Move automatically when the origin drains or is removed, or to rebalance (default true). */
  migrate?: boolean;
  /**
   * Opt-in: also move a healthy connection when its origin is no longer the first-ranked for
   * the key by a margin (new capacity, a recovered origin, load shifted) — rate-limited,
   * jittered, never before `minAge`. `true` for the defaults.
   */
  rebalance?: boolean | RebalanceOptions;
  /** How to close a connection (default `conn.close()`); must not wait for the peer. */
  close?: (conn: C) => void;
  /**
   * A connection is open (first time, after failover, or after migration). Re-publish / re-play
   * here; `session` is the copy the `open()` of this connection got.
   */
  onConnect?: (info: { connection: C; origin: Origin; migrated: boolean; previous: Origin | null; session: S }) => void;
  /**
   * `from` failed (while opening or after being open); `to` is tried next (null: none left →
   * back-off). When `from` was a rebalance target, `to` is the current origin, which stays.
   */
  onFailover?: (info: { from: Origin; to: Origin | null; error: Error; reason: FailoverReason }) => void;
  /**
   * The current origin is draining or was removed, or (`rebalance`) another origin now ranks first
   * by the margin; `to` is where the helper moves (null when there is no other ready origin: a
   * draining origin keeps serving, a removed one counts as failed and the helper backs off).
   * `session`: a copy of the session state. Return `false` to handle the move yourself.
   */
  onMigrate?: (info: {
    from: Origin;
    to: Origin | null;
    reason: 'draining' | 'removed' | 'rebalance';
    connection: C;
    session: S;
  }) => void | boolean;
  /** Every candidate failed; waiting `delay` ms before round `attempt` (1-based). */
  onRetry?: (info: { attempt: number; delay: number; error: Error | null }) => void;
  /** `maxRetries` rounds failed (never with the default); the helper stops (call `retry()` to start over). */
  onGiveUp?: (info: { retries: number; error: Error | null }) => void;
}

/** A media connection kept on a live origin. */
export class FailoverConnection<C, S = any> {
  readonly origin: Origin | null;
  readonly connection: C | null;
  readonly state: FailoverState;
  /**
   * The application's session state (stream id, publish parameters …), kept by reference:
   * mutate it in place or assign a new value (must be structured-cloneable, else `TypeError`).
   * Every `open()` (`ctx.session`) and `onMigrate` get a `structuredClone` taken at the call.
   */
  session: S;
  /** Report the current connection broken (app-level error); fails over at once. */
  fail(error?: unknown): void;
  /** Start over after give-up. */
  retry(): void;
  close(): void;
}

/**
 * Opens `open(origin)` on the best origin for `key` and keeps it on a live one.
 * `open` may return a WebSocket-like object (waited for `open`; `close`/`error` = dead), an
 * EventEmitter, an object with a `closed` promise, or a promise of any of these.
 */
export function connectWithFailover<C, S = any>(
  discovery: OriginDiscovery,
  key: string,
  open: (origin: Origin, ctx: OpenContext<S>) => C | Promise<C>,
  options?: FailoverOptions<C, S>,
): FailoverConnection<C, S>;
export const DEFAULT_CONNECT_TIMEOUT: number;
