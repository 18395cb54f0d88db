//! Latency histograms: an HdrHistogram of nanoseconds that a core records into and
//! publishes (cloned) with its periodic snapshot, and that the control thread merges
//! across cores.
//!
//! Recording never allocates (the histogram's range is fixed at creation: 1 ns to 60 s,
//! 3 significant digits; larger values saturate at the top). This module must not lock
//! or do I/O.

use hdrhistogram::Histogram;

/// Highest trackable latency, ns (values above are recorded as this).
pub const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

/// Percentiles of a histogram, in nanoseconds (0 when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // Constant bounds (1 ns .. 60 s, 3 significant digits), valid for HdrHistogram.
        LatencyHistogram(
            Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("constant, valid bounds"),
        )
    }

    /// Records one latency (saturating at [`MAX_TRACKED_NS`]; 0 counts as 1 ns).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both have the same bounds, so `add` cannot fail; ignore it if it ever does.
        let _ = self.0.add(&other.0);
    }

    /// Empties it (keeping its memory).
    pub fn reset(&mut self) {
        self.0.reset();
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0..=1), ns.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q.clamp(0.0, 1.0))
        }
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.0.len(),
            p50_ns: self.quantile(0.5),
            p90_ns: self.quantile(0.9),
            p99_ns: self.quantile(0.99),
            p999_ns: self.quantile(0.999),
            max_ns: if self.0.is_empty() { 0 } else { self.0.max() },
        }
    }

    /// The underlying histogram (for exporting buckets).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }
}

/// Published with a core's snapshot: the summary, computed on the reading side.
impl serde::Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.summary(), LatencySummary::default());
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((499_000..=501_000).contains(&s.p50_ns), "{s:?}");
        assert!((989_000..=991_000).contains(&s.p99_ns), "{s:?}");
        assert!((999_000..=1_001_000).contains(&s.max_ns), "{s:?}");
    }

    #[test]
    fn merging_adds_counts_and_extremes_saturate() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(100);
        b.record(0);
        b.record(u64::MAX);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        let s = a.summary();
        assert!(s.max_ns >= MAX_TRACKED_NS - MAX_TRACKED_NS / 1000, "{s:?}");
        assert!(a.quantile(0.0) <= 1, "{}", a.quantile(0.0));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["count"], 3);
    }
}
