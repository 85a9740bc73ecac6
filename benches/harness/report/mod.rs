//! The report of a run, by concept:
//!
//! - [`rows`]: what was measured, as plain rows (push latency of both servers, signal
//!   lead, snapshot throughput, memory, index) and the [`Report`] that holds them;
//! - [`machine`]: the machine probe (`/proc`);
//! - [`targets`]: the targets and their verdicts;
//! - `markdown`: the tables, the method (`method.md`) and the findings, as Markdown;
//! - `plot`: the push-latency SVG.
//!
//! The harness fills a [`Report`]; `markdown()` and `plot()` only read it.

mod machine;
mod markdown;
mod plot;
mod rows;
mod targets;

pub use machine::Machine;
pub use rows::{CpuRow, LeadRow, Memory, PeerRow, PushRow, Report, Throughput};
