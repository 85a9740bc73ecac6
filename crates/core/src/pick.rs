//! Ranked reconnect targets: rendezvous (highest-random-weight) hashing.
//!
//! The exact algorithm is part of the API contract, because the JavaScript client ranks
//! locally and must agree with `GET …/pick` (shared vectors: `tests/pick_vectors.json`):
//!
//! 1. `h = FNV-1a-64(utf8(key) ‖ 0x00 ‖ utf8(origin.id))`
//!    (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`, wrapping multiply).
//! 2. `weight = fmix64(h)`, MurmurHash3's 64-bit finalizer:
//!    `h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33`.
//! 3. Candidates: origins with state `ready` whose id is not in `exclude`.
//! 4. Order: when `zone` is given, origins in that zone first; then by `weight`
//!    descending; ties by `id` ascending. Take the first `count`.
//!
//! Because each origin's weight depends only on (key, id), removing an origin moves only the
//! keys whose first choice it was: every other key keeps its primary.

use crate::model::{Origin, OriginState};

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

/// FNV-1a 64-bit over `key ‖ 0x00 ‖ id`, finalized with fmix64.
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

/// Ranks `origins` for `req` as described in the module docs.
pub fn rank<'o>(origins: &'o [Origin], req: &PickRequest<'_>) -> Vec<&'o Origin> {
    let mut ranked: Vec<(bool, u64, &Origin)> = origins
        .iter()
        .filter(|o| o.state == OriginState::Ready && !req.exclude.contains(&o.id))
        .map(|o| {
            let in_zone = req.zone.is_some() && o.zone.as_deref() == req.zone;
            (in_zone, weight(req.key, &o.id), o)
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.id.cmp(&b.2.id))
    });
    ranked
        .into_iter()
        .take(req.count)
        .map(|(_, _, o)| o)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::origin_in as origin;
    use proptest::prelude::*;

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

    proptest! {
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
