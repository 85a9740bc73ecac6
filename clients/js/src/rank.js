// Weighted rendezvous (highest-random-weight) ranking, identical to the server's `GET …/pick`.
//
// The algorithm is part of the API contract (README, "Ranking"; crates/core/src/pick.rs in the
// controller; shared vectors in tests/pick_vectors.json and tests/pick_vectors_weighted.json).
// Integer arithmetic only, so every platform gets the same bits:
//
// 1. h = fmix64(FNV-1a-64(utf8(key) ‖ 0x00 ‖ utf8(origin.id)))  (MurmurHash3's finalizer)
// 2. cost ≈ 2^24 · −log2((h + 1) / 2^64): a fixed-point log2 (see `cost`) whose every
//    intermediate stays below 2^53, so plain numbers are exact
// 3. capacity = weight × max(20 − round(load × 20), 1): effective weight weight × (1 − load) in
//    units of 1/20, floored so a fully loaded origin still ranks (weight missing or not an
//    integer 1–10000 → 1; load missing or not a number → 0, clamped to [0, 1])
// 4. candidates: origins with state "ready" whose id is not excluded
// 5. order: same zone first (when a zone is given), then cost / capacity ascending, compared
//    exactly as cost_a × capacity_b < cost_b × capacity_a (both < 2^48); ties by h descending,
//    then id ascending (byte order of the UTF-8 encoding, which equals code-point order); take
//    the first `count`.
//
// An origin wins a key with probability capacity / Σ capacity. With equal capacities this is
// plain rendezvous hashing (h descending): cost never increases as h grows. Each origin's score
// depends only on (key, origin), so when an origin disappears only the keys whose first choice
// it was move, and they spread over the survivors by capacity instead of piling onto one.

/** @typedef {import('../index.d.ts').Origin} Origin */
/** @typedef {import('../index.d.ts').RankOptions} RankOptions */

const MASK64 = 0xffff_ffff_ffff_ffffn;
const FMIX_C1 = 0xff51_afd7_ed55_8ccdn;
const FMIX_C2 = 0xc4ce_b9fe_1a85_ec53n;

/** Default number of targets, as on the server. */
export const DEFAULT_COUNT = 3;
/** Largest origin weight (the server rejects larger ones; a client counts them as 1). */
export const MAX_WEIGHT = 10_000;
/** Load steps between 0 and 1 (step 0.05). */
export const LOAD_STEPS = 20;
/** Fraction bits of `cost`. */
const COST_BITS = 24;
const TWO_25 = 2 ** 25;
const TWO_26 = 2 ** 26;
/** `cost` at h = 0: 64 · 2^24 = 2^30. */
export const MAX_COST = 64 * 2 ** COST_BITS;
const TWO_64 = 1n << 64n;

const encoder = new TextEncoder();

// FNV-1a runs per byte, so it is done on two 32-bit halves with plain numbers (exact: every
// intermediate stays below 2^53); only the per-origin finalizer uses BigInt. This is ~5x
// faster than a BigInt multiply per byte and gives the same bits.
// prime = 2^40 + 0x1b3, so h * prime = h * 0x1b3 + (h << 40)  (mod 2^64).

/**
 * Continues an FNV-1a-64 state (hi, lo 32-bit halves) over `bytes`; returns [hi, lo].
 * @param {number} hi
 * @param {number} lo
 * @param {Uint8Array} bytes
 * @returns {[number, number]}
 */
function fnv1a(hi, lo, bytes) {
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]) >>> 0;
    const l = lo * 0x1b3; // < 2^41, exact
    const carry = Math.floor(l / 0x1_0000_0000);
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = l >>> 0;
  }
  return [hi, lo];
}

/**
 * MurmurHash3 fmix64.
 * @param {bigint} h
 * @returns {bigint}
 */
function fmix64(h) {
  h ^= h >> 33n;
  h = (h * FMIX_C1) & MASK64;
  h ^= h >> 33n;
  h = (h * FMIX_C2) & MASK64;
  h ^= h >> 33n;
  return h;
}

const ZERO = new Uint8Array([0]);

/**
 * FNV state after `utf8(key) ‖ 0x00`: shared by every origin of one ranking, so it is computed
 * once per call instead of once per origin.
 * @param {string} key
 * @returns {[number, number]}
 */
function keyPrefix(key) {
  // offset basis 0xcbf29ce484222325
  const [hi, lo] = fnv1a(0xcbf29ce4, 0x84222325, encoder.encode(key));
  return fnv1a(hi, lo, ZERO);
}

/**
 * @param {[number, number]} prefix FNV state after `key ‖ 0x00`
 * @param {string} id
 * @returns {bigint}
 */
function weightFromPrefix(prefix, id) {
  const [hi, lo] = fnv1a(prefix[0], prefix[1], encoder.encode(id));
  return fmix64((BigInt(hi) << 32n) | BigInt(lo));
}

/**
 * The rendezvous hash of `id` for `key` (step 1; named `weight` since before origins had
 * weights), as an unsigned 64-bit BigInt.
 * @param {string} key
 * @param {string} id
 * @returns {bigint}
 */
export function weight(key, id) {
  return weightFromPrefix(keyPrefix(key), id);
}

/**
 * The fixed-point `2^24 · −log2((h + 1) / 2^64)` of a rendezvous hash, 0 (h = 2^64 − 1) to
 * 2^30 (h = 0), exactly as the server computes it (README, "Ranking"):
 *
 *     v = h + 1;  e = ⌊log2 v⌋;  m = ⌊v · 2^25 / 2^e⌋          (2^25 ≤ m < 2^26)
 *     f = 0;  24 times: m = ⌊m² / 2^25⌋; f = 2f; if m ≥ 2^26 { m = ⌊m / 2⌋; f += 1 }
 *     cost = 64 · 2^24 − (e · 2^24 + f)
 *
 * m² < 2^52, so every step is exact in a double.
 * @param {bigint} h unsigned 64-bit hash, as from `weight()`
 * @returns {number}
 */
export function cost(h) {
  const v = h + 1n;
  let e;
  let m;
  if (v === TWO_64) {
    e = 64;
    m = TWO_25;
  } else {
    const hi = Number(v >> 32n);
    const lo = Number(v & 0xffff_ffffn);
    e = hi > 0 ? 63 - Math.clz32(hi) : 31 - Math.clz32(lo);
    // the top 26 bits of v, as a plain number (v < 2^64 here, so e ≤ 63)
    m = e >= 25 ? Number(v >> BigInt(e - 25)) : lo * 2 ** (25 - e);
  }
  let f = 0;
  for (let i = 0; i < COST_BITS; i++) {
    m = Math.floor((m * m) / TWO_25);
    f *= 2;
    if (m >= TWO_26) {
      m = Math.floor(m / 2);
      f += 1;
    }
  }
  return MAX_COST - (e * 2 ** COST_BITS + f);
}

/**
 * An origin's load in steps of 1/20: `round(load × 20)` clamped to 0–20 (IEEE multiply, halves
 * up — the same as the server); a missing or non-numeric load is 0.
 * @param {unknown} load
 * @returns {number}
 */
export function loadSteps(load) {
  if (typeof load !== 'number' || !Number.isFinite(load)) return 0;
  return Math.min(LOAD_STEPS, Math.max(0, Math.round(load * LOAD_STEPS)));
}

/**
 * `weight × max(20 − loadSteps(load), 1)`: the effective weight `weight × (1 − load)` in units of
 * 1/20, floored at one unit so a fully loaded origin still ranks. A weight that is not an
 * integer from 1 to 10000 counts as 1.
 * @param {{weight?: number, load?: number}} origin
 * @returns {number}
 */
export function capacity(origin) {
  const w = origin.weight;
  const weight = Number.isInteger(w) && /** @type {number} */ (w) >= 1 && /** @type {number} */ (w) <= MAX_WEIGHT ? /** @type {number} */ (w) : 1;
  return weight * Math.max(LOAD_STEPS - loadSteps(origin.load), 1);
}

/**
 * The origin's rendezvous score for `key`: `cost / capacity`, lower is better (what `rank` orders
 * by, as a float for comparing margins; `rank` itself compares exactly).
 * @param {string} key
 * @param {{id: string, weight?: number, load?: number}} origin
 * @returns {number}
 */
export function score(key, origin) {
  return cost(weight(String(key ?? ''), origin.id)) / capacity(origin);
}

/**
 * Code-point (= UTF-8 byte) order, which is what the server's `String` ordering uses.
 * JavaScript's `<` compares UTF-16 code units, which differs for astral vs. U+E000..U+FFFF.
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
export function compareIds(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca !== cb) {
      // Only when surrogates are involved can code-unit order differ from code-point order.
      if (ca >= 0xd800 && cb >= 0xd800) {
        const pa = /** @type {number} */ (a.codePointAt(i));
        const pb = /** @type {number} */ (b.codePointAt(i));
        return pa < pb ? -1 : 1;
      }
      return ca < cb ? -1 : 1;
    }
  }
  return a.length - b.length;
}

/**
 * Ranks reconnect targets exactly like the server's `/pick` (weighted rendezvous hashing).
 *
 * @param {Iterable<Origin>} origins the pool's current origins (any state)
 * @param {string} key affinity key, e.g. the stream id: every client of one key gets one order
 * @param {RankOptions} [options]
 * @returns {Origin[]} ready origins, best first, at most `count`
 */
export function rank(origins, key, options = {}) {
  const { zone = null, exclude = [], count = DEFAULT_COUNT } = options;
  const excluded = exclude instanceof Set ? exclude : new Set(exclude);
  const prefix = keyPrefix(String(key ?? ''));
  /** @type {{inZone: boolean, w: bigint, cost: number, cap: number, o: Origin}[]} */
  const ranked = [];
  for (const o of origins) {
    if (o.state !== 'ready' || excluded.has(o.id)) continue;
    const w = weightFromPrefix(prefix, o.id);
    ranked.push({
      inZone: zone != null && o.zone === zone,
      w,
      cost: cost(w),
      cap: capacity(o),
      o,
    });
  }
  ranked.sort((a, b) => {
    if (a.inZone !== b.inZone) return a.inZone ? -1 : 1;
    // cost / capacity ascending without division: both products are below 2^48, exact
    const x = a.cost * b.cap;
    const y = b.cost * a.cap;
    if (x !== y) return x < y ? -1 : 1;
    if (a.w !== b.w) return a.w > b.w ? -1 : 1;
    return compareIds(a.o.id, b.o.id);
  });
  const n = count == null ? DEFAULT_COUNT : Math.max(0, Math.floor(count));
  return ranked.slice(0, n).map((r) => r.o);
}
