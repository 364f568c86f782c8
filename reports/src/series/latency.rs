//! Latency per operation, latency quantiles and throughput over time, from the paired history.

use faultline_checker::history::{History, Outcome, PairedHistory};

use super::{Series, millis, nice_window, quantile, seconds};

/// One completed client operation.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPoint {
    /// Invocation time, s since the start.
    pub start_s: f64,
    /// Completion time, s since the start.
    pub end_s: f64,
    /// Completion minus invocation, ms.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its function.
    pub f: String,
}

/// Every client operation that has a completion event (`info` included when its `info` event exists).
pub fn latency_points(history: &History, paired: &PairedHistory) -> Vec<LatencyPoint> {
    paired
        .operations
        .iter()
        .filter_map(|o| {
            let done = o
                .return_time
                .or_else(|| o.completion.and_then(|c| history.ops.get(c)).map(|e| e.time))?;
            Some(LatencyPoint {
                start_s: seconds(o.call_time),
                end_s: seconds(done),
                latency_ms: millis(done.saturating_sub(o.call_time)),
                outcome: o.outcome,
                f: o.f.to_string(),
            })
        })
        .collect()
}

/// The outcome's legend name.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// The bucket width used for quantiles and throughput over `[0, span_s]`.
pub fn window_s(span_s: f64) -> f64 {
    nice_window(span_s, 60.0)
}

fn bucket(t: f64, window: f64) -> usize {
    (t / window).floor().max(0.0) as usize
}

/// p50, p90, p99 and max latency (ms) of `ok` operations per window, keyed by completion time.
pub fn latency_quantiles(points: &[LatencyPoint], window: f64) -> Vec<Series> {
    let mut buckets: Vec<Vec<f64>> = Vec::new();
    for p in points.iter().filter(|p| p.outcome == Outcome::Ok) {
        let b = bucket(p.end_s, window);
        if buckets.len() <= b {
            buckets.resize_with(b + 1, Vec::new);
        }
        buckets[b].push(p.latency_ms);
    }
    let mut series: Vec<Series> = ["p50", "p90", "p99", "max"].into_iter().map(Series::new).collect();
    for (b, values) in buckets.iter_mut().enumerate() {
        values.sort_by(f64::total_cmp);
        let mid = (b as f64 + 0.5) * window;
        for (s, q) in series.iter_mut().zip([0.5, 0.9, 0.99, 1.0]) {
            if let Some(v) = quantile(values, q) {
                s.points.push((mid, v));
            }
        }
    }
    series
}

/// Completions per second per window, one series per outcome (ok, fail, info), zero-filled.
pub fn throughput(points: &[LatencyPoint], window: f64) -> Vec<Series> {
    let span = points.iter().map(|p| p.end_s).fold(0.0, f64::max);
    let n = if points.is_empty() { 0 } else { bucket(span, window) + 1 };
    [Outcome::Ok, Outcome::Fail, Outcome::Info]
        .into_iter()
        .map(|outcome| {
            let mut counts = vec![0u64; n];
            for p in points.iter().filter(|p| p.outcome == outcome) {
                if let Some(c) = counts.get_mut(bucket(p.end_s, window)) {
                    *c += 1;
                }
            }
            let mut s = Series::new(outcome_name(outcome));
            s.points = counts
                .iter()
                .enumerate()
                .filter_map(|(b, c)| {
                    // The last window is cut short by the end of the run: divide by the time it covers.
                    let covered = (span - b as f64 * window).clamp(0.0, window);
                    (covered >= window * 0.2).then(|| ((b as f64 + 0.5) * window, *c as f64 / covered))
                })
                .collect();
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use faultline_checker::history::{Op, OpType, Process, pair};
    use serde_json::Value;

    use super::*;

    fn history() -> History {
        let mut ops = Vec::new();
        // Process 1: ten ok reads of 10 ms each, one every 100 ms; process 2: one fail and one info.
        for i in 0..10u64 {
            let t = i * 100_000_000;
            ops.push(Op::new(0, t, OpType::Invoke, Process::Client(1), "read", Value::Null));
            ops.push(Op::new(
                0,
                t + 10_000_000,
                OpType::Ok,
                Process::Client(1),
                "read",
                Value::Null,
            ));
        }
        ops.push(Op::new(
            0,
            0,
            OpType::Invoke,
            Process::Client(2),
            "write",
            Value::from(1),
        ));
        ops.push(Op::new(
            0,
            50_000_000,
            OpType::Fail,
            Process::Client(2),
            "write",
            Value::from(1),
        ));
        ops.push(Op::new(
            0,
            60_000_000,
            OpType::Invoke,
            Process::Client(2),
            "write",
            Value::from(2),
        ));
        ops.push(Op::new(
            0,
            560_000_000,
            OpType::Info,
            Process::Client(2),
            "write",
            Value::from(2),
        ));
        ops.sort_by_key(|o| o.time);
        History::from_ops(ops)
    }

    #[test]
    fn latency_points_include_info_with_its_completion() {
        let h = history();
        let points = latency_points(&h, &pair(&h).expect("valid"));
        assert_eq!(points.len(), 12);
        let info = points.iter().find(|p| p.outcome == Outcome::Info).expect("info point");
        assert!((info.latency_ms - 500.0).abs() < 1e-9);
        assert!(
            points
                .iter()
                .filter(|p| p.f == "read")
                .all(|p| (p.latency_ms - 10.0).abs() < 1e-9)
        );
    }

    #[test]
    fn throughput_counts_completions_per_second() {
        let h = history();
        let points = latency_points(&h, &pair(&h).expect("valid"));
        let series = throughput(&points, 0.5);
        let ok = &series[0];
        assert_eq!(ok.name, "ok");
        // Five ok reads complete in [0, 0.5) s; five in [0.5, 0.91] s, a window cut short by the end of the run.
        assert_eq!(ok.points.len(), 2);
        assert!((ok.points[0].1 - 10.0).abs() < 1e-9, "{:?}", ok.points);
        assert!((ok.points[1].1 - 5.0 / 0.41).abs() < 1e-6, "{:?}", ok.points);
        assert_eq!(series.len(), 3);
        assert!(
            (series[1].points[0].1 - 2.0).abs() < 1e-9,
            "one fail in the first window"
        );
    }

    #[test]
    fn quantiles_are_ordered() {
        let h = history();
        let points = latency_points(&h, &pair(&h).expect("valid"));
        let q = latency_quantiles(&points, 0.2);
        for i in 0..q[0].points.len() {
            let values: Vec<f64> = q.iter().map(|s| s.points[i].1).collect();
            assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        }
    }
}
