//! Background samplers: replication lag from `replSetGetStatus` to `lag.jsonl`, and the progress line.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use faultline_reports::{LagSample, LagWriter};
use futures_util::future::join_all;
use tokio::sync::watch;

use super::worker::Counters;
use crate::cluster::{status_state, wire};

/// How often lag is sampled.
const LAG_PERIOD: Duration = Duration::from_millis(500);
/// How long one member may take to answer `replSetGetStatus`.
const STATUS_TIMEOUT: Duration = Duration::from_millis(300);

/// Samples lag until `stop`, into `lag.jsonl` at `path`: every member of every replica set (one for a replica
/// set, each shard's and the config servers' for a sharded cluster) is asked for its status at once, and one
/// [`LagSample`] per member is written from its set's answers ([`lag_samples`]).
pub async fn sample_lag(sets: Vec<Vec<(String, u16)>>, path: &Path, started: Instant, mut stop: watch::Receiver<bool>) {
    let mut writer = match LagWriter::create(path) {
        Ok(writer) => writer,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    loop {
        let asks = sets
            .iter()
            .flatten()
            .map(|(_, port)| wire::command_ok(*port, doc! {"replSetGetStatus": 1}, STATUS_TIMEOUT));
        let mut replies = join_all(asks).await.into_iter().map(Result::ok);
        let time = started.elapsed().as_nanos() as u64;
        let mut samples = Vec::new();
        for members in &sets {
            let set_replies: Vec<Option<Document>> = replies.by_ref().take(members.len()).collect();
            samples.extend(lag_samples(time, members, &set_replies));
        }
        if let Err(e) = writer.write(&samples) {
            tracing::warn!("{e}");
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_PERIOD) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One sample per member from the members' own `replSetGetStatus` replies (`None`: unreachable), in the
/// order of `members`. When a member answers as primary, its view gives every member's state and lag (the
/// primary's last optime minus the member's, in ms) and names the primary; a member the primary cannot
/// reach is `DOWN` there. Without a primary, each member that answered gives its own state (lag and primary
/// unknown) and the others are `DOWN`.
pub fn lag_samples(time: u64, members: &[(String, u16)], replies: &[Option<Document>]) -> Vec<LagSample> {
    let sample = |member: &str, state: &str, lag_ms: Option<f64>, primary: Option<String>| LagSample {
        time,
        member: member.to_string(),
        state: state.to_string(),
        lag_ms,
        primary,
    };
    let primary_view = replies
        .iter()
        .flatten()
        .find(|status| status.get_i32("myState").ok() == Some(1));
    if let Some(status) = primary_view {
        let entries: Vec<&Document> = status
            .get_array("members")
            .map(|list| list.iter().filter_map(Bson::as_document).collect())
            .unwrap_or_default();
        let primary = entries.iter().find(|m| m.get_i32("state").ok() == Some(1));
        let primary_ms = primary.and_then(|m| optime_ms(m));
        let primary_name = primary.map(|m| member_name(m, members));
        return entries
            .iter()
            .map(|m| {
                let lag = match (primary_ms, optime_ms(m)) {
                    (Some(p), Some(o)) => Some((p - o) as f64),
                    _ => None,
                };
                sample(&member_name(m, members), status_state(m), lag, primary_name.clone())
            })
            .collect();
    }
    members
        .iter()
        .zip(replies)
        .map(|((name, port), reply)| {
            let own = reply.as_ref().and_then(|status| {
                status
                    .get_array("members")
                    .ok()?
                    .iter()
                    .filter_map(Bson::as_document)
                    .find(|m| m.get_bool("self").unwrap_or(false) || names_port(m, *port))
            });
            let state = match (reply, own) {
                (None, _) => "DOWN",
                (Some(_), Some(entry)) => status_state(entry),
                (Some(_), None) => "UNKNOWN",
            };
            sample(name, state, None, None)
        })
        .collect()
}

/// A member's optime as wall-clock ms, from a `replSetGetStatus` entry.
fn optime_ms(member: &Document) -> Option<i64> {
    match member.get("optimeDate") {
        Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
        _ => None,
    }
}

/// Whether a `replSetGetStatus` entry's `host:port` is on `port`.
fn names_port(member: &Document, port: u16) -> bool {
    member
        .get_str("name")
        .is_ok_and(|host| host.ends_with(&format!(":{port}")))
}

/// The harness's name of the member a `replSetGetStatus` entry describes (its `host:port` when unknown).
fn member_name(member: &Document, members: &[(String, u16)]) -> String {
    let host = member.get_str("name").unwrap_or("?");
    members
        .iter()
        .find(|(_, port)| names_port(member, *port))
        .map_or(host.to_string(), |(name, _)| name.clone())
}

/// How often the progress line samples the faults in force between two lines.
const FAULT_SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// The faults in force at some moment since the last progress line. Sampling only at the line's own tick
/// missed them: with the default 5 s nemesis interval and a line every 5 s, each tick landed just before a
/// start took effect or just after a heal, so the line said `faults: none` while a partition was installed.
#[derive(Debug, Default)]
struct FaultsSeen(Vec<String>);

impl FaultsSeen {
    /// Adds the faults in force now.
    fn observe(&mut self, active: &[String]) {
        for fault in active {
            if !self.0.contains(fault) {
                self.0.push(fault.clone());
            }
        }
    }

    /// The text for the line (every fault seen since the last one, and those in force now), then starts
    /// the next period with the faults still in force.
    fn take(&mut self, active: &[String]) -> String {
        self.observe(active);
        let text = if self.0.is_empty() {
            "none".to_string()
        } else {
            self.0.join(", ")
        };
        self.0 = active.to_vec();
        text
    }
}

/// Prints progress until `stop`: a rewritten line on a terminal, a plain line every 5 s otherwise. The
/// faults shown are those in force at any moment since the previous line.
pub async fn progress(
    counters: Arc<Counters>,
    faults: Arc<Mutex<Vec<String>>>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let terminal = std::io::stderr().is_terminal();
    let period = if terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (0u64, Instant::now());
    let mut seen = FaultsSeen::default();
    let mut next_line = Instant::now() + period;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FAULT_SAMPLE_PERIOD.min(period)) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let active = faults.lock().map(|f| f.clone()).unwrap_or_default();
        if Instant::now() < next_line {
            seen.observe(&active);
            continue;
        }
        next_line += period;
        let (ok, fail, info) = counters.read();
        let done = ok + fail + info;
        let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
        last = (done, Instant::now());
        let line = format!(
            "{:6.1}s  {:7.0} ops/s  ok {ok}  fail {fail}  info {info}  faults: {}",
            started.elapsed().as_secs_f64(),
            rate,
            seen.take(&active)
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<(String, u16)> {
        vec![("n1".into(), 4001), ("n2".into(), 4002), ("n3".into(), 4003)]
    }

    fn entry(port: u16, state: i32, state_str: &str, optime_ms: i64) -> Document {
        doc! {"name": format!("127.0.0.1:{port}"), "state": state, "stateStr": state_str,
        "optimeDate": bson::DateTime::from_millis(optime_ms)}
    }

    #[test]
    fn the_primarys_view_gives_every_members_lag_and_names_the_primary_and_down_members() {
        let primary = doc! {"myState": 1, "members": [
            entry(4001, 1, "PRIMARY", 10_000),
            entry(4002, 2, "SECONDARY", 9_500),
            {"name": "127.0.0.1:4003", "state": 8, "stateStr": "(not reachable/healthy)"},
        ]};
        let samples = lag_samples(7, &members(), &[Some(primary), Some(doc! {"myState": 2}), None]);
        let shown: Vec<(&str, &str, Option<f64>, Option<&str>)> = samples
            .iter()
            .map(|s| (s.member.as_str(), s.state.as_str(), s.lag_ms, s.primary.as_deref()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("n1", "PRIMARY", Some(0.0), Some("n1")),
                ("n2", "SECONDARY", Some(500.0), Some("n1")),
                ("n3", "DOWN", None, Some("n1")),
            ]
        );
        assert!(samples.iter().all(|s| s.time == 7));
    }

    #[test]
    fn without_a_primary_each_member_gives_its_own_state_and_the_unreachable_are_down() {
        let secondary = doc! {"myState": 2, "members": [
            entry(4001, 8, "(not reachable/healthy)", 0),
            {"name": "127.0.0.1:4002", "state": 2, "stateStr": "SECONDARY", "self": true},
        ]};
        let samples = lag_samples(1, &members(), &[None, Some(secondary), None]);
        let shown: Vec<(&str, &str)> = samples.iter().map(|s| (s.member.as_str(), s.state.as_str())).collect();
        assert_eq!(shown, vec![("n1", "DOWN"), ("n2", "SECONDARY"), ("n3", "DOWN")]);
        assert!(samples.iter().all(|s| s.lag_ms.is_none() && s.primary.is_none()));
    }

    fn faults(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_fault_in_force_between_two_lines_is_shown() {
        let mut seen = FaultsSeen::default();
        seen.observe(&faults(&[]));
        seen.observe(&faults(&["partition isolate-primary"]));
        assert_eq!(
            seen.take(&faults(&[])),
            "partition isolate-primary",
            "installed after one line and healed just before the next"
        );
        assert_eq!(seen.take(&faults(&[])), "none", "nothing since");
    }

    #[test]
    fn faults_still_in_force_carry_over_and_are_listed_once() {
        let mut seen = FaultsSeen::default();
        seen.observe(&faults(&["kill"]));
        assert_eq!(
            seen.take(&faults(&["kill", "partition bridge"])),
            "kill, partition bridge"
        );
        assert_eq!(seen.take(&faults(&["partition bridge"])), "kill, partition bridge");
        assert_eq!(seen.take(&faults(&["partition bridge"])), "partition bridge");
    }
}
