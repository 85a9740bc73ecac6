// Rendezvous (highest-random-weight) ranking, identical to the server's `GET …/pick`.
//
// The algorithm is part of the API contract (src/pick.rs in the controller, shared vectors in
// tests/pick_vectors.json):
//
// 1. h = FNV-1a-64(utf8(key) ‖ 0x00 ‖ utf8(origin.id))
// 2. weight = fmix64(h)  (MurmurHash3's 64-bit finalizer)
// 3. candidates: origins with state "ready" whose id is not excluded
// 4. order: same zone first (when a zone is given), then weight descending, then id ascending
//    (byte order of the UTF-8 encoding, which equals code-point order); take the first `count`.
//
// Each origin's weight depends only on (key, id), so when an origin disappears only the keys
// whose first choice it was move, and they spread over the survivors instead of piling onto one.

/** @typedef {import('../index.d.ts').Origin} Origin */
/** @typedef {import('../index.d.ts').RankOptions} RankOptions */

const MASK64 = 0xffff_ffff_ffff_ffffn;
const FMIX_C1 = 0xff51_afd7_ed55_8ccdn;
const FMIX_C2 = 0xc4ce_b9fe_1a85_ec53n;

/** Default number of targets, as on the server. */
export const DEFAULT_COUNT = 3;

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
 * The rendezvous weight of `id` for `key`, as an unsigned 64-bit BigInt.
 * @param {string} key
 * @param {string} id
 * @returns {bigint}
 */
export function weight(key, id) {
  return weightFromPrefix(keyPrefix(key), id);
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
 * Ranks reconnect targets exactly like the server's `/pick`.
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
  /** @type {{inZone: boolean, w: bigint, o: Origin}[]} */
  const ranked = [];
  for (const o of origins) {
    if (o.state !== 'ready' || excluded.has(o.id)) continue;
    ranked.push({
      inZone: zone != null && o.zone === zone,
      w: weightFromPrefix(prefix, o.id),
      o,
    });
  }
  ranked.sort((a, b) => {
    if (a.inZone !== b.inZone) return a.inZone ? -1 : 1;
    if (a.w !== b.w) return a.w > b.w ? -1 : 1;
    return compareIds(a.o.id, b.o.id);
  });
  const n = count == null ? DEFAULT_COUNT : Math.max(0, Math.floor(count));
  return ranked.slice(0, n).map((r) => r.o);
}
