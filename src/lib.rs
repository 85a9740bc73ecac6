//! origin-discovery: a Kubernetes controller that keeps a live list of media origins ahead
//! of EndpointSlice propagation and pushes it to clients.
//!
//! Crate map (data flows top to bottom):
//!
//! - [`config`]: command line and environment, parsed once into types.
//! - [`sources`]: one watch task per Kubernetes kind; turns objects into index signals.
//! - [`model`]: the domain — pools, origins, snapshots, deltas (no kube, no I/O).
//! - [`pick`]: rendezvous ranking of reconnect targets (the contract's exact hash).
//! - [`sim`]: an embedded simulated Kubernetes API server for `dev` and tests.

pub mod admin;
pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod controller;
pub mod convert;
pub mod dev;
pub mod hub;
pub mod index;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod pick;
pub mod signals;
pub mod sim;
pub mod sources;
