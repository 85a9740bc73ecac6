//! Shared ranking vectors: `tests/pick_vectors.json` is checked here and by the JavaScript
//! client's tests, so both implementations of the contract's hash agree.
//!
//! Regenerate (only when the algorithm deliberately changes) with
//! `UPDATE_PICK_VECTORS=1 cargo test --test pick_vectors`.

use chrono::{DateTime, Utc};
use origin_discovery_core::model::{Origin, OriginState};
use origin_discovery_core::pick::{rank, weight, PickRequest};
use serde_json::{json, Value};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pick_vectors.json");

fn origins() -> Vec<Origin> {
    let since: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    let specs = [
        ("origin-0", Some("zone-a"), OriginState::Ready),
        ("origin-1", Some("zone-b"), OriginState::Ready),
        ("origin-2", Some("zone-c"), OriginState::Ready),
        ("origin-3", Some("zone-a"), OriginState::Ready),
        ("origin-4", Some("zone-b"), OriginState::Draining),
        ("origin-5", None, OriginState::Ready),
        ("10.0.0.9:5080", Some("zone-c"), OriginState::Ready),
        ("[fd00::7]:5080", Some("zone-a"), OriginState::Ready),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, (id, zone, state))| Origin {
            id: id.to_string(),
            url: None,
            ip: format!("10.0.0.{i}"),
            port: 5080,
            node: None,
            zone: zone.map(Into::into),
            state: *state,
            since,
        })
        .collect()
}

fn generate() -> Value {
    let origins = origins();
    let keys = [
        "",
        "stream1",
        "stream2",
        "camera-42",
        "ключ-流",
        "a\u{0}b",
        "x".repeat(300).leak(),
    ];
    let mut weights = Vec::new();
    for key in keys {
        for o in &origins {
            weights.push(json!({"key": key, "id": o.id, "weight": weight(key, &o.id).to_string()}));
        }
    }
    let mut cases = Vec::new();
    let zones = [None, Some("zone-a"), Some("zone-b"), Some("nowhere")];
    let excludes: [&[&str]; 3] = [&[], &["origin-0", "origin-1"], &["origin-3", "unknown"]];
    for key in keys {
        for zone in zones {
            for exclude in excludes {
                for count in [1usize, 3, 100] {
                    let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
                    let req = PickRequest {
                        key,
                        zone,
                        exclude: &exclude,
                        count,
                    };
                    let expected: Vec<&str> =
                        rank(&origins, &req).iter().map(|o| o.id.as_str()).collect();
                    cases.push(json!({"key": key, "zone": zone, "exclude": exclude, "count": count, "expected": expected}));
                }
            }
        }
    }
    json!({
        "comment": "Shared rendezvous-ranking vectors (see src/pick.rs). Weights are u64 as decimal strings.",
        "origins": origins,
        "weights": weights,
        "cases": cases,
    })
}

#[test]
fn committed_vectors_match_the_rust_implementation() {
    let generated = generate();
    if std::env::var_os("UPDATE_PICK_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(PATH, text).unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        committed, generated,
        "tests/pick_vectors.json is out of date with src/pick.rs"
    );
    assert!(committed["cases"].as_array().unwrap().len() > 100);
}
