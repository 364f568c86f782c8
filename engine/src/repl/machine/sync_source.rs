//! Choosing where to fetch the oplog from, as mongod 8 does: a requested `replSetSyncFrom` target first; the
//! primary when chaining is off; otherwise, among the healthy data-bearing members ahead of us and no more than
//! `maxSyncSourceLagSecs` behind the primary, the lowest-ping one, except that the primary wins when its ping
//! is within `changeSyncSourceThresholdMillis` of that one's; the primary when nobody is ahead. A source is kept
//! while it stays usable, unless it is a secondary with no sync source of its own and nothing newer than ours
//! (it will not get new entries in time: typically one chosen before the set had a primary).

use super::io::Action;
use super::members::MemberView;
use super::{LeaderPhase, ReplMachine};
use crate::repl::error::ReplError;
use crate::repl::state::MemberState;

/// A member more than this far behind the primary is not a sync source (`maxSyncSourceLagSecs`).
pub const MAX_SYNC_SOURCE_LAG_SECS: u32 = 30;

/// Members whose pings differ by at most this are in one data centre, where the primary is the preferred
/// sync source (`changeSyncSourceThresholdMillis`, mongod's default).
pub const CHANGE_SYNC_SOURCE_THRESHOLD_MS: i64 = 5;

/// How long a sync source found behind us is passed over while another member is ahead.
const SOURCE_BEHIND_DENYLIST_MS: i64 = 1_000;

impl ReplMachine {
    /// `replSetSyncFrom {host}`: prefer `host` as sync source. Returns the previous sync source's host.
    pub fn sync_from(&mut self, now_ms: i64, host: &str) -> Result<(Vec<Action>, Option<String>), ReplError> {
        self.now_ms = self.now_ms.max(now_ms);
        if self.state.is_primary() {
            return Err(ReplError::not_secondary("primaries don't sync"));
        }
        let member = self
            .config
            .find_member_by_host(host)
            .ok_or_else(|| ReplError::node_not_found(format!("could not find member \"{host}\" in the replica set")))?;
        if Some(member.id) == self.self_id {
            return Err(ReplError::new(2, "BadValue", "I cannot sync from myself"));
        }
        if member.arbiter_only {
            return Err(ReplError::new(
                2,
                "BadValue",
                format!("cannot sync from \"{host}\" because it is an arbiter"),
            ));
        }
        let previous = self
            .sync_source
            .and_then(|id| self.config.find_member_by_id(id))
            .map(|m| m.host.clone());
        self.requested_sync_source = Some(member.id);
        if self.sync_source != Some(member.id) && self.is_usable_source(member.id, false) {
            self.change_sync_source(Some(member.id));
        }
        Ok((std::mem::take(&mut self.outbox), previous))
    }

    /// Keeps the current source while usable, otherwise picks a new one (or none).
    pub(super) fn reevaluate_sync_source(&mut self) {
        if !self.needs_sync_source() {
            self.change_sync_source(None);
            return;
        }
        if let Some(requested) = self.requested_sync_source
            && self.is_usable_source(requested, false)
        {
            self.change_sync_source(Some(requested));
            return;
        }
        if let Some(current) = self.sync_source
            && self.is_usable_source(current, true)
        {
            return;
        }
        let choice = self.choose_sync_source();
        self.change_sync_source(choice);
    }

    /// Our sync source has nothing newer than our newest entry. If another member is ahead of us, the source is
    /// passed over for a moment and another chosen, as mongod denylists a source that is behind; otherwise it
    /// is kept (nobody has more to give). Without this, two members behind a new primary could sync from
    /// each other for ever (found by `faultline sim --seed 172 --steps 40`).
    pub(super) fn on_sync_source_behind(&mut self, from: i32) {
        if self.sync_source != Some(from) {
            return;
        }
        let someone_ahead = self.members.values().any(|view| {
            view.id != from && self.is_usable_source(view.id, false) && self.is_newer(&view.applied, &self.applied)
        });
        if !someone_ahead {
            return;
        }
        self.behind_sources
            .insert(from, self.now_ms + SOURCE_BEHIND_DENYLIST_MS);
        let host = self
            .config
            .find_member_by_id(from)
            .map(|m| m.host.clone())
            .unwrap_or_default();
        self.outbox.push(Action::Log(format!(
            "sync source {host} is not ahead of us while another member is: passing it over for {SOURCE_BEHIND_DENYLIST_MS} ms"
        )));
        self.reevaluate_sync_source();
    }

    fn needs_sync_source(&self) -> bool {
        match self.state {
            MemberState::Secondary | MemberState::Recovering | MemberState::Startup2 | MemberState::Rollback => true,
            MemberState::Primary => matches!(self.leader_phase, Some(LeaderPhase::CatchingUp { .. })),
            _ => false,
        }
    }

    fn choose_sync_source(&self) -> Option<i32> {
        if !self.config.settings.chaining_allowed {
            return self.primary_id.filter(|id| self.is_usable_source(*id, false));
        }
        let ahead: Vec<_> = self
            .members
            .values()
            .filter(|view| self.is_usable_source(view.id, false) && self.is_newer(&view.applied, &self.applied))
            .collect();
        let ping = |view: &MemberView| view.ping_ms.unwrap_or(i64::MAX);
        let closest = ahead.iter().min_by_key(|view| (ping(view), view.id));
        let primary = ahead.iter().find(|view| Some(view.id) == self.primary_id);
        let choice = match (closest, primary) {
            (Some(closest), Some(primary))
                if ping(primary).saturating_sub(ping(closest)) <= CHANGE_SYNC_SOURCE_THRESHOLD_MS =>
            {
                Some(primary.id)
            }
            (closest, _) => closest.map(|view| view.id),
        };
        // Nobody ahead (an idle set): tail the primary, where the next entry is written, instead of waiting
        // for a heartbeat to show it ahead (mongod's periodic no-op writes keep its primary ahead to the same
        // effect). Never a secondary at our position: two could pick each other and wait for ever.
        choice.or_else(|| {
            self.primary_id
                .filter(|id| Some(*id) != self.self_id && self.is_usable_source(*id, false))
        })
    }

    /// Healthy, data-bearing, PRIMARY or SECONDARY, not too far behind the primary, and (when `keeping`)
    /// not behind us; with chaining off only the primary qualifies.
    fn is_usable_source(&self, id: i32, keeping: bool) -> bool {
        let Some(view) = self.members.get(&id) else {
            return false;
        };
        let data_bearing = self
            .config
            .find_member_by_id(id)
            .is_some_and(|member| member.is_data_bearing());
        let serving = matches!(view.state, MemberState::Primary | MemberState::Secondary);
        if !view.healthy || !data_bearing || !serving || self.is_denylisted(id) {
            return false;
        }
        // A source we already fetch from is kept even when its last heartbeat shows it behind us (that view is
        // up to a heartbeat old, while our own position moves with every batch we fetch from it), unless it is
        // a secondary that fetches from nobody and has nothing newer than ours: it will not get new entries in
        // time, so mongod leaves it (`shouldChangeSyncSource`).
        if keeping
            && view.state == MemberState::Secondary
            && view.sync_source_id.is_none()
            && !self.is_newer(&view.applied, &self.applied)
        {
            return false;
        }
        // A member still claiming PRIMARY while we know of another (newer) primary has been deposed: it may
        // be cut off from the set, and its oplog holds entries that will roll back.
        if view.state == MemberState::Primary && self.primary_id.is_some_and(|primary| primary != id) {
            return false;
        }
        if !self.config.settings.chaining_allowed && self.requested_sync_source != Some(id) {
            return self.primary_id == Some(id);
        }
        let primary_applied = self
            .primary_id
            .and_then(|primary| self.members.get(&primary))
            .map(|p| p.applied);
        primary_applied
            .is_none_or(|primary| view.applied.ts.time.saturating_add(MAX_SYNC_SOURCE_LAG_SECS) >= primary.ts.time)
    }

    fn change_sync_source(&mut self, member_id: Option<i32>) {
        if self.sync_source != member_id {
            self.sync_source = member_id;
            self.outbox.push(Action::SyncSourceChanged { member_id });
        }
    }
}
