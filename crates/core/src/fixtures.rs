//! Test fixtures for the domain types (this crate's tests, and other crates' through the
//! `fixtures` feature, e.g. `origin-discovery-testkit`).

use chrono::{DateTime, Utc};

use crate::model::{Origin, OriginState};

/// A fixed `since` for fixtures (`2026-11-22T01:02:03.123Z`), so fixtures compare equal.
pub fn since() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T01:02:03.123Z")
        .expect("valid timestamp")
        .with_timezone(&Utc)
}

/// A ready origin `id` at `10.0.0.1:5080`, with no URL, node or zone, weight 1, load unknown.
pub fn origin(id: &str) -> Origin {
    Origin {
        id: id.into(),
        url: None,
        ip: "10.0.0.1".into(),
        port: 5080,
        node: None,
        zone: None,
        state: OriginState::Ready,
        since: since(),
        weight: 1,
        load: None,
    }
}

/// Like [`origin`], in `zone` and `state`.
pub fn origin_in(id: &str, zone: Option<&str>, state: OriginState) -> Origin {
    Origin {
        zone: zone.map(Into::into),
        state,
        ..origin(id)
    }
}
