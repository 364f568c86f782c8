//! Replication progress and leadership: catch-up after winning, the hand-off to the shell for the new-primary
//! no-op, the majority commit point (current-term rule, arbiters excluded), how secondaries learn it,
//! `replSetUpdatePosition` in both directions, and stepping down when a majority is out of reach.

use super::io::Action;
use super::messages::MemberPosition;
use super::metrics::CatchUpConclusion;
use super::{LeaderPhase, ReplMachine};
use crate::repl::optime::OpTime;

impl ReplMachine {
    /// Catch-up ends once every other member has answered (or failed, or is down) since we won and none
    /// that answered is ahead of us — as mongod's `latestKnownOpTimeSinceHeartbeatRestart`. Reports from
    /// before the election never set the target: the member that sent them may be the dead old primary.
    pub(super) fn check_catch_up(&mut self) {
        if let Some(target) = self.catch_up_target()
            && !self.is_newer(&target, &self.applied)
        {
            let fetched = self
                .election
                .is_some_and(|(_, won_at)| self.is_newer(&self.applied, &won_at));
            self.conclude_catch_up(if fetched {
                CatchUpConclusion::Succeeded
            } else {
                CatchUpConclusion::AlreadyCaughtUp
            });
            self.finish_catch_up();
        }
    }

    /// The newest optime reported since we won, once every member has been heard from (or is down).
    pub(super) fn catch_up_target(&self) -> Option<OpTime> {
        let Some(LeaderPhase::CatchingUp { since_ms, .. }) = self.leader_phase else {
            return None;
        };
        let mut target = self.applied;
        for view in self.members.values() {
            if let Some(applied) = view.heard_since(since_ms)?
                && self.is_newer(&applied, &target)
            {
                target = applied;
            }
        }
        Some(target)
    }

    /// Ends catch-up when `catchUpTimeoutMillis` has passed, caught up or not.
    pub(super) fn check_catch_up_deadline(&mut self) {
        if let Some(LeaderPhase::CatchingUp {
            deadline_ms: Some(deadline),
            ..
        }) = self.leader_phase
            && self.now_ms >= deadline
        {
            self.conclude_catch_up(CatchUpConclusion::TimedOut);
            self.finish_catch_up();
        }
    }

    fn finish_catch_up(&mut self) {
        self.leader_phase = Some(LeaderPhase::Draining);
        self.outbox.push(Action::CompleteStepUp { term: self.term });
    }

    pub(super) fn on_step_up_completed(&mut self, term: i64, noop: OpTime) {
        if term != self.term || self.leader_phase != Some(LeaderPhase::Draining) || !self.state.is_primary() {
            return;
        }
        if noop > self.applied {
            self.position_changes += 1;
            self.applied = noop;
            self.applied_wall_ms = self.now_ms;
        }
        self.leader_phase = Some(LeaderPhase::Writable);
        self.writable_since_ms = Some(self.now_ms);
        self.outbox.push(Action::AcceptWrites { term });
        self.bump_topology();
    }

    /// The primary's commit point: the newest optime that `writeMajorityCount` data-bearing voters have
    /// (durable or applied, per `writeConcernMajorityJournalDefault`), only if it is from the current term.
    pub(super) fn advance_commit_point_as_primary(&mut self) {
        if !self.state.is_primary() {
            return;
        }
        let use_durable = self.config.write_concern_majority_journal_default;
        let mut positions = Vec::new();
        for member in self.config.voting_members().filter(|member| member.is_data_bearing()) {
            let position = if Some(member.id) == self.self_id {
                if use_durable {
                    self.durable.min(self.applied)
                } else {
                    self.applied
                }
            } else {
                let Some(view) = self.members.get(&member.id) else {
                    continue;
                };
                if use_durable { view.durable } else { view.applied }
            };
            positions.push(position);
        }
        positions.sort_unstable_by(|a, b| b.cmp(a));
        let Some(candidate) = positions
            .get(self.config.write_majority_count().saturating_sub(1))
            .copied()
        else {
            return;
        };
        if candidate.term == self.term {
            self.advance_commit_point(candidate);
        }
    }

    /// A commit point heard from another member: accepted only on our own branch (same term as our last
    /// applied entry) and capped at our applied optime.
    pub(super) fn learn_commit_point(&mut self, learned: OpTime) {
        if learned.is_null() || learned.term != self.applied.term {
            return;
        }
        self.advance_commit_point(learned.min(self.applied));
    }

    fn advance_commit_point(&mut self, optime: OpTime) {
        if optime > self.commit_point {
            self.commit_point = optime;
            self.outbox.push(Action::CommitPointAdvanced { optime });
        }
    }

    pub(super) fn on_sync_source_metadata(&mut self, from: i32, term: i64, commit_point: OpTime, primary: Option<i32>) {
        self.observe_term(term);
        if self.sync_source != Some(from) || self.state.is_primary() {
            return;
        }
        if let Some(primary) = primary.filter(|id| Some(*id) != self.self_id)
            && term >= self.term
        {
            self.set_primary(Some(primary));
            // Only the primary itself proves the primary is alive: a chained source's belief may be stale
            // (two secondaries fetching from each other would otherwise keep each other from ever standing).
            if from == primary {
                self.reset_election_timer();
            }
        }
        self.learn_commit_point(commit_point);
    }

    /// A primary that has not had a round trip with a majority of voters (itself included) within
    /// electionTimeout steps down.
    pub(super) fn check_majority_contact(&mut self) {
        if !self.state.is_primary() {
            return;
        }
        let window = self.election_timeout_ms();
        let now = self.now_ms;
        let reachable = self
            .config
            .voting_members()
            .filter(|member| {
                Some(member.id) == self.self_id
                    || self
                        .members
                        .get(&member.id)
                        .is_some_and(|view| view.contacted_within(now, window))
            })
            .count();
        if reachable < self.config.majority_vote_count() {
            self.step_down_now("could not see a majority of voters");
        }
    }

    /// A reporter's newer `term` is adopted first (a primary steps down), as mongod processes the report's
    /// `$replData` before its positions: positions from a member that voted in a newer term must not complete
    /// a majority for this one.
    pub(super) fn on_update_position(&mut self, from: i32, term: Option<i64>, positions: &[MemberPosition]) {
        if let Some(term) = term {
            self.observe_term(term);
        }
        let now = self.now_ms;
        let mut advanced = false;
        for position in positions {
            let Some(view) = self.members.get_mut(&position.member_id) else {
                continue;
            };
            let moved = view.advance_position(
                position.applied,
                position.applied_wall_ms,
                position.durable,
                position.durable_wall_ms,
            );
            if moved || position.member_id == from {
                view.last_contact_ms = Some(now);
            }
            advanced |= moved;
            self.position_changes += u64::from(moved);
        }
        if advanced && !self.state.is_primary() {
            self.send_position_upstream();
        }
    }

    /// Every member's position we know, ours first: the body of `replSetUpdatePosition`.
    pub(super) fn known_positions(&self) -> Vec<MemberPosition> {
        let mut positions = Vec::new();
        if let Some(self_id) = self.self_id {
            positions.push(MemberPosition {
                member_id: self_id,
                config_version: self.config.version,
                applied: self.applied,
                applied_wall_ms: self.applied_wall_ms,
                durable: self.durable,
                durable_wall_ms: self.durable_wall_ms,
            });
        }
        positions.extend(
            self.members
                .values()
                .filter(|view| !view.applied.is_null())
                .map(|view| MemberPosition {
                    member_id: view.id,
                    config_version: view.config_version,
                    applied: view.applied,
                    applied_wall_ms: view.applied_wall_ms,
                    durable: view.durable,
                    durable_wall_ms: view.durable_wall_ms,
                }),
        );
        positions
    }

    /// Reports positions to our sync source (secondaries only).
    pub(super) fn send_position_upstream(&mut self) {
        if self.state.is_primary() {
            return;
        }
        if let Some(to) = self.sync_source {
            let positions = self.known_positions();
            self.outbox.push(Action::SendUpdatePosition {
                to,
                term: self.term,
                positions,
            });
            self.next_keepalive_ms = self.now_ms + self.election_timeout_ms() / 2;
        }
    }

    /// Re-sends positions every electionTimeout / 2 so the primary keeps counting us as reachable.
    pub(super) fn send_keepalive_position(&mut self) {
        if self.now_ms >= self.next_keepalive_ms {
            self.next_keepalive_ms = self.now_ms + self.election_timeout_ms() / 2;
            self.send_position_upstream();
        }
    }
}
