//! Latency distributions: an hdrhistogram of microseconds summarised as p50/p90/p99/p99.9/max in ms, exact
//! percentiles of signed values (which hdrhistogram cannot hold), and plain-text tables.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest value a histogram holds: one hour in µs (larger values are clamped to it).
const MAX_MICROS: u64 = 3_600_000_000;

/// A distribution's summary, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// `p50 p90 p99 p99.9 max` as table cells (ms, 2 decimals), or dashes when empty.
    pub fn cells(&self) -> Vec<String> {
        let values = [self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms];
        if self.count == 0 {
            return values.iter().map(|_| "-".to_string()).collect();
        }
        values.iter().map(|v| format!("{v:.2}")).collect()
    }
}

/// The header cells matching [`Percentiles::cells`].
pub const PERCENTILE_HEADERS: [&str; 5] = ["p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"];

/// A histogram of non-negative durations with µs resolution (3 significant digits).
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Always `Some`: the bounds are constants hdrhistogram accepts (kept optional so nothing can panic).
    histogram: Option<Histogram<u64>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Latencies {
        Latencies {
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3).ok(),
        }
    }

    /// Records a value in nanoseconds (rounded to µs; 0 is recorded as 1 µs, the lowest bucket).
    pub fn record_ns(&mut self, ns: u64) {
        if let Some(h) = self.histogram.as_mut() {
            h.saturating_record((ns / 1000).clamp(1, MAX_MICROS));
        }
    }

    /// Records a value in milliseconds (negative and non-finite values are ignored).
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            self.record_ns((ms * 1e6) as u64);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        if let (Some(mine), Some(theirs)) = (self.histogram.as_mut(), other.histogram.as_ref()) {
            let _ = mine.add(theirs);
        }
    }

    /// The summary (all zero when empty).
    pub fn summary(&self) -> Percentiles {
        let Some(h) = self.histogram.as_ref().filter(|h| !h.is_empty()) else {
            return Percentiles::default();
        };
        let ms = |micros: u64| micros as f64 / 1000.0;
        let at = |q: f64| ms(h.value_at_quantile(q));
        Percentiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(h.max()),
        }
    }
}

/// Exact percentiles of signed values (ms), nearest-rank; for differences that may be negative.
pub fn signed_percentiles(values: &mut [f64]) -> Percentiles {
    values.sort_by(f64::total_cmp);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some(&max_ms) = finite.last() else {
        return Percentiles::default();
    };
    let rank = |q: f64| {
        let index = ((q * finite.len() as f64).ceil() as usize).clamp(1, finite.len()) - 1;
        finite[index]
    };
    Percentiles {
        count: finite.len() as u64,
        mean_ms: finite.iter().sum::<f64>() / finite.len() as f64,
        p50_ms: rank(0.5),
        p90_ms: rank(0.9),
        p99_ms: rank(0.99),
        p999_ms: rank(0.999),
        max_ms,
    }
}

/// Formats rows as a left-aligned first column and right-aligned other columns, separated by two spaces.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .take(columns)
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(header)];
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_ordered_and_in_milliseconds() {
        let mut latencies = Latencies::new();
        for ms in 1..=1000 {
            latencies.record_ms(f64::from(ms));
        }
        let s = latencies.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 1.5, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert!(s.p50_ms <= s.p90_ms && s.p90_ms <= s.p99_ms && s.p99_ms <= s.p999_ms && s.p999_ms <= s.max_ms);
    }

    #[test]
    fn sub_millisecond_values_keep_microsecond_resolution() {
        let mut latencies = Latencies::new();
        latencies.record_ns(250_000);
        latencies.record_ns(0);
        let s = latencies.summary();
        assert!((s.max_ms - 0.25).abs() < 0.001, "{s:?}");
        assert!(s.p50_ms > 0.0 && s.p50_ms < 0.01, "{s:?}");
    }

    #[test]
    fn empty_and_merged_histograms() {
        let mut a = Latencies::new();
        assert_eq!(a.summary(), Percentiles::default());
        assert_eq!(a.summary().cells()[0], "-");
        let mut b = Latencies::new();
        b.record_ms(3.0);
        a.record_ms(-1.0);
        a.record_ms(f64::NAN);
        a.merge(&b);
        assert_eq!(a.summary().count, 1);
    }

    #[test]
    fn signed_percentiles_take_negative_values() {
        let mut values = vec![-2.0, 5.0, 1.0, 3.0, f64::NAN];
        let s = signed_percentiles(&mut values);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 1.0);
        assert_eq!(s.max_ms, 5.0);
        assert!((s.mean_ms - 1.75).abs() < 1e-9);
        assert_eq!(signed_percentiles(&mut []).count, 0);
    }

    #[test]
    fn tables_align_columns() {
        let header = vec!["member".to_string(), "p50 ms".to_string()];
        let rows = vec![
            vec!["n2".to_string(), "1.25".to_string()],
            vec!["n3 (x)".into(), "12.50".into()],
        ];
        let text = table(&header, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "member  p50 ms");
        assert_eq!(lines[1], "n2        1.25");
        assert_eq!(lines[2], "n3 (x)   12.50");
    }
}
