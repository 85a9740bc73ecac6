//! Ranked reconnect targets: weighted rendezvous (highest-random-weight) hashing.
//!
//! The exact algorithm is part of the API contract, because the JavaScript client ranks
//! locally and must agree with `GET …/pick` bit for bit (README, "Ranking"; shared vectors:
//! `tests/pick_vectors.json`, `tests/pick_vectors_weighted.json`). Only integer arithmetic:
//!
//! 1. `h = FNV-1a-64(utf8(key) ‖ 0x00 ‖ utf8(origin.id))`
//!    (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`, wrapping multiply), then
//!    `h = fmix64(h)`, MurmurHash3's 64-bit finalizer:
//!    `h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33`
//!    ([`weight`], the name it had before origins had weights).
//! 2. `cost ≈ 2^24 · −log2((h + 1) / 2^64)`, computed exactly by [`cost`]: a fixed-point
//!    log2 whose every intermediate stays below 2^53 (so JavaScript's doubles are exact).
//!    `cost / 2^24 · ln 2` is an exponential variate with rate 1.
//! 3. `capacity = weight × max(20 − load_steps, 1)` ([`capacity`]): load in steps of 0.05
//!    (unknown = 0); a fully loaded origin keeps 1/20 of its weight, so it still ranks.
//! 4. Candidates: origins with state `ready` whose id is not in `exclude`.
//! 5. Order: when `zone` is given, origins in that zone first; then by `cost / capacity`
//!    ascending, compared exactly as `cost_a × capacity_b < cost_b × capacity_a`; ties by `h`
//!    descending, then `id` ascending. Take the first `count`.
//!
//! An origin wins a key with probability `capacity / Σ capacity` (the minimum of exponential
//! variates with rates `capacity_i`). With equal capacities the order is exactly plain
//! rendezvous hashing (`h` descending): `cost` never increases as `h` grows, and equal costs
//! fall back to `h`. Because each origin's score depends only on (key, origin), removing an
//! origin moves only the keys whose first choice it was: every other key keeps its primary.

use crate::model::{Load, Origin, OriginState, MAX_WEIGHT};

/// Default number of targets returned by a pick.
pub const DEFAULT_COUNT: usize = 3;
/// Largest `count` a pick accepts.
pub const MAX_COUNT: usize = 1000;

/// What the caller asks for.
#[derive(Clone, Debug, Default)]
pub struct PickRequest<'a> {
    /// Stream key (or any affinity key): all clients with the same key get the same order.
    pub key: &'a str,
    /// Preferred zone; origins in it rank first.
    pub zone: Option<&'a str>,
    /// Origin ids the client just failed on.
    pub exclude: &'a [String],
    /// How many targets to return.
    pub count: usize,
}

/// Fraction bits of [`cost`].
pub const COST_FRACTION_BITS: u32 = 24;

/// Largest [`cost`]: `64 · 2^24 = 2^30` (at `h = 0`).
pub const MAX_COST: u64 = 64 << COST_FRACTION_BITS;

/// FNV-1a 64-bit over `key ‖ 0x00 ‖ id`, finalized with fmix64: the origin's rendezvous
/// hash for `key` (step 1 of the module docs).
pub fn weight(key: &str, id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in key
        .as_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(id.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    fmix64(h)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// `2^24 · −log2((h + 1) / 2^64)` in fixed point, from 0 (`h = 2^64 − 1`) to [`MAX_COST`]
/// (`h = 0`); never increases as `h` grows. The exact steps (README, "Ranking"):
///
/// ```text
/// v = h + 1                                  1 ≤ v ≤ 2^64
/// e = ⌊log2 v⌋                               0 ≤ e ≤ 64 (bit length of v minus 1)
/// m = ⌊v · 2^25 / 2^e⌋                       2^25 ≤ m < 2^26: v's top 26 bits
/// f = 0
/// 24 times:  m = ⌊m² / 2^25⌋                 m² < 2^52
///            f = 2f; if m ≥ 2^26 { m = ⌊m / 2⌋; f = f + 1 }
/// cost = 64 · 2^24 − (e · 2^24 + f)
/// ```
pub fn cost(h: u64) -> u64 {
    let v = u128::from(h) + 1;
    let e = 127 - v.leading_zeros(); // ⌊log2 v⌋, 0..=64
                                     // v < 2^(e+1), so the top 26 bits: shifted left for small v, right for large.
    let mut m = if e >= 25 {
        (v >> (e - 25)) as u64
    } else {
        (v << (25 - e)) as u64
    };
    let mut f = 0u64;
    for _ in 0..COST_FRACTION_BITS {
        m = (m * m) >> 25;
        f <<= 1;
        if m >= 1 << 26 {
            m >>= 1;
            f |= 1;
        }
    }
    MAX_COST - ((u64::from(e) << COST_FRACTION_BITS) + f)
}

/// `weight × max(20 − load_steps, 1)`: the origin's effective weight `weight × (1 − load)` in
/// units of 1/20, floored at one unit so a fully loaded origin still ranks (step 3). A
/// weight outside 1..=[`MAX_WEIGHT`] counts as 1, an unknown load as 0 — as in the JS client.
pub fn capacity(o: &Origin) -> u64 {
    let weight = if (1..=MAX_WEIGHT).contains(&o.weight) {
        o.weight
    } else {
        1
    };
    let free = Load::STEPS - o.load.map_or(0, Load::steps);
    u64::from(weight) * u64::from(free.max(1))
}

/// Ranks `origins` for `req` as described in the module docs.
pub fn rank<'o>(origins: &'o [Origin], req: &PickRequest<'_>) -> Vec<&'o Origin> {
    struct Candidate<'o> {
        in_zone: bool,
        hash: u64,
        cost: u64,
        capacity: u64,
        origin: &'o Origin,
    }
    let mut ranked: Vec<Candidate<'o>> = origins
        .iter()
        .filter(|o| o.state == OriginState::Ready && !req.exclude.contains(&o.id))
        .map(|o| {
            let hash = weight(req.key, &o.id);
            Candidate {
                in_zone: req.zone.is_some() && o.zone.as_deref() == req.zone,
                hash,
                cost: cost(hash),
                capacity: capacity(o),
                origin: o,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        // cost / capacity ascending, without division: both products stay below 2^48.
        b.in_zone
            .cmp(&a.in_zone)
            .then((a.cost * b.capacity).cmp(&(b.cost * a.capacity)))
            .then(b.hash.cmp(&a.hash))
            .then_with(|| a.origin.id.cmp(&b.origin.id))
    });
    ranked
        .into_iter()
        .take(req.count)
        .map(|c| c.origin)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::origin_in as origin;
    use proptest::prelude::*;

    use super::weight as weight_of;

    fn ids(v: &[&Origin]) -> Vec<String> {
        v.iter().map(|o| o.id.clone()).collect()
    }

    #[test]
    fn weight_matches_reference_values() {
        // Computed independently (Python, arbitrary-precision integers masked to 64 bits),
        // not with the code under test. FNV-1a-64 of one zero byte is 0xaf63bd4c8601b7df.
        for (key, id, expected) in [
            ("", "", 0xb903_4ad3_7056_f5fb_u64),
            ("stream42", "origin-0", 0x7d2b_6806_d979_410c),
            ("a", "b", 0xab78_f5ec_a36d_0e2b),
            ("b", "a", 0x127b_e539_c305_0e0c),
            ("live/стрим", "[fd00::7]:5080", 0xa94c_bfe7_377a_ff72),
        ] {
            assert_eq!(weight(key, id), expected, "weight({key:?}, {id:?})");
        }
    }

    #[test]
    fn draining_and_excluded_origins_are_never_picked() {
        let origins = vec![
            origin("a", None, OriginState::Ready),
            origin("b", None, OriginState::Draining),
            origin("c", None, OriginState::Ready),
        ];
        let exclude = vec!["a".to_string()];
        let req = PickRequest {
            key: "k",
            zone: None,
            exclude: &exclude,
            count: 10,
        };
        assert_eq!(ids(&rank(&origins, &req)), vec!["c"]);
    }

    #[test]
    fn same_zone_origins_rank_first() {
        let origins: Vec<_> = (0..6)
            .map(|i| {
                let zone = if i % 2 == 0 { "z1" } else { "z2" };
                origin(&format!("o{i}"), Some(zone), OriginState::Ready)
            })
            .collect();
        for key in ["s1", "s2", "s3", "s4"] {
            let req = PickRequest {
                key,
                zone: Some("z2"),
                exclude: &[],
                count: 6,
            };
            let ranked = rank(&origins, &req);
            let zones: Vec<_> = ranked.iter().map(|o| o.zone.as_deref().unwrap()).collect();
            assert_eq!(zones, ["z2", "z2", "z2", "z1", "z1", "z1"], "key {key}");
        }
    }

    #[test]
    fn count_truncates() {
        let origins: Vec<_> = (0..5)
            .map(|i| origin(&format!("o{i}"), None, OriginState::Ready))
            .collect();
        let req = PickRequest {
            key: "k",
            zone: None,
            exclude: &[],
            count: 2,
        };
        assert_eq!(rank(&origins, &req).len(), 2);
    }

    fn weighted(id: &str, weight: u32, load: Option<u8>) -> Origin {
        Origin {
            weight,
            load: load.map(|s| Load::from_steps(s).unwrap()),
            ..origin(id, None, OriginState::Ready)
        }
    }

    fn first<'o>(origins: &'o [Origin], key: &str) -> &'o str {
        let req = PickRequest {
            key,
            zone: None,
            exclude: &[],
            count: 1,
        };
        &rank(origins, &req)[0].id
    }

    /// How many of `keys` rank each origin first, in the order of `origins`.
    fn shares(origins: &[Origin], keys: usize) -> Vec<usize> {
        let mut n = vec![0; origins.len()];
        for k in 0..keys {
            let id = first(origins, &format!("stream-{k}"));
            n[origins.iter().position(|o| o.id == id).unwrap()] += 1;
        }
        n
    }

    #[test]
    fn cost_at_the_edges_and_exact_powers_of_two() {
        assert_eq!(cost(u64::MAX), 0, "h + 1 = 2^64: −log2(1) = 0");
        assert_eq!(cost(0), MAX_COST, "h + 1 = 1: −log2(2^-64) = 64");
        assert_eq!(MAX_COST, 1 << 30);
        for k in 0..64u32 {
            // h + 1 = 2^k: exactly (64 − k) · 2^24, no rounding anywhere.
            let h = (1u64 << k) - 1;
            assert_eq!(cost(h), u64::from(64 - k) << 24, "h = 2^{k} − 1");
        }
    }

    #[test]
    fn cost_is_minus_log2_within_two_to_the_minus_22() {
        // The fixed-point value against f64's log2 over hashes spread across the whole range.
        let mut h = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..20_000u32 {
            h = h.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ u64::from(i);
            let x = h >> (i % 64); // small values too
            let exact = 64.0 - ((x as f64) + 1.0).log2();
            let got = cost(x) as f64 / f64::from(1u32 << 24);
            assert!(
                (got - exact).abs() <= 1.0 / f64::from(1u32 << 22),
                "h = {x}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn weights_1_2_3_get_one_two_three_sixths_of_10000_keys() {
        let origins = [
            weighted("origin-a", 1, None),
            weighted("origin-b", 2, None),
            weighted("origin-c", 3, None),
        ];
        let n = shares(&origins, 10_000);
        for (got, want) in n.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            let share = *got as f64 / 10_000.0;
            assert!((share - want).abs() <= 0.03, "shares {n:?}");
        }
    }

    #[test]
    fn equal_weights_spread_10000_keys_within_max_over_mean_1_1() {
        for (weight, load) in [(1, None), (7, Some(10))] {
            let origins: Vec<_> = (0..10)
                .map(|i| weighted(&format!("origin-{i}"), weight, load))
                .collect();
            let n = shares(&origins, 10_000);
            let max = *n.iter().max().unwrap() as f64;
            assert!(max / 1000.0 <= 1.1, "weight {weight}: {n:?}");
        }
    }

    #[test]
    fn load_lowers_an_origins_share_and_a_full_one_still_ranks() {
        // load 0.5 halves the capacity: shares 1/3 and 2/3.
        let origins = [weighted("a", 1, Some(10)), weighted("b", 1, None)];
        let n = shares(&origins, 10_000);
        assert!((n[0] as f64 / 10_000.0 - 1.0 / 3.0).abs() <= 0.03, "{n:?}");
        // Fully loaded: 1/20 of its weight, i.e. 1/21 of the keys — never excluded.
        let origins = [weighted("a", 1, Some(20)), weighted("b", 1, None)];
        let n = shares(&origins, 10_000);
        assert!((n[0] as f64 / 10_000.0 - 1.0 / 21.0).abs() <= 0.01, "{n:?}");
        let req = PickRequest {
            key: "k",
            zone: None,
            exclude: &[],
            count: 10,
        };
        assert_eq!(rank(&origins, &req).len(), 2);
        // A weight outside 1..=MAX_WEIGHT counts as 1.
        assert_eq!(capacity(&weighted("x", 0, None)), 20);
        assert_eq!(capacity(&weighted("x", MAX_WEIGHT + 1, Some(20))), 1);
        assert_eq!(
            capacity(&weighted("x", MAX_WEIGHT, Some(20))),
            u64::from(MAX_WEIGHT)
        );
    }

    #[test]
    fn a_dead_origins_keys_spread_over_the_survivors_by_weight() {
        let all: Vec<_> = [1, 2, 3, 4]
            .iter()
            .enumerate()
            .map(|(i, &w)| weighted(&format!("origin-{i}"), w, None))
            .collect();
        let survivors: Vec<_> = all.iter().filter(|o| o.id != "origin-3").cloned().collect();
        let mut moved_to = [0usize; 3];
        let mut moved = 0;
        for k in 0..20_000 {
            let key = format!("stream-{k}");
            let before = first(&all, &key);
            let after = first(&survivors, &key);
            if before == "origin-3" {
                moved += 1;
                moved_to[survivors.iter().position(|o| o.id == after).unwrap()] += 1;
            } else {
                assert_eq!(before, after, "{key} moved although its origin lives");
            }
        }
        assert!(moved > 7_000, "origin-3 (weight 4 of 10) had {moved} keys");
        for (got, want) in moved_to.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            let share = *got as f64 / moved as f64;
            assert!((share - want).abs() <= 0.03, "moved to {moved_to:?}");
        }
    }

    proptest! {
        /// `cost` never increases as the hash grows: what makes equal weights plain HRW.
        #[test]
        fn cost_is_monotonic(a: u64, b: u64) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(cost(lo) >= cost(hi));
        }

        /// With equal capacities the weighted order is exactly the plain order: hash
        /// descending, ties by id.
        #[test]
        fn equal_capacities_rank_exactly_like_plain_rendezvous(
            n in 1usize..20,
            weight in 1u32..=MAX_WEIGHT,
            load in proptest::option::of(0u8..=20),
            key in "[a-z0-9]{0,12}",
        ) {
            let origins: Vec<_> = (0..n).map(|i| weighted(&format!("o{i}"), weight, load)).collect();
            let req = PickRequest { key: &key, zone: None, exclude: &[], count: n };
            let got: Vec<_> = rank(&origins, &req).iter().map(|o| o.id.clone()).collect();
            let mut plain: Vec<_> = origins.iter().map(|o| (weight_of(&key, &o.id), o.id.clone())).collect();
            plain.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let plain: Vec<_> = plain.into_iter().map(|(_, id)| id).collect();
            prop_assert_eq!(got, plain);
        }

        /// Rendezvous property with weights and loads: removing one origin changes the
        /// primary only for the keys whose primary it was.
        #[test]
        fn removing_a_weighted_origin_moves_only_its_own_keys(
            caps in proptest::collection::vec((1u32..=100, proptest::option::of(0u8..=20)), 2..10),
            removed in 0usize..10,
            keys in proptest::collection::vec("[a-z0-9]{1,12}", 1..50),
        ) {
            let all: Vec<_> = caps.iter().enumerate()
                .map(|(i, &(w, l))| weighted(&format!("origin-{i}"), w, l)).collect();
            let mut rest = all.clone();
            let gone = rest.remove(removed % all.len());
            for key in &keys {
                let before = first(&all, key).to_string();
                let after = first(&rest, key).to_string();
                if before != gone.id {
                    prop_assert_eq!(before, after);
                }
            }
        }

        /// Rendezvous property: removing one origin changes the primary only for the keys
        /// whose primary it was.
        #[test]
        fn removing_an_origin_moves_only_its_own_keys(
            n in 2usize..12,
            removed in 0usize..12,
            keys in proptest::collection::vec("[a-z0-9]{1,12}", 1..50),
        ) {
            let removed = removed % n;
            let all: Vec<_> = (0..n)
                .map(|i| origin(&format!("origin-{i}"), None, OriginState::Ready))
                .collect();
            let mut rest = all.clone();
            let gone = rest.remove(removed);
            for key in &keys {
                let req = PickRequest { key, zone: None, exclude: &[], count: 1 };
                let before = rank(&all, &req)[0].id.clone();
                let after = rank(&rest, &req)[0].id.clone();
                if before != gone.id {
                    prop_assert_eq!(before, after);
                } else {
                    prop_assert_ne!(after, gone.id.clone());
                }
            }
        }
    }
}
