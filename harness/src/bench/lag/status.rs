//! What `rs.status()` says: `replSetGetStatus` sampled on the primary every [`PERIOD`]; each member's lag is
//! the primary's entry minus the member's entry, both for `optimeDate` (the optime's timestamp: whole seconds,
//! as in MongoDB, so it reads 0 or a multiple of 1000 ms) and for `lastAppliedWallTime` (the wall clock of the
//! member's last applied write, in ms). The primary learns the members' positions from heartbeats and
//! position updates, so these figures also include that reporting delay.

use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use tokio::sync::watch;

use crate::cluster::wire;

/// How often the status is sampled.
pub const PERIOD: Duration = Duration::from_millis(100);

/// One member's entry in one status sample.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSample {
    /// When the status was asked for, ns since the start of the run.
    pub time: u64,
    /// The member's short name (`n1`, ...).
    pub member: String,
    /// Its `stateStr`.
    pub state: String,
    /// The member reported as primary.
    pub primary: Option<String>,
    /// Primary `optimeDate` − member `optimeDate`, ms.
    pub optime_date_lag_ms: Option<f64>,
    /// Primary `lastAppliedWallTime` − member `lastAppliedWallTime`, ms.
    pub wall_time_lag_ms: Option<f64>,
    /// The member it fetches the oplog from (`syncSourceHost`), when it has one.
    pub sync_source: Option<String>,
}

/// Samples until `stop`; `members` are `(name, port)`.
pub async fn sample(
    members: Vec<(String, u16)>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<StatusSample> {
    let mut samples = Vec::new();
    loop {
        // The time the status was asked for: the primary's view is at least that recent.
        let time = started.elapsed().as_nanos() as u64;
        if let Some(status) = primary_status(&members).await {
            samples.extend(parse_status(&status, &members, time));
        }
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.wait_for(|s| *s) => return samples,
        }
    }
}

async fn primary_status(members: &[(String, u16)]) -> Option<Document> {
    for (_, port) in members {
        let Ok(status) = wire::command_ok(*port, doc! {"replSetGetStatus": 1}, Duration::from_millis(300)).await else {
            continue;
        };
        if status.get_i32("myState").ok() == Some(1) {
            return Some(status);
        }
    }
    None
}

/// A date field in ms since the epoch; the epoch itself means "not known yet" (a member the primary has not
/// heard from reports a null optime).
fn date_ms(entry: &Document, field: &str) -> Option<i64> {
    match entry.get(field) {
        Some(Bson::DateTime(d)) if d.timestamp_millis() > 0 => Some(d.timestamp_millis()),
        _ => None,
    }
}

/// The member name of a status entry's `host:port`.
fn member_name(host: &str, members: &[(String, u16)]) -> String {
    members
        .iter()
        .find(|(_, port)| host.ends_with(&format!(":{port}")))
        .map_or_else(|| host.to_string(), |(name, _)| name.clone())
}

/// The samples of one `replSetGetStatus` reply taken on the primary.
pub fn parse_status(status: &Document, members: &[(String, u16)], time: u64) -> Vec<StatusSample> {
    let Ok(entries) = status.get_array("members") else {
        return Vec::new();
    };
    let docs: Vec<&Document> = entries.iter().filter_map(Bson::as_document).collect();
    let primary = docs.iter().find(|m| m.get_i32("state").ok() == Some(1));
    let primary_name = primary
        .and_then(|p| p.get_str("name").ok())
        .map(|h| member_name(h, members));
    let lag = |entry: &Document, field: &str| {
        let ahead = date_ms(primary?, field)?;
        Some((ahead - date_ms(entry, field)?) as f64)
    };
    docs.iter()
        .filter(|m| m.get_i32("state").ok() != Some(7)) // arbiters hold no data
        .map(|m| StatusSample {
            time,
            member: member_name(m.get_str("name").unwrap_or("?"), members),
            state: crate::cluster::status_state(m).to_string(),
            primary: primary_name.clone(),
            optime_date_lag_ms: lag(m, "optimeDate"),
            wall_time_lag_ms: lag(m, "lastAppliedWallTime"),
            sync_source: m
                .get_str("syncSourceHost")
                .ok()
                .filter(|host| !host.is_empty())
                .map(|host| member_name(host, members)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_are_primary_minus_member_for_both_clocks() {
        let date = bson::DateTime::from_millis;
        let status = doc! {"myState": 1, "members": [
            {"name": "127.0.0.1:4001", "state": 1, "stateStr": "PRIMARY",
             "optimeDate": date(10_000), "lastAppliedWallTime": date(10_250)},
            {"name": "127.0.0.1:4002", "state": 2, "stateStr": "SECONDARY",
             "optimeDate": date(9_000), "lastAppliedWallTime": date(10_240), "syncSourceHost": "127.0.0.1:4001"},
            {"name": "127.0.0.1:4003", "state": 2, "stateStr": "SECONDARY",
             "optimeDate": date(0), "lastAppliedWallTime": date(0)},
        ]};
        let members = vec![
            ("n1".to_string(), 4001),
            ("n2".to_string(), 4002),
            ("n3".to_string(), 4003),
        ];
        let samples = parse_status(&status, &members, 5);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].wall_time_lag_ms, Some(0.0));
        assert_eq!(samples[1].member, "n2");
        assert_eq!(samples[1].optime_date_lag_ms, Some(1000.0));
        assert_eq!(samples[1].wall_time_lag_ms, Some(10.0));
        assert_eq!(samples[1].primary.as_deref(), Some("n1"));
        assert_eq!(samples[1].sync_source.as_deref(), Some("n1"));
        assert_eq!(samples[0].sync_source, None, "the primary fetches from nobody");
        assert_eq!(
            samples[2].wall_time_lag_ms, None,
            "an unknown (epoch) position is no lag"
        );
        assert_eq!(samples[2].optime_date_lag_ms, None);
    }

    #[test]
    fn a_reply_without_members_gives_no_samples() {
        assert!(parse_status(&doc! {"ok": 1}, &[], 0).is_empty());
    }
}
