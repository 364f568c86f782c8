//! What commands ask the member before and after they run: may it take writes or serve reads, has a write
//! reached its write concern, has the majority commit point reached a read's cluster time. All of it reads
//! the role snapshot the driver publishes (and storage positions); none of it changes the member.

use bson::{Document, doc};

use super::{Member, RoleSnapshot, WriteConcern, WriteMode};
use crate::error::{Error, Result, code};
use crate::repl::{MemberState, OpTime};
use crate::storage::Storage;

impl Member {
    /// Runs `body` on the primary and returns its reply (an `ok: 0` reply as an error): how a secondary
    /// writes the output of an aggregation's `$out` or `$merge`, as MongoDB 5.0+ does. NotWritablePrimary
    /// (10107) when no primary is known.
    pub async fn run_on_primary(&self, body: &Document) -> Result<Document> {
        let Some(host) = self.role().primary_host() else {
            return Err(
                Error::new(code::NOT_WRITABLE_PRIMARY, "not primary and no primary is known")
                    .with_extra(doc! {"topologyVersion": self.topology_version()}),
            );
        };
        self.peers
            .command(&host, "write-through", body, std::time::Duration::from_secs(60))
            .await
    }

    /// Fails with NotWritablePrimary (10107) unless this member accepts writes to `db`.
    pub fn check_writable(&self, db: &str) -> Result<()> {
        if db == "local" || self.role().writable {
            return Ok(());
        }
        Err(Error::new(code::NOT_WRITABLE_PRIMARY, "not primary")
            .with_extra(doc! {"topologyVersion": self.topology_version()}))
    }

    /// Fails unless this member may serve reads: a primary always; others only when the client allows
    /// secondary reads, and never while in STARTUP2, RECOVERING or ROLLBACK.
    pub fn check_readable(&self, secondary_ok: bool) -> Result<()> {
        let state = self.role().state;
        if state.is_primary() {
            return Ok(());
        }
        if matches!(
            state,
            MemberState::Startup2 | MemberState::Recovering | MemberState::Rollback
        ) {
            return Err(Error::new(
                code::NOT_PRIMARY_OR_SECONDARY,
                "node is not in primary or recovering state",
            )
            .with_extra(doc! {"topologyVersion": self.topology_version()}));
        }
        if secondary_ok {
            return Ok(());
        }
        Err(
            Error::new(code::NOT_PRIMARY_NO_SECONDARY_OK, "not primary and secondaryOk=false")
                .with_extra(doc! {"topologyVersion": self.topology_version()}),
        )
    }

    /// The newest optime known to be majority-committed.
    pub fn majority_optime(&self) -> OpTime {
        majority_optime(&self.role(), &self.storage)
    }

    /// Waits until the majority commit point this member knows satisfies `reached` (majority reads and
    /// `afterClusterTime` on any member). Before initiation the commit point is what is durable here.
    pub async fn wait_committed(&self, reached: impl Fn(OpTime) -> bool) -> Result<()> {
        if self.role().config.is_none() {
            let _ = self.storage.flush().await;
        }
        let mut roles = self.role.subscribe();
        let mut positions = self.storage.watch_positions();
        loop {
            if reached(self.majority_optime()) {
                return Ok(());
            }
            tokio::select! {
                biased;
                changed = roles.changed() => if changed.is_err() { break },
                changed = positions.changed() => if changed.is_err() { break },
            }
        }
        Err(Error::new(code::SHUTDOWN_IN_PROGRESS, "shutting down"))
    }

    /// Waits until `optime` (written while this member was primary in the current term) satisfies the
    /// write concern. Returns a `writeConcernError` document when it cannot (the write itself stays).
    pub async fn wait_for_write_concern(&self, optime: OpTime, wc: &WriteConcern) -> Option<Document> {
        let role = self.role();
        // Before initiation there is nothing to wait for: the write is as replicated as it can be.
        let config = role.config.clone()?;
        let data_members = config.members.iter().filter(|m| m.is_data_bearing()).count();
        match &wc.w {
            WriteMode::Nodes(n) if *n as usize > data_members => {
                return Some(doc! {"code": 100, "codeName": "UnsatisfiableWriteConcern",
                "errmsg": "Not enough data-bearing nodes", "errInfo": {"writeConcern": wc.to_document()}});
            }
            WriteMode::Tag(tag) => {
                return Some(doc! {"code": 79, "codeName": "UnknownReplWriteConcern",
                "errmsg": format!("unrecognized getLastError mode: {tag}")});
            }
            _ => {}
        }
        // Journal now rather than at the next interval when durability is part of the answer.
        let journal_majority = config.write_concern_majority_journal_default && wc.w == WriteMode::Majority;
        if (wc.j || journal_majority) && self.storage.positions().last_durable < optime {
            let _ = self.storage.flush().await;
        }
        let term = role.term;
        let mut positions = self.storage.watch_positions();
        let mut roles = self.role.subscribe();
        let wait = async {
            loop {
                let role = roles.borrow_and_update().clone();
                if role.term != term || !role.state.is_primary() {
                    // Interrupted by a state change (MongoDB's InterruptedDueToReplStateChange): the write may
                    // or may not survive, and drivers treat the code as a state change.
                    return Some(doc! {"code": 11602, "codeName": "InterruptedDueToReplStateChange",
                    "errmsg": "the primary stepped down while waiting for replication"});
                }
                if self.write_concern_satisfied(optime, wc, &role) {
                    tracing::trace!(
                        target: "write_path",
                        ts = crate::storage::ts_to_u64(optime.ts),
                        "waiter.satisfied"
                    );
                    return None;
                }
                // Only the local fsync is outside the role snapshot (which moves with the commit point and every
                // member's position): watch storage only while that is still awaited.
                let local_fsync_pending = wc.j && positions.borrow_and_update().last_durable < optime;
                if local_fsync_pending {
                    tokio::select! {
                        biased;
                        changed = roles.changed() => if changed.is_err() { break },
                        changed = positions.changed() => if changed.is_err() { break },
                    }
                } else if roles.changed().await.is_err() {
                    break;
                }
            }
            Some(doc! {"code": 91, "codeName": "ShutdownInProgress", "errmsg": "shutting down"})
        };
        match wc.wtimeout {
            Some(limit) => tokio::time::timeout(limit, wait).await.unwrap_or_else(|_| {
                Some(doc! {"code": 64, "codeName": "WriteConcernTimeout",
                "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": true}})
            }),
            None => wait.await,
        }
    }

    fn write_concern_satisfied(&self, optime: OpTime, wc: &WriteConcern, role: &RoleSnapshot) -> bool {
        let local = self.storage.positions();
        if wc.j && local.last_durable < optime {
            return false;
        }
        match wc.w {
            WriteMode::Majority => role.commit_point >= optime,
            WriteMode::Nodes(n) if n <= 1 => true,
            WriteMode::Nodes(n) => match self.machine.lock() {
                Ok(slot) => slot.as_ref().is_some_and(|m| m.members_at(optime, wc.j) >= n as usize),
                Err(_) => false,
            },
            WriteMode::Tag(_) => false,
        }
    }
}

/// The newest optime known to be majority-committed: the commit point, or before initiation what is durable.
pub(super) fn majority_optime(role: &RoleSnapshot, storage: &Storage) -> OpTime {
    if role.config.is_none() {
        storage.positions().last_durable
    } else {
        role.commit_point
    }
}
