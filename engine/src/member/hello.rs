//! The member's presenter: what it says about itself. The replica-set fields of `hello`, `replSetGetStatus`,
//! the `$replData` it attaches to oplog batches, and the topology version (`{processId, counter}`) that
//! awaitable `hello` waits on. Read-only renderings of the role snapshot the driver publishes, storage
//! positions, and the machine status the driver hands in; the presenter owns the process id, the topology
//! counter the driver mirrors into it, and the start time behind `uptime`.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{RoleSnapshot, election_id, gate, not_yet_initialized};
use crate::error::Result;
use crate::repl::machine::ReplStatus;
use crate::repl::{MemberState, OpTime};
use crate::storage::Storage;

fn ts_date(optime: OpTime) -> bson::DateTime {
    bson::DateTime::from_millis(i64::from(optime.ts.time) * 1000)
}

fn wall_date(ms: i64) -> bson::DateTime {
    bson::DateTime::from_millis(ms)
}

/// Renders the member's status for clients and peers.
pub(super) struct Presenter {
    process_id: ObjectId,
    /// When the member started (`uptime`).
    started: Instant,
    /// `topologyVersion.counter`, mirrored from the machine by the driver (0 before the set is initiated).
    topology: watch::Sender<i64>,
    role: watch::Receiver<RoleSnapshot>,
    storage: Storage,
}

impl Presenter {
    pub(super) fn new(
        process_id: ObjectId,
        started: Instant,
        role: watch::Receiver<RoleSnapshot>,
        storage: Storage,
    ) -> Presenter {
        Presenter {
            process_id,
            started,
            topology: watch::channel(0).0,
            role,
            storage,
        }
    }

    pub(super) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Takes the machine's topology counter; monotonic: two refreshes racing must not move it back.
    pub(super) fn mirror_topology(&self, counter: i64) {
        self.topology.send_if_modified(|current| {
            let newer = counter > *current;
            *current = (*current).max(counter);
            newer
        });
    }

    /// `{processId, counter}`: drivers compare it to order topology changes.
    pub(super) fn topology_version(&self) -> Document {
        doc! {"processId": self.process_id, "counter": *self.topology.borrow()}
    }

    /// Waits until the topology changes past `counter` (awaitable hello), or the timeout passes.
    pub(super) async fn wait_topology_change(&self, process_id: ObjectId, counter: i64, timeout: Duration) {
        if process_id != self.process_id {
            return;
        }
        let mut rx = self.topology.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            let _ = rx.wait_for(|current| *current != counter).await;
        })
        .await;
    }

    /// The replica-set part of a `hello` reply.
    pub(super) fn hello_fields(&self, legacy: bool) -> Document {
        let role = self.role.borrow().clone();
        let primary_flag = if legacy { "ismaster" } else { "isWritablePrimary" };
        let mut out = Document::new();
        let Some(config) = role.config.as_ref() else {
            out.insert(primary_flag, false);
            out.insert("secondary", false);
            out.insert("isreplicaset", true);
            out.insert("info", "Does not have a valid replica set config");
            out.insert("topologyVersion", self.topology_version());
            return out;
        };
        let visible = || config.members.iter().filter(|m| !m.hidden);
        let hosts: Vec<Bson> = visible()
            .filter(|m| m.priority > 0.0 && !m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        let passives: Vec<Bson> = visible()
            .filter(|m| m.priority == 0.0 && !m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        let arbiters: Vec<Bson> = visible()
            .filter(|m| m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        out.insert("topologyVersion", self.topology_version());
        out.insert("hosts", hosts);
        if !passives.is_empty() {
            out.insert("passives", passives);
        }
        if !arbiters.is_empty() {
            out.insert("arbiters", arbiters);
        }
        out.insert("setName", &config.set_name);
        out.insert("setVersion", config.version);
        out.insert(primary_flag, role.writable);
        out.insert("secondary", role.state == MemberState::Secondary);
        if let Some(primary) = role.primary_host() {
            out.insert("primary", primary);
        }
        if let Some(me) = role.self_member() {
            out.insert("me", &me.host);
            if me.priority == 0.0 && !me.arbiter_only {
                out.insert("passive", true);
            }
            if me.hidden {
                out.insert("hidden", true);
            }
            if me.arbiter_only {
                out.insert("arbiterOnly", true);
            }
            if me.secondary_delay_secs > 0 {
                out.insert("secondaryDelaySecs", me.secondary_delay_secs);
            }
            if !me.tags.is_empty() {
                let tags: Document = me
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
                    .collect();
                out.insert("tags", tags);
            }
        }
        if role.writable {
            out.insert("electionId", election_id(role.term));
        }
        let positions = self.storage.positions();
        let majority = gate::majority_optime(&role, &self.storage);
        out.insert(
            "lastWrite",
            doc! {
                "opTime": positions.last_written.to_document(),
                "lastWriteDate": ts_date(positions.last_written),
                "majorityOpTime": majority.to_document(),
                "majorityWriteDate": ts_date(majority),
            },
        );
        out
    }

    /// `replSetGetStatus`, from the machine's `status` and the time it became writable (machine time `now_ms`).
    pub(super) fn status(&self, status: ReplStatus, writable_since_ms: Option<i64>, now_ms: i64) -> Result<Document> {
        let role = self.role.borrow().clone();
        let config = role.config.clone().ok_or_else(not_yet_initialized)?;
        let date_at =
            |ms: Option<i64>| ms.map(|m| bson::DateTime::from_millis(self.storage.clock().now_millis() - (now_ms - m)));
        let host = |id: Option<i32>| id.and_then(|id| role.host_of(id)).unwrap_or_default();
        let election_date = date_at(writable_since_ms);
        let mut members = Vec::new();
        for m in &status.members {
            let mut entry = doc! {
                "_id": m.id, "name": &m.host, "health": if m.healthy { 1.0 } else { 0.0 },
                "state": m.state.code(),
                // mongod's wording for a member it cannot reach (its state code is 8, DOWN).
                "stateStr": if !m.is_self && !m.healthy { "(not reachable/healthy)" } else { m.state.as_str() },
                "uptime": if m.is_self { self.uptime().as_secs() as i32 } else { 0 },
                "optime": m.applied.to_document(), "optimeDate": ts_date(m.applied),
                "optimeDurable": m.durable.to_document(), "optimeDurableDate": ts_date(m.durable),
                "lastAppliedWallTime": wall_date(m.applied_wall_ms), "lastDurableWallTime": wall_date(m.durable_wall_ms),
                "syncSourceHost": host(m.sync_source_id), "syncSourceId": m.sync_source_id.unwrap_or(-1),
                "infoMessage": if m.is_self { status.info_message.as_str() } else { "" }, "configVersion": m.config_version, "configTerm": m.config_term, "self": m.is_self,
                "lastHeartbeatMessage": &m.last_heartbeat_message,
            };
            if !m.is_self {
                if let Some(d) = date_at(m.last_heartbeat_ms) {
                    entry.insert("lastHeartbeat", d);
                }
                if let Some(d) = date_at(m.last_heartbeat_recv_ms) {
                    entry.insert("lastHeartbeatRecv", d);
                }
                if let Some(ping) = m.ping_ms {
                    entry.insert("pingMs", ping);
                }
            }
            if m.state.is_primary() {
                if let Some(optime) = m.election_optime {
                    entry.insert("electionTime", optime.ts);
                }
                if m.is_self
                    && let Some(date) = election_date
                {
                    entry.insert("electionDate", date);
                }
            }
            members.push(entry);
        }
        let commit = status.commit_point;
        let applied = status.applied;
        let durable = status.durable;
        Ok(doc! {
            "set": &status.set_name, "date": self.storage.clock().now(), "myState": status.state.code(), "term": status.term,
            "syncSourceHost": host(status.sync_source_id), "syncSourceId": status.sync_source_id.unwrap_or(-1),
            "heartbeatIntervalMillis": status.heartbeat_interval_millis,
            "majorityVoteCount": status.majority_vote_count as i32,
            "writeMajorityCount": status.write_majority_count as i32,
            "votingMembersCount": status.voting_members_count as i32,
            "writableVotingMembersCount": status.writable_voting_members_count as i32,
            "optimes": {
                "lastCommittedOpTime": commit.to_document(), "lastCommittedWallTime": ts_date(commit),
                "readConcernMajorityOpTime": commit.to_document(),
                "appliedOpTime": applied.to_document(), "durableOpTime": durable.to_document(),
                "lastAppliedWallTime": ts_date(applied), "lastDurableWallTime": ts_date(durable),
            },
            "members": members,
            "configVersion": config.version,
        })
    }
}

impl Presenter {
    /// The `$replData` a sync source sends with oplog batches: its term, commit point, newest entry, rollback
    /// id and primary.
    pub(super) fn repl_data(&self, rollback_id: i32) -> Document {
        let role = self.role.borrow().clone();
        let last = self.storage.positions().last_written;
        let mut data = doc! {"term": role.term, "lastOpCommitted": role.commit_point.to_document(),
        "lastOpApplied": last.to_document(), "rbid": rollback_id};
        if let Some(primary) = role.primary_id {
            data.insert("primaryIndex", primary);
        }
        if let Some(id) = role.self_id {
            data.insert("memberId", id);
        }
        data
    }
}
