//! Reads the controller's own push-latency histogram from `/metrics` (watch event arrival
//! in the controller → frame written), to split the end-to-end latency into "simulator →
//! controller" and "inside the controller".

use std::net::SocketAddr;

use anyhow::{Context, Result};

const METRIC: &str = "origin_discovery_push_latency_seconds";

/// One transport's cumulative histogram.
#[derive(Clone, Debug, Default)]
pub struct Hist {
    /// `(upper bound s, cumulative count)`, ascending.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations, s.
    pub sum: f64,
    /// Observations.
    pub count: f64,
}

impl Hist {
    /// Observations made between `before` and `self`.
    pub fn since(&self, before: &Hist) -> Hist {
        let prior = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Hist {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, c - prior(le)))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// Mean, ms.
    pub fn mean_ms(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count * 1e3
        } else {
            0.0
        }
    }

    /// Upper bound of the bucket holding quantile `q`, ms (histogram resolution).
    pub fn quantile_bound_ms(&self, q: f64) -> f64 {
        let want = q * self.count;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map_or(f64::INFINITY, |(le, _)| le * 1e3)
    }
}

/// Scrapes `/metrics` and returns the histogram of `transport` (`websocket` or `sse`).
pub async fn push_latency(admin: SocketAddr, transport: &str) -> Result<Hist> {
    let (status, body) = crate::procs::http_get(admin, "/metrics").await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    let text = String::from_utf8(body)?;
    let want = format!("transport=\"{transport}\"");
    let mut h = Hist::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(METRIC) else {
            continue;
        };
        if !rest.contains(&want) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next().context("metric value")?.parse()?;
        if rest.starts_with("_sum") {
            h.sum = value;
        } else if rest.starts_with("_count") {
            h.count = value;
        } else if rest.starts_with("_bucket") {
            let le = rest
                .split("le=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .context("le label")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            h.buckets.push((le, value));
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(h)
}
