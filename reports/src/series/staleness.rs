//! How stale each read was, per serving member, and the probability that a read is fresh as a function of
//! the time since the latest acknowledged write (in the spirit of probabilistically bounded staleness).
//!
//! Reads are classified by the checker's [`faultline_checker::stale::classify`] (a read is stale when an
//! acknowledged write overwrote its value before the read began); reads it cannot classify (values written
//! twice, impossible values, non-register workloads) are left out.

use std::collections::{BTreeMap, HashMap};

use faultline_checker::history::{Conventions, Outcome, PairedHistory};
use faultline_checker::stale::{ReadClass, classify};

use super::{Series, millis};

/// One classified read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadStaleness {
    /// The member that served it (`"unknown"` when the history does not say).
    pub node: String,
    /// 0 for a fresh read, else ms from the overwriting write's acknowledgement to the read's invocation.
    pub staleness_ms: f64,
    /// Whether it saw a value that may have been current.
    pub fresh: bool,
    /// ms from the latest acknowledged write of its key (completed before the read began) to the read's
    /// invocation; `None` when no write had completed yet.
    pub since_write_ms: Option<f64>,
}

/// Classifies every `ok` read that the stale-read checker can classify.
pub fn read_staleness(paired: &PairedHistory, conventions: &Conventions) -> Vec<ReadStaleness> {
    let acks = acknowledged_writes(paired);
    classify(paired, conventions)
        .into_iter()
        .filter_map(|(id, class)| {
            let o = paired.operations.get(id)?;
            let staleness_ms = match class {
                ReadClass::Fresh => 0.0,
                ReadClass::Stale { behind_ns, .. } => millis(behind_ns),
                ReadClass::Impossible | ReadClass::Unclassified => return None,
            };
            let since_write_ms = acks.get(&key_of(o)).and_then(|done| {
                let before = done.partition_point(|t| *t < o.call_time);
                before.checked_sub(1).map(|i| millis(o.call_time - done[i]))
            });
            Some(ReadStaleness {
                node: o.node.unwrap_or("unknown").to_string(),
                staleness_ms,
                fresh: matches!(class, ReadClass::Fresh),
                since_write_ms,
            })
        })
        .collect()
}

fn key_of(o: &faultline_checker::history::Operation) -> String {
    o.key.map_or_else(String::new, |k| k.value().to_string())
}

/// Completion times of acknowledged writes and CASes, per key, sorted.
fn acknowledged_writes(paired: &PairedHistory) -> HashMap<String, Vec<u64>> {
    let mut acks: HashMap<String, Vec<u64>> = HashMap::new();
    for o in &paired.operations {
        if let (Outcome::Ok, "write" | "cas", Some(done)) = (o.outcome, o.f, o.return_time) {
            acks.entry(key_of(o)).or_default().push(done);
        }
    }
    for times in acks.values_mut() {
        times.sort_unstable();
    }
    acks
}

fn by_node(reads: &[ReadStaleness]) -> BTreeMap<&str, Vec<&ReadStaleness>> {
    let mut nodes: BTreeMap<&str, Vec<&ReadStaleness>> = BTreeMap::new();
    for r in reads {
        nodes.entry(&r.node).or_default().push(r);
    }
    nodes
}

/// Per member, the cumulative distribution of staleness: `(ms, % of its reads at most that stale)`.
pub fn staleness_cdf(reads: &[ReadStaleness]) -> Vec<Series> {
    by_node(reads)
        .into_iter()
        .map(|(node, reads)| {
            let mut values: Vec<f64> = reads.iter().map(|r| r.staleness_ms).collect();
            values.sort_by(f64::total_cmp);
            let n = values.len() as f64;
            let stale = values.iter().filter(|v| **v > 0.0).count();
            let mut s = Series::new(format!("{node} ({} reads, {stale} stale)", values.len()));
            for (i, v) in values.iter().enumerate() {
                let fraction = 100.0 * (i + 1) as f64 / n;
                match s.points.last_mut() {
                    Some(last) if last.0 == *v => last.1 = fraction,
                    _ => s.points.push((*v, fraction)),
                }
            }
            s
        })
        .collect()
}

/// Bin edges (ms) for the time since the latest write.
const SINCE_WRITE_EDGES_MS: [f64; 17] = [
    0.0,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1e3,
    2e3,
    5e3,
    1e4,
    2e4,
    5e4,
    f64::INFINITY,
];

/// Where a bin is drawn on a log axis: its geometric middle (the first bin at 0.5 ms, the last at 1.4× its
/// lower edge).
fn bin_middle(i: usize) -> f64 {
    match (SINCE_WRITE_EDGES_MS[i], SINCE_WRITE_EDGES_MS[i + 1]) {
        (lo, _) if lo <= 0.0 => 0.5,
        (lo, hi) if hi.is_infinite() => lo * 1.4,
        (lo, hi) => (lo * hi).sqrt(),
    }
}

/// Per member, `(ms since the latest write, % of reads that were fresh)` over the bins that hold reads.
pub fn freshness_curve(reads: &[ReadStaleness]) -> Vec<Series> {
    let bins = SINCE_WRITE_EDGES_MS.len() - 1;
    by_node(reads)
        .into_iter()
        .filter_map(|(node, reads)| {
            let mut counts = vec![(0u64, 0u64); bins];
            for r in &reads {
                let Some(t) = r.since_write_ms else { continue };
                let bin = SINCE_WRITE_EDGES_MS
                    .partition_point(|e| *e <= t)
                    .saturating_sub(1)
                    .min(bins - 1);
                counts[bin].0 += 1;
                counts[bin].1 += u64::from(r.fresh);
            }
            let total: u64 = counts.iter().map(|c| c.0).sum();
            let mut s = Series::new(format!("{node} ({total} reads)"));
            s.points = (0..bins)
                .filter(|b| counts[*b].0 > 0)
                .map(|b| (bin_middle(b), 100.0 * counts[b].1 as f64 / counts[b].0 as f64))
                .collect();
            (!s.points.is_empty()).then_some(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use faultline_checker::history::{History, Op, OpType, Process, pair};
    use serde_json::{Value, json};

    use super::*;

    fn op(p: u64, t: OpType, f: &str, v: Value, ms: u64, node: Option<&str>) -> Op {
        let mut o = Op::new(0, ms * 1_000_000, t, Process::Client(p), f, v);
        o.node = node.map(Into::into);
        o
    }

    fn reads() -> Vec<ReadStaleness> {
        use OpType::{Invoke, Ok};
        let h = History::from_ops(vec![
            op(1, Invoke, "write", json!(1), 0, None),
            op(1, Ok, "write", json!(1), 1, None),
            op(1, Invoke, "write", json!(2), 2, None),
            op(1, Ok, "write", json!(2), 3, None),
            op(2, Invoke, "read", Value::Null, 5, Some("n2")),
            op(2, Ok, "read", json!(1), 6, Some("n2")),
            op(3, Invoke, "read", Value::Null, 7, Some("n1")),
            op(3, Ok, "read", json!(2), 8, Some("n1")),
            op(3, Invoke, "read", Value::Null, 9, Some("n1")),
            op(3, Ok, "read", json!(7), 10, Some("n1")),
        ]);
        read_staleness(&pair(&h).expect("valid"), &Conventions::default())
    }

    #[test]
    fn classifies_reads_and_times_them_from_the_latest_write() {
        let r = reads();
        assert_eq!(r.len(), 2, "the impossible read is left out");
        assert_eq!((r[0].node.as_str(), r[0].fresh), ("n2", false));
        assert!((r[0].staleness_ms - 2.0).abs() < 1e-9);
        assert_eq!(r[0].since_write_ms, Some(2.0));
        assert_eq!((r[1].fresh, r[1].since_write_ms), (true, Some(4.0)));
    }

    #[test]
    fn cdf_and_freshness_per_member() {
        let r = reads();
        let cdf = staleness_cdf(&r);
        assert_eq!(cdf.len(), 2);
        assert_eq!(cdf[0].points, vec![(0.0, 100.0)]);
        assert_eq!(cdf[1].points, vec![(2.0, 100.0)]);
        assert!(cdf[1].name.starts_with("n2 (1 reads, 1 stale)"));
        let curve = freshness_curve(&r);
        assert_eq!(curve[0].points.len(), 1);
        assert_eq!(curve[0].points[0].1, 100.0);
        assert_eq!(curve[1].points[0].1, 0.0);
    }
}
