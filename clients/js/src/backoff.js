// Exponential back-off with "full jitter" (AWS architecture blog, "Exponential Backoff And
// Jitter"), on the Glimesh broadcast box (GBB) schedule: the first `immediate` retries run at
// once, then retry n waits a uniformly random time in [0, min(max, initial · factor^k)) with
// k = n - immediate - 1, i.e. ceilings 0, 1 s, 2 s, 4 s … 30 s by default. Full jitter is what
// spreads a crowd of clients that failed at the same instant.

/** @typedef {import('../index.d.ts').BackoffOptions} BackoffOptions */

/**
 * Defaults shared by the discovery connection and the media reconnect helper: GBB-style
 * (first retry at once, then 1 s doubling up to 30 s), with full jitter, never giving up — a
 * client must survive an outage of any length and reconnect when the origins come back.
 */
export const DEFAULT_BACKOFF = Object.freeze({
  immediate: 1,
  initial: 1_000,
  max: 30_000,
  factor: 2,
  maxRetries: Infinity,
});

/**
 * @param {BackoffOptions | undefined} options
 * @returns {Required<BackoffOptions>}
 */
export function backoffOptions(options) {
  const o = { ...DEFAULT_BACKOFF, ...(options ?? {}) };
  if (!(o.initial >= 0) || !(o.max >= 0) || !(o.factor >= 1)) {
    throw new RangeError('backoff: initial and max must be >= 0 and factor >= 1');
  }
  if (!(o.immediate >= 0) || !Number.isInteger(o.immediate)) {
    throw new RangeError('backoff: immediate must be an integer >= 0');
  }
  if (!(o.maxRetries >= 0)) throw new RangeError('backoff: maxRetries must be >= 0 (Infinity allowed)');
  return o;
}

/**
 * Upper bound of the n-th retry delay (n starts at 1), in milliseconds: 0 for the first
 * `immediate` retries, then `min(max, initial · factor^(n - immediate - 1))`.
 * @param {Required<BackoffOptions>} o
 * @param {number} attempt
 */
export function backoffCeiling(o, attempt) {
  const k = attempt - o.immediate - 1;
  if (k < 0 || o.initial === 0) return 0;
  return Math.min(o.max, o.initial * Math.pow(o.factor, k));
}

/**
 * The n-th retry delay with full jitter.
 * @param {Required<BackoffOptions>} o
 * @param {number} attempt 1-based
 * @param {() => number} random uniform in [0, 1)
 */
export function backoffDelay(o, attempt, random) {
  return Math.floor(random() * backoffCeiling(o, attempt));
}

/**
 * Timer functions, injectable for tests. Bound to the global object so that browsers do not
 * throw "Illegal invocation".
 * @param {Partial<import('../index.d.ts').Timers> | undefined} timers
 * @returns {import('../index.d.ts').Timers}
 */
export function timerFunctions(timers) {
  return {
    setTimeout: timers?.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
    clearTimeout: timers?.clearTimeout ?? ((id) => globalThis.clearTimeout(/** @type {any} */ (id))),
    now: timers?.now ?? (() => Date.now()),
  };
}

/**
 * Subscribes to the `online` event of `target` (default: `globalThis` when it is an event
 * target, i.e. in browsers; `null` disables). Returns an unsubscribe function.
 * @param {EventTarget | null | undefined} target
 * @param {() => void} fn
 * @returns {() => void}
 */
export function onOnline(target, fn) {
  const t = target === undefined ? /** @type {any} */ (globalThis) : target;
  if (typeof t?.addEventListener !== 'function') return () => {};
  const listener = () => fn();
  t.addEventListener('online', listener);
  return () => t.removeEventListener('online', listener);
}
