// Exponential back-off with "full jitter" (AWS architecture blog, "Exponential Backoff And
// Jitter"): the n-th retry waits a uniformly random time in [0, min(max, initial * factor^(n-1))).
// Full jitter is what spreads a crowd of clients that failed at the same instant.

/** @typedef {import('../index.d.ts').BackoffOptions} BackoffOptions */

/** Defaults shared by the discovery connection and the media reconnect helper. */
export const DEFAULT_BACKOFF = Object.freeze({
  initial: 250,
  max: 30_000,
  factor: 2,
  maxRetries: 10,
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
  if (!(o.maxRetries >= 0)) throw new RangeError('backoff: maxRetries must be >= 0 (Infinity allowed)');
  return o;
}

/**
 * Upper bound of the n-th retry delay (n starts at 1), in milliseconds.
 * @param {Required<BackoffOptions>} o
 * @param {number} attempt
 */
export function backoffCeiling(o, attempt) {
  const exp = o.initial * Math.pow(o.factor, Math.max(0, attempt - 1));
  return Math.min(o.max, exp);
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
