//! Leaving PRIMARY: unconditional step-down (higher term, lost majority), `replSetStepDown` with its
//! catch-up wait and hand-over to a caught-up electable secondary, and `replSetFreeze`.

use super::io::Action;
use super::metrics::CatchUpConclusion;
use super::{PendingStepDown, ReplMachine};
use crate::repl::error::ReplError;
use crate::repl::state::MemberState;

impl ReplMachine {
    /// Steps down to SECONDARY at once. A pending `replSetStepDown` finishes successfully.
    pub(super) fn step_down_now(&mut self, reason: &str) {
        if !self.state.is_primary() {
            return;
        }
        self.outbox.push(Action::Log(format!(
            "stepping down from PRIMARY in term {}: {reason}",
            self.term
        )));
        self.conclude_catch_up(CatchUpConclusion::FailedWithError);
        self.leader_phase = None;
        self.candidacy = None;
        if self.primary_id == self.self_id {
            self.set_primary(None);
        }
        let resting = self.resting_state();
        self.set_state(resting);
        self.reset_election_timer();
        if let Some(pending) = self.pending_step_down.take() {
            self.outbox.push(Action::StepDownFinished {
                request_id: pending.request_id,
                result: Ok(()),
            });
        }
    }

    /// `replSetStepDown {secs, secondaryCatchUpPeriodSecs, force}`. Steps down at once when a majority of
    /// voters has our last applied optime and one of them is electable (or when `force` and no catch-up period
    /// was given); otherwise waits for that, answering later through `Action::StepDownFinished` (262 if no
    /// secondary caught up in time, unless `force`). The member is then frozen for `secs`.
    pub fn step_down(
        &mut self,
        now_ms: i64,
        request_id: u64,
        secs: i64,
        catch_up_secs: i64,
        force: bool,
    ) -> Result<Vec<Action>, ReplError> {
        self.now_ms = self.now_ms.max(now_ms);
        if !self.state.is_primary() {
            return Err(ReplError::not_writable_primary("not primary so can't step down"));
        }
        if secs < catch_up_secs || secs < 0 || catch_up_secs < 0 {
            return Err(ReplError::new(
                2,
                "BadValue",
                "stepdown period must be at least secondaryCatchUpPeriodSecs, and neither may be negative",
            ));
        }
        if self.pending_step_down.is_some() {
            return Err(ReplError::new(
                117,
                "ConflictingOperationInProgress",
                "a step-down is already in progress",
            ));
        }
        let freeze_ms = secs.saturating_mul(1000);
        let deadline_ms = self.now_ms.saturating_add(catch_up_secs.saturating_mul(1000));
        self.pending_step_down = Some(PendingStepDown {
            request_id,
            deadline_ms,
            freeze_ms,
            force,
        });
        if force && catch_up_secs == 0 {
            self.finish_step_down();
        } else {
            self.check_pending_step_down();
        }
        Ok(std::mem::take(&mut self.outbox))
    }

    /// Completes a waiting step-down as soon as its condition holds.
    pub(super) fn check_pending_step_down(&mut self) {
        if self.pending_step_down.is_some() && self.step_down_condition_holds() {
            self.finish_step_down();
        }
    }

    /// Fails (or, with `force`, completes) a waiting step-down whose catch-up period ran out.
    pub(super) fn check_step_down_deadline(&mut self) {
        let Some(pending) = self.pending_step_down else {
            return;
        };
        if self.now_ms < pending.deadline_ms {
            return;
        }
        if pending.force {
            self.finish_step_down();
        } else {
            self.pending_step_down = None;
            let error = ReplError::exceeded_time_limit("no electable secondary caught up within the catch-up period");
            self.outbox.push(Action::StepDownFinished {
                request_id: pending.request_id,
                result: Err(error),
            });
        }
    }

    fn finish_step_down(&mut self) {
        let Some(pending) = self.pending_step_down else {
            return;
        };
        let successor = self.caught_up_electable_secondary();
        self.frozen_until_ms = self.now_ms.saturating_add(pending.freeze_ms);
        self.single_node_prompt = self.is_lone_voter();
        self.step_down_now("replSetStepDown");
        if self.single_node_prompt {
            // mongod's single-node prompt election: stand again as soon as the step-down period ends.
            self.election_deadline_ms = self.frozen_until_ms;
        }
        if let Some(to) = successor {
            self.outbox.push(Action::SendStepUp { to });
        }
    }

    /// A majority of voters (self included) has our last applied optime and one of them could be elected.
    fn step_down_condition_holds(&self) -> bool {
        let caught_up_voters = self
            .config
            .voting_members()
            .filter(|member| {
                Some(member.id) == self.self_id
                    || self
                        .members
                        .get(&member.id)
                        .is_some_and(|view| view.healthy && view.applied >= self.applied)
            })
            .count();
        caught_up_voters >= self.config.majority_vote_count() && self.caught_up_electable_secondary().is_some()
    }

    /// The healthy, electable, caught-up secondary with the highest priority.
    fn caught_up_electable_secondary(&self) -> Option<i32> {
        self.config
            .members
            .iter()
            .filter(|member| member.is_electable() && Some(member.id) != self.self_id)
            .filter(|member| {
                self.members.get(&member.id).is_some_and(|view| {
                    view.healthy && view.state == MemberState::Secondary && view.applied >= self.applied
                })
            })
            .max_by(|a, b| a.priority.total_cmp(&b.priority))
            .map(|member| member.id)
    }

    /// `replSetFreeze {secs}`: refuse to stand for `secs` seconds; 0 unfreezes. Error 95 on a primary.
    pub fn freeze(&mut self, now_ms: i64, secs: i64) -> Result<Vec<Action>, ReplError> {
        self.now_ms = self.now_ms.max(now_ms);
        if self.state.is_primary() {
            return Err(ReplError::not_secondary("cannot freeze a primary; step it down first"));
        }
        self.single_node_prompt = self.is_lone_voter();
        if secs <= 0 {
            self.frozen_until_ms = 0;
            if self.is_lone_voter() {
                self.election_deadline_ms = self.now_ms;
            }
        } else {
            self.frozen_until_ms = self.now_ms.saturating_add(secs.saturating_mul(1000));
        }
        Ok(std::mem::take(&mut self.outbox))
    }

    /// When this member stops being frozen (ms), if it is frozen now.
    pub fn frozen_until_ms(&self) -> Option<i64> {
        self.is_frozen().then_some(self.frozen_until_ms)
    }
}
