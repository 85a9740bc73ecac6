//! Summary statistics over samples.

/// Nearest-rank percentile of sorted samples (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 / p99 / max of a set of samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Minimum.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Summary {
    /// Summarizes `samples` (any order).
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        Summary {
            n: s.len(),
            min: s.first().copied().unwrap_or(0.0),
            p50: percentile(&s, 50.0),
            p99: percentile(&s, 99.0),
            max: s.last().copied().unwrap_or(0.0),
        }
    }
}
