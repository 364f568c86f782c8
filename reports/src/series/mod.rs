//! Data derived from a run's inputs, ready to plot: pure functions, no drawing and no I/O.
//!
//! - [`chunks`]: chunks per shard over time (sharded runs).
//! - [`latency`]: per-operation latency, latency quantiles and throughput over time.
//! - [`members`]: replication lag per member and member states (who was primary) over time.
//! - [`staleness`]: how stale each read was, its distribution, and P(fresh | time since the write).

pub mod chunks;
pub mod latency;
pub mod members;
pub mod staleness;

/// A named line of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend text.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series with no points yet.
    pub fn new(name: impl Into<String>) -> Series {
        Series {
            name: name.into(),
            points: Vec::new(),
        }
    }
}

/// ns → seconds.
pub fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// ns → milliseconds.
pub fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A bucket width (seconds) from the 1-2-5 sequence giving about `buckets` buckets over `span_s`.
pub fn nice_window(span_s: f64, buckets: f64) -> f64 {
    let raw = span_s / buckets.max(1.0);
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let decade = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|w| *w >= raw)
        .unwrap_or(10.0 * decade)
}

/// The value at quantile `q` (0..=1) of sorted `values` (nearest rank); `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1).min(sorted.len() - 1)).copied()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn windows_follow_one_two_five() {
        assert_eq!(nice_window(60.0, 60.0), 1.0);
        assert_eq!(nice_window(100.0, 60.0), 2.0);
        assert!((nice_window(0.003, 60.0) - 5e-5).abs() < 1e-12);
        assert_eq!(nice_window(0.0, 60.0), 1.0);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    proptest! {
        #[test]
        fn window_covers_span_in_at_most_the_asked_buckets(span in 1e-6f64..1e6, n in 1f64..200.0) {
            let w = nice_window(span, n);
            prop_assert!(w > 0.0);
            prop_assert!(span / w <= n.max(1.0) + 1e-9);
        }
    }
}
