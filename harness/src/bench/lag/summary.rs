//! From raw times to results: per-member distributions, the `lag.jsonl` series and the write history.

use faultline_checker::history::{History, Op, OpType, Process};
use faultline_reports::LagSample;
use serde::Serialize;
use serde_json::json;

use super::load::{Completion, WriteLog};
use super::status::StatusSample;
use crate::bench::oplog::ArrivalLog;
use crate::bench::stats::{Latencies, Percentiles, signed_percentiles};

/// The width of the time buckets of the lag plot.
pub const BUCKET_NS: u64 = 100_000_000;

/// One member being watched.
pub struct Watched {
    pub name: String,
    /// Its state when the load started (PRIMARY or SECONDARY).
    pub initial_state: String,
    pub arrivals: ArrivalLog,
}

/// Everything measured about one member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberLag {
    pub member: String,
    pub initial_state: String,
    /// Writes seen in this member's oplog.
    pub writes_seen: u64,
    /// Acknowledged writes never seen in this member's oplog.
    pub acked_not_seen: u64,
    /// Entry seen in this member's oplog − write issued by the client (ms).
    pub visible_after_issue: Percentiles,
    /// Entry seen in this member's oplog − write acknowledged to the client (ms; negative: before the ack).
    pub visible_after_ack: Percentiles,
    /// Entry seen in this member's oplog − entry first seen in any member's oplog (ms): replication alone.
    pub behind_first_member: Percentiles,
    /// `rs.status()`: primary optimeDate − member optimeDate (ms; whole seconds), while SECONDARY.
    pub status_optime_date_lag: Percentiles,
    /// `rs.status()`: primary lastAppliedWallTime − member lastAppliedWallTime (ms), while SECONDARY.
    pub status_wall_time_lag: Percentiles,
    /// `rs.status()`: the members it fetched the oplog from while SECONDARY, in the order first seen (a
    /// secondary syncing from another secondary adds that hop to its lag).
    pub sync_sources: Vec<String>,
}

/// The earliest arrival of each write over all members.
fn first_arrivals(writes: &WriteLog, watched: &[Watched]) -> Vec<Option<u64>> {
    (0..writes.capacity())
        .map(|id| watched.iter().filter_map(|w| w.arrivals.arrival(id)).min())
        .collect()
}

/// Per-member results.
pub fn member_lags(writes: &WriteLog, watched: &[Watched], status: &[StatusSample]) -> Vec<MemberLag> {
    let first = first_arrivals(writes, watched);
    let load_began = load_reached_all(writes, watched);
    watched
        .iter()
        .map(|w| {
            let mut after_issue = Latencies::new();
            let mut behind_first = Latencies::new();
            let mut after_ack = Vec::new();
            let (mut seen, mut missing) = (0, 0);
            for (id, first) in first.iter().enumerate() {
                let acked = match writes.completion(id) {
                    Some(Completion::Acked(t)) => Some(t),
                    _ => None,
                };
                let Some(arrival) = w.arrivals.arrival(id) else {
                    missing += u64::from(acked.is_some());
                    continue;
                };
                seen += 1;
                if let Some(issued) = writes.issued(id) {
                    after_issue.record_ns(arrival.saturating_sub(issued));
                }
                if let Some(first) = first {
                    behind_first.record_ns(arrival.saturating_sub(*first));
                }
                if let Some(acked) = acked {
                    after_ack.push((arrival as f64 - acked as f64) / 1e6);
                }
            }
            let (optime_date, wall_time) = status_lags(status, &w.name, load_began);
            let mut sync_sources: Vec<String> = Vec::new();
            for source in status
                .iter()
                .filter(|s| s.member == w.name && s.state == "SECONDARY")
                .filter_map(|s| s.sync_source.as_ref())
            {
                if !sync_sources.contains(source) {
                    sync_sources.push(source.clone());
                }
            }
            MemberLag {
                member: w.name.clone(),
                initial_state: w.initial_state.clone(),
                writes_seen: seen,
                acked_not_seen: missing,
                visible_after_issue: after_issue.summary(),
                visible_after_ack: signed_percentiles(&mut after_ack),
                behind_first_member: behind_first.summary(),
                status_optime_date_lag: optime_date,
                status_wall_time_lag: wall_time,
                sync_sources,
            }
        })
        .collect()
}

/// When the first benchmark write had reached every member that saw it (ns since the start; its issue when
/// none did).
fn load_reached_all(writes: &WriteLog, watched: &[Watched]) -> Option<u64> {
    watched
        .iter()
        .filter_map(|w| w.arrivals.arrival(0))
        .max()
        .or_else(|| writes.issued(0))
}

/// `member`'s lags as `rs.status()` gave them while it was SECONDARY, from the moment the first benchmark
/// write had reached every member (`load_began`, ns since the start) on. Samples asked for before that are
/// left out: the members' newest entry is then the set-up's, and a lag taken from entries' wall times is the
/// gap between the set-up's last entry and the first write (as long as the set-up's tail took), not how far
/// behind the member was.
fn status_lags(status: &[StatusSample], member: &str, load_began: Option<u64>) -> (Percentiles, Percentiles) {
    let (mut optime_date, mut wall_time) = (Latencies::new(), Latencies::new());
    let during_load = |s: &&StatusSample| load_began.is_some_and(|began| s.time >= began);
    for s in status
        .iter()
        .filter(|s| s.member == member && s.state == "SECONDARY")
        .filter(during_load)
    {
        // A lag of 0 is recorded as the lowest bucket (1 µs).
        if let Some(ms) = s.optime_date_lag_ms {
            optime_date.record_ms(ms);
        }
        if let Some(ms) = s.wall_time_lag_ms {
            wall_time.record_ms(ms);
        }
    }
    (optime_date.summary(), wall_time.summary())
}

/// The worst replication lag (arrival − first arrival on any member) per member per [`BUCKET_NS`] of issue
/// time: `(member, [(ns, ms)])`.
pub fn bucketed_lag(writes: &WriteLog, watched: &[Watched]) -> Vec<(String, Vec<(u64, f64)>)> {
    let first = first_arrivals(writes, watched);
    watched
        .iter()
        .map(|w| {
            let mut buckets: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
            for (id, first) in first.iter().enumerate() {
                let (Some(issued), Some(arrival), Some(first)) = (writes.issued(id), w.arrivals.arrival(id), first)
                else {
                    continue;
                };
                let lag_ms = arrival.saturating_sub(*first) as f64 / 1e6;
                let slot = buckets.entry(issued / BUCKET_NS).or_insert(0.0);
                *slot = slot.max(lag_ms);
            }
            let points = buckets.into_iter().map(|(b, ms)| ((b + 1) * BUCKET_NS, ms)).collect();
            (w.name.clone(), points)
        })
        .collect()
}

/// `lag.jsonl` rows: the bucketed oplog lag, with each member's state and the primary from the status sample
/// nearest before (the member's initial state before the first sample).
pub fn lag_rows(writes: &WriteLog, watched: &[Watched], status: &[StatusSample]) -> Vec<LagSample> {
    let mut rows = Vec::new();
    for ((member, points), w) in bucketed_lag(writes, watched).into_iter().zip(watched) {
        let mine: Vec<&StatusSample> = status.iter().filter(|s| s.member == member).collect();
        for (time, lag_ms) in points {
            let known = mine.iter().rev().find(|s| s.time <= time);
            rows.push(LagSample {
                time,
                member: member.clone(),
                state: known.map_or_else(|| w.initial_state.clone(), |s| s.state.clone()),
                lag_ms: Some(lag_ms),
                primary: known.and_then(|s| s.primary.clone()),
            });
        }
    }
    rows.sort_by_key(|r| r.time);
    rows
}

/// The run's history: one `write` per issued write (process = the write's id, value = the id; `ok` when
/// acknowledged, `info` when it failed or timed out, no completion if it never ended), merged by time with the
/// nemesis events, and re-indexed.
pub fn history(writes: &WriteLog, nemesis: &History) -> History {
    let mut events: Vec<Op> = nemesis.ops.clone();
    for id in 0..writes.capacity() {
        let Some(issued) = writes.issued(id) else { continue };
        let process = Process::Client(id as u64);
        events.push(Op::new(0, issued, OpType::Invoke, process.clone(), "write", json!(id)));
        let (op_type, time) = match writes.completion(id) {
            Some(Completion::Acked(t)) => (OpType::Ok, t),
            Some(Completion::Failed(t)) => (OpType::Info, t),
            None => continue,
        };
        events.push(Op::new(0, time.max(issued), op_type, process, "write", json!(id)));
    }
    // Stable: an invoke stays before its completion when both have the same time.
    events.sort_by_key(|op| op.time);
    for (index, op) in events.iter_mut().enumerate() {
        op.index = index as u64;
    }
    History::from_ops(events)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::*;

    /// Two writes; member n1 sees both, n2 only the first, later.
    fn fixture() -> (WriteLog, Vec<Watched>) {
        let started = Instant::now();
        let writes = WriteLog::new(started, 2);
        writes.test_set(0, 1_000_000, Some(Completion::Acked(3_000_000)));
        writes.test_set(1, 2_000_000, Some(Completion::Failed(9_000_000)));
        let n1 = ArrivalLog::new(started, 2);
        n1.arrivals[0].store(2_000_000 + 1, Ordering::Relaxed);
        n1.arrivals[1].store(2_500_000 + 1, Ordering::Relaxed);
        let n2 = ArrivalLog::new(started, 2);
        n2.arrivals[0].store(6_000_000 + 1, Ordering::Relaxed);
        let watched = vec![
            Watched {
                name: "n1".into(),
                initial_state: "PRIMARY".into(),
                arrivals: n1,
            },
            Watched {
                name: "n2".into(),
                initial_state: "SECONDARY".into(),
                arrivals: n2,
            },
        ];
        (writes, watched)
    }

    #[test]
    fn member_lags_measure_from_issue_ack_and_first_sighting() {
        let (writes, watched) = fixture();
        let lags = member_lags(&writes, &watched, &[]);
        let n2 = &lags[1];
        assert_eq!((n2.writes_seen, n2.acked_not_seen), (1, 0));
        assert!((n2.visible_after_issue.max_ms - 5.0).abs() < 0.01, "{n2:?}");
        assert!((n2.visible_after_ack.max_ms - 3.0).abs() < 1e-9, "{n2:?}");
        assert!((n2.behind_first_member.max_ms - 4.0).abs() < 0.01, "{n2:?}");
        let n1 = &lags[0];
        assert_eq!(n1.writes_seen, 2);
        assert!(
            (n1.visible_after_ack.p50_ms + 1.0).abs() < 1e-9,
            "seen before the ack: {n1:?}"
        );
    }

    /// rs.status() lags count from the moment the first benchmark write reached every member (n2's sighting,
    /// at 6 ms): a sample asked for before then measures the gap between the set-up's last entry and the
    /// first write, not the load's lag.
    #[test]
    fn status_lags_count_from_the_first_write() {
        let (writes, watched) = fixture();
        let sample = |time, wall_ms| StatusSample {
            time,
            member: "n2".into(),
            state: "SECONDARY".into(),
            primary: Some("n1".into()),
            optime_date_lag_ms: Some(0.0),
            wall_time_lag_ms: Some(wall_ms),
            sync_source: None,
        };
        let status = vec![
            sample(500_000, 31.0),
            sample(5_000_000, 27.0),
            sample(6_000_000, 2.0),
            sample(7_000_000, 1.0),
        ];
        let n2 = &member_lags(&writes, &watched, &status)[1];
        assert!(
            (n2.status_wall_time_lag.max_ms - 2.0).abs() < 0.01,
            "the set-up's sample is left out: {n2:?}"
        );
        assert_eq!(n2.status_wall_time_lag.count, 2);
    }

    /// The sources a secondary fetched from while SECONDARY, each once, in the order first seen.
    #[test]
    fn member_lags_list_each_sync_source_once_in_order() {
        let (writes, watched) = fixture();
        let sample = |time, state: &str, source: Option<&str>| StatusSample {
            time,
            member: "n2".into(),
            state: state.into(),
            primary: Some("n1".into()),
            optime_date_lag_ms: None,
            wall_time_lag_ms: None,
            sync_source: source.map(String::from),
        };
        let status = vec![
            sample(0, "STARTUP2", Some("n3")),
            sample(1, "SECONDARY", Some("n3")),
            sample(2, "SECONDARY", None),
            sample(3, "SECONDARY", Some("n1")),
            sample(4, "SECONDARY", Some("n3")),
        ];
        let lags = member_lags(&writes, &watched, &status);
        assert_eq!(lags[1].sync_sources, ["n3", "n1"]);
        assert!(lags[0].sync_sources.is_empty());
    }

    #[test]
    fn lag_rows_take_states_from_status_and_history_pairs_writes() {
        let (writes, watched) = fixture();
        let status = vec![StatusSample {
            time: 0,
            member: "n2".into(),
            state: "RECOVERING".into(),
            primary: Some("n1".into()),
            optime_date_lag_ms: Some(0.0),
            wall_time_lag_ms: None,
            sync_source: None,
        }];
        let rows = lag_rows(&writes, &watched, &status);
        assert_eq!(rows.len(), 2);
        let n2 = rows.iter().find(|r| r.member == "n2").expect("n2 row");
        assert_eq!(n2.state, "RECOVERING");
        assert_eq!(n2.lag_ms, Some(4.0), "behind n1's sighting");
        let history = history(&writes, &History::default());
        let types: Vec<OpType> = history.ops.iter().map(|o| o.op_type).collect();
        assert_eq!(types, vec![OpType::Invoke, OpType::Invoke, OpType::Ok, OpType::Info]);
        assert!(
            history
                .ops
                .windows(2)
                .all(|w| w[0].time <= w[1].time && w[0].index + 1 == w[1].index)
        );
    }
}
