//! The origin-discovery domain, with no Kubernetes, HTTP or networking inside: what the
//! controller knows about origins, how it decides their state, and how it publishes it.
//!
//! Crate map (data flows top to bottom):
//!
//! - [`signals`]: kube-free digests of Kubernetes objects (services, slices, pods, nodes),
//!   which the controller's sources produce.
//! - [`index`]: the origin index — merges signals per origin into one state (the rules of
//!   docs/DESIGN.md, "Origin state") and commits each pool's next revision as a
//!   [`model::PoolChange`].
//! - [`hub`]: every pool's latest [`hub::PoolView`] in a `watch` channel, a bounded delta log,
//!   and [`hub::Subscription`] — the transport-agnostic stream of frames one subscriber is sent.
//! - [`model`]: pools, origins, snapshots and deltas — the contract's JSON shapes.
//! - [`messages`]: the push messages built from them.
//! - [`pick`]: rendezvous ranking of reconnect targets (the contract's exact hash).
//! - `fixtures` (tests, or the `fixtures` feature): ready-made origins.

#![warn(missing_docs)]

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod hub;
pub mod index;
pub mod messages;
pub mod model;
pub mod pick;
pub mod signals;
