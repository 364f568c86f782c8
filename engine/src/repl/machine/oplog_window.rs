//! The oplog window: how far the capped oplog may be truncated, and what a member does when its sync
//! source's oplog no longer reaches back to its newest entry ("too stale").
//!
//! ```text
//! truncation limit = min(commit point, applied)                 every member: never past the majority
//!                    min(applied of healthy members catching up) primary: still within our window
//!
//! SyncSourceProbed{from, too_stale: true}  → denylist `from` for 1 min → another usable source? fetch from it
//!                                           → none left: RECOVERING "error RS102 too stale to catch up"
//! SyncSourceProbed{from, too_stale: false} → was too stale: "No longer too stale" → SECONDARY
//! ```
//!
//! mongod keeps every entry after the majority commit point, whatever the size. This machine also keeps, on a
//! primary, what a healthy member that is still catching up has not applied (if it still can: its newest entry
//! is in our oplog); members that are down (no heartbeat for `heartbeatTimeoutSecs`) do not hold it back.

use super::ReplMachine;
use super::io::Action;
use crate::repl::optime::OpTime;
use crate::repl::state::MemberState;

/// How long a sync source whose oplog starts after our newest entry is not tried again (mongod's
/// `kTooStaleDenylistDuration`).
pub const TOO_STALE_DENYLIST_MS: i64 = 60_000;

/// What a member that fell off its sync sources' oplogs reports (`infoMessage`, and the others'
/// `lastHeartbeatMessage` for it): mongod's RS102.
pub const TOO_STALE_MESSAGE: &str = "error RS102 too stale to catch up";

impl ReplMachine {
    /// The oldest oplog entry that must be kept: entries with an older timestamp may be truncated, this one
    /// and newer ones may not. `oldest` is our oldest entry: a member whose newest entry is already older
    /// cannot catch up from us and does not hold truncation back. A null result keeps everything.
    pub fn oplog_truncation_limit(&self, oldest: OpTime) -> OpTime {
        let ts = |o: &OpTime| (o.ts.time, o.ts.increment);
        let mut limit = if ts(&self.commit_point) <= ts(&self.applied) {
            self.commit_point
        } else {
            self.applied
        };
        if !self.state.is_primary() {
            return limit;
        }
        for view in self.members.values() {
            let data_bearing = self
                .config
                .find_member_by_id(view.id)
                .is_some_and(|member| member.is_data_bearing());
            let syncing = matches!(
                view.state,
                MemberState::Secondary | MemberState::Recovering | MemberState::Startup2 | MemberState::Rollback
            );
            let catching_up = !view.applied.is_null() && ts(&view.applied) >= ts(&oldest);
            if view.healthy && data_bearing && syncing && catching_up && ts(&view.applied) < ts(&limit) {
                limit = view.applied;
            }
        }
        limit
    }

    /// The shell looked at member `from`'s oplog: whether it starts after our newest entry.
    pub(super) fn on_sync_source_probed(&mut self, from: i32, too_stale: bool) {
        let host = self
            .config
            .find_member_by_id(from)
            .map(|m| m.host.clone())
            .unwrap_or_default();
        if !too_stale {
            self.stale_sources.remove(&from);
            if self.too_stale && self.sync_source == Some(from) {
                self.too_stale = false;
                self.outbox
                    .push(Action::Log(format!("No longer too stale. Able to sync from {host}")));
                if self.state == MemberState::Recovering {
                    self.set_state(MemberState::Secondary);
                }
            }
            return;
        }
        let until = self.now_ms + TOO_STALE_DENYLIST_MS;
        self.stale_sources.insert(from, until);
        self.reevaluate_sync_source();
        let follower = matches!(self.state, MemberState::Secondary | MemberState::Recovering);
        if self.sync_source.is_some() || self.too_stale || !follower {
            return;
        }
        self.too_stale = true;
        self.outbox.push(Action::Log(format!(
            "too stale to catch up -- entering maintenance mode (our newest optime {:?} is older than the oldest \
             entry of every sync source). See http://dochub.mongodb.org/core/resyncingaverystalereplicasetmember",
            self.applied
        )));
        self.set_state(MemberState::Recovering);
    }

    /// Whether `id` was found too stale to sync from within the last minute.
    pub(super) fn is_denylisted(&self, id: i32) -> bool {
        let until = |denylist: &std::collections::BTreeMap<i32, i64>| {
            denylist.get(&id).is_some_and(|until| *until > self.now_ms)
        };
        until(&self.stale_sources) || until(&self.behind_sources)
    }

    /// Our own heartbeat message (`infoMessage`): why we are not SECONDARY, if we know.
    pub fn info_message(&self) -> &str {
        if self.too_stale { TOO_STALE_MESSAGE } else { "" }
    }
}
