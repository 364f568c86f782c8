//! Background samplers: replication lag from `replSetGetStatus` to `lag.jsonl`, and the progress line.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{Bson, doc};
use serde_json::json;
use tokio::sync::watch;

use super::worker::Counters;
use crate::cluster::wire;

/// How often lag is sampled.
const LAG_PERIOD: Duration = Duration::from_millis(500);

/// Samples lag until `stop`: for each member, the primary's last optime minus the member's, in ms.
pub async fn sample_lag(members: Vec<(String, u16)>, path: &Path, started: Instant, mut stop: watch::Receiver<bool>) {
    let Ok(file) = std::fs::File::create(path) else {
        tracing::warn!("cannot create {}", path.display());
        return;
    };
    let mut out = std::io::BufWriter::new(file);
    loop {
        for line in lag_sample(&members, started).await {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        tokio::select! {
            _ = tokio::time::sleep(LAG_PERIOD) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn lag_sample(members: &[(String, u16)], started: Instant) -> Vec<serde_json::Value> {
    for (source, port) in members {
        let Ok(status) = wire::command_ok(*port, doc! {"replSetGetStatus": 1}, Duration::from_millis(300)).await else {
            continue;
        };
        if status.get_i32("myState").unwrap_or(0) != 1 {
            continue;
        }
        let time = started.elapsed().as_nanos() as u64;
        let Ok(entries) = status.get_array("members") else {
            return vec![];
        };
        let optime_ms = |m: &bson::Document| match m.get("optimeDate") {
            Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
            _ => None,
        };
        let docs: Vec<&bson::Document> = entries.iter().filter_map(Bson::as_document).collect();
        let primary_ms = docs
            .iter()
            .find(|m| m.get_i32("state").ok() == Some(1))
            .and_then(|m| optime_ms(m));
        return docs
            .iter()
            .map(|m| {
                let host = m.get_str("name").unwrap_or("?");
                let name = members
                    .iter()
                    .find(|(_, p)| host.ends_with(&format!(":{p}")))
                    .map_or(host.to_string(), |(n, _)| n.clone());
                let lag = match (primary_ms, optime_ms(m)) {
                    (Some(p), Some(o)) => json!(p - o),
                    _ => serde_json::Value::Null,
                };
                json!({"time": time, "member": name, "state": state_name(m),
                       "lag_ms": lag, "source": source})
            })
            .collect();
    }
    Vec::new()
}

/// A member's state name from a `replSetGetStatus` entry: mongod's `stateStr`, except that an unreachable
/// member (state 8, shown as "(not reachable/healthy)") is named DOWN.
pub fn state_name(member: &bson::Document) -> &str {
    match member.get_i32("state") {
        Ok(8) => "DOWN",
        _ => member.get_str("stateStr").unwrap_or("UNKNOWN"),
    }
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
