//! `MemberView`: what this member knows about each other member, learned from heartbeats, votes and
//! `replSetUpdatePosition`, and the health rule (no heartbeat reply for `heartbeatTimeoutSecs` → DOWN).

use crate::repl::optime::OpTime;
use crate::repl::state::MemberState;

/// This member's knowledge of another member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The member's `_id`.
    pub id: i32,
    /// The state it last reported (UNKNOWN before any reply, DOWN once unreachable).
    pub state: MemberState,
    /// Whether it answered a heartbeat within `heartbeatTimeoutSecs`.
    pub healthy: bool,
    /// Its term, as last reported.
    pub term: i64,
    /// Its newest applied optime reported by any means (heartbeat or `replSetUpdatePosition`); moves only
    /// forward (see [`MemberView::adopt_heartbeat_position`]).
    pub applied: OpTime,
    /// The applied optime of its last heartbeat reply, exactly as it said (mongod's
    /// `getHeartbeatAppliedOpTime`): older than `applied` when it lost an unsynced tail in a crash.
    pub heartbeat_applied: OpTime,
    /// Its last durable optime, as last reported.
    pub durable: OpTime,
    /// Wall time of `applied`, ms since the epoch.
    pub applied_wall_ms: i64,
    /// Wall time of `durable`, ms since the epoch.
    pub durable_wall_ms: i64,
    /// When its last heartbeat reply arrived.
    pub last_heartbeat_ms: Option<i64>,
    /// When a heartbeat to it last failed (refused, timed out).
    pub last_heartbeat_failed_ms: Option<i64>,
    /// When its last heartbeat request arrived.
    pub last_heartbeat_recv_ms: Option<i64>,
    /// When we last had proof of a round trip with it (heartbeat reply, vote reply, advancing position).
    pub last_contact_ms: Option<i64>,
    /// Round-trip time of the last heartbeat.
    pub ping_ms: Option<i64>,
    /// Why the last heartbeat failed, empty after a success (`lastHeartbeatMessage`).
    pub last_heartbeat_message: String,
    /// Its sync source.
    pub sync_source_id: Option<i32>,
    /// The optime at which it was elected, when it is primary.
    pub election_optime: Option<OpTime>,
    /// Its config version and term.
    pub config_version: i32,
    /// Its config term.
    pub config_term: i64,
    /// Whether it reported that it could stand for election now.
    pub electable: bool,
    /// When the next heartbeat to it is due.
    pub next_heartbeat_ms: i64,
}

impl MemberView {
    /// A member we have not heard from yet.
    pub fn new(id: i32, now_ms: i64) -> Self {
        Self {
            id,
            state: MemberState::Unknown,
            healthy: false,
            term: -1,
            applied: OpTime::null(),
            heartbeat_applied: OpTime::null(),
            durable: OpTime::null(),
            applied_wall_ms: 0,
            durable_wall_ms: 0,
            last_heartbeat_ms: None,
            last_heartbeat_failed_ms: None,
            last_heartbeat_recv_ms: None,
            last_contact_ms: None,
            ping_ms: None,
            last_heartbeat_message: String::new(),
            sync_source_id: None,
            election_optime: None,
            config_version: -1,
            config_term: -1,
            electable: false,
            next_heartbeat_ms: now_ms,
        }
    }

    /// Marks the member DOWN when no heartbeat reply came for `timeout_ms` since the last one (or since
    /// `since_ms`, when there never was one). Returns true if it just went down.
    pub fn expire(&mut self, now_ms: i64, since_ms: i64, timeout_ms: i64) -> bool {
        let last = self.last_heartbeat_ms.unwrap_or(since_ms);
        if now_ms - last < timeout_ms || (!self.healthy && self.state == MemberState::Down) {
            return false;
        }
        let was_healthy = self.healthy;
        self.healthy = false;
        self.state = MemberState::Down;
        self.electable = false;
        was_healthy
    }

    /// What a primary in catch-up knows of it since `since_ms` (when it won): `None` while no heartbeat has
    /// answered or failed since then and it is not known to be down; `Some(None)` when it is down or its last
    /// heartbeat failed; `Some(Some(applied))` when it answered, with the optime that reply gave.
    pub fn heard_since(&self, since_ms: i64) -> Option<Option<crate::repl::optime::OpTime>> {
        let answered = self.last_heartbeat_ms.filter(|t| *t >= since_ms);
        let failed = self.last_heartbeat_failed_ms.filter(|t| *t >= since_ms);
        match (answered, failed) {
            (Some(ok), Some(bad)) if bad > ok => Some(None),
            (Some(_), _) => Some(Some(self.heartbeat_applied)),
            (None, Some(_)) => Some(None),
            (None, None) if !self.healthy => Some(None),
            (None, None) => None,
        }
    }

    /// Whether we had a round trip with it within `window_ms` of `now_ms`.
    pub fn contacted_within(&self, now_ms: i64, window_ms: i64) -> bool {
        self.last_contact_ms.is_some_and(|contact| now_ms - contact < window_ms)
    }

    /// Records a reported position; returns true if it moved either optime forward.
    pub fn advance_position(
        &mut self,
        applied: OpTime,
        applied_wall_ms: i64,
        durable: OpTime,
        durable_wall_ms: i64,
    ) -> bool {
        let mut advanced = false;
        if applied > self.applied {
            self.applied = applied;
            self.applied_wall_ms = applied_wall_ms;
            advanced = true;
        }
        if durable > self.durable {
            self.durable = durable;
            self.durable_wall_ms = durable_wall_ms;
            advanced = true;
        }
        advanced
    }

    /// Records the position in a heartbeat reply sent while the member was in `state`; returns true if
    /// either optime changed. A reply is a snapshot taken when the member answered, so it may be older than a
    /// `replSetUpdatePosition` that overtook it: positions only move forward, except for a member whose
    /// oplog was cut or replaced (ROLLBACK, then RECOVERING until min-valid; STARTUP/STARTUP2 for an initial
    /// sync), whose own report is the truth even when it is older.
    pub fn adopt_heartbeat_position(
        &mut self,
        state: MemberState,
        applied: OpTime,
        applied_wall_ms: i64,
        durable: OpTime,
        durable_wall_ms: i64,
    ) -> bool {
        self.heartbeat_applied = applied;
        let oplog_rewound = matches!(
            state,
            MemberState::Rollback | MemberState::Recovering | MemberState::Startup | MemberState::Startup2
        );
        if !oplog_rewound {
            return self.advance_position(applied, applied_wall_ms, durable, durable_wall_ms);
        }
        let changed = (self.applied, self.durable) != (applied, durable);
        self.applied = applied;
        self.applied_wall_ms = applied_wall_ms;
        self.durable = durable;
        self.durable_wall_ms = durable_wall_ms;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_timeout_without_reply() {
        let mut view = MemberView::new(1, 0);
        assert!(!view.expire(9_999, 0, 10_000));
        assert_eq!(view.state, MemberState::Unknown);
        view.healthy = true;
        view.state = MemberState::Secondary;
        view.last_heartbeat_ms = Some(5_000);
        assert!(!view.expire(14_999, 0, 10_000));
        assert!(view.expire(15_000, 0, 10_000));
        assert_eq!(view.state, MemberState::Down);
        assert!(!view.expire(20_000, 0, 10_000), "already down");
    }

    #[test]
    fn positions_only_move_forward() {
        let mut view = MemberView::new(1, 0);
        assert!(view.advance_position(OpTime::new(5, 0, 1), 5, OpTime::new(4, 0, 1), 4));
        assert!(!view.advance_position(OpTime::new(3, 0, 1), 3, OpTime::new(3, 0, 1), 3));
        assert_eq!(view.applied, OpTime::new(5, 0, 1));
        assert_eq!(view.durable, OpTime::new(4, 0, 1));
    }
}
