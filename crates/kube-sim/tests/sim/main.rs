//! The simulator's integration tests, one binary: the REST API, the emulated controllers,
//! kube-rs watchers, kubectl, and hostile input.

mod api;
mod controllers;
mod kubectl;
mod robustness;
mod support;
mod watch;
