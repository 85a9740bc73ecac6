//! origin-discovery: a Kubernetes controller that keeps a live list of media origins ahead
//! of EndpointSlice propagation and pushes it to clients. This crate is the deployed
//! binary's: configuration, wiring and the edges (Kubernetes in, HTTP out); the domain —
//! origin index, hub, ranking, messages — is `origin-discovery-core`, which knows nothing of
//! kube or HTTP. The design document is docs/DESIGN.md.
//!
//! Crate map (data flows top to bottom):
//!
//! - [`config`]: command line and environment, parsed once into types.
//! - [`app`]: wiring — starts the sources, the API and admin servers; shutdown.
//! - [`sources`]: one watch task per Kubernetes kind; [`convert`] turns objects into the
//!   core's signals, which the sources apply to the index through [`shared`].
//! - [`probe`]: the active prober, one more source: probes origins at their EndpointSlice
//!   addresses and applies the verdicts to the index.
//! - [`shared`]: the index, the hub it publishes to, and every source's health (readiness,
//!   staleness).
//! - [`api`]: the public HTTP API — snapshots, long-polls, picks, WebSocket and SSE push —
//!   reading the hub; [`admin`] and [`metrics`] on the admin port.
//! - [`dev`]: `origin-discovery dev`, the controller against the `kube-sim` simulated cluster.
//! - [`cli`]: the operator CLI (`get`, `watch`, `pick`), a client of the public API.

pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod convert;
pub mod dev;
pub mod metrics;
pub mod probe;
pub mod shared;
pub mod sources;
