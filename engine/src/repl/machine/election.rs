//! Standing for election: the election timer (electionTimeout + up to 15 % jitter since the primary was last
//! heard), the dry run (no term bump), the real election (term + 1, self-vote persisted first), counting votes
//! (a majority of voters, self included), priority takeover and the `replSetStepUp` hand-over.

use std::collections::BTreeSet;

use super::io::Action;
use super::messages::{LastVote, VoteRequest, VoteResponse};
use super::metrics::{CatchUpConclusion, ElectionReason};
use super::{Candidacy, LeaderPhase, ReplMachine};
use crate::repl::optime::OpTime;

/// A candidate counts as fresh enough for a priority takeover when it is this close behind the primary.
const TAKEOVER_FRESHNESS_SECS: u32 = 2;

impl ReplMachine {
    /// Starts a dry run when the election timer has run out.
    pub(super) fn check_election_timer(&mut self) {
        if self.can_stand() && self.now_ms >= self.election_deadline_ms {
            let reason = if self.single_node_prompt && self.is_lone_voter() {
                ElectionReason::FreezeTimeout
            } else {
                ElectionReason::ElectionTimeout
            };
            self.outbox.push(Action::Log(format!(
                "no primary heard from within electionTimeoutMillis ({} ms): standing for election after term {}",
                self.election_timeout_ms(),
                self.term
            )));
            self.start_dry_run(reason);
        }
    }

    /// Abandons an election that did not finish within one election timeout.
    pub(super) fn check_candidacy_timeout(&mut self) {
        let expired = self
            .candidacy
            .as_ref()
            .is_some_and(|c| self.now_ms - c.started_ms >= self.election_timeout_ms());
        if expired {
            self.candidacy = None;
            self.reset_election_timer();
        }
    }

    /// A caught-up member with higher priority than a healthy primary calls an election after a delay that
    /// grows with its rank: (rank + 1) × electionTimeout / 2, where rank 0 is the highest priority.
    pub(super) fn check_priority_takeover(&mut self) {
        if !self.should_take_over() {
            self.takeover_deadline_ms = None;
            return;
        }
        match self.takeover_deadline_ms {
            None => {
                let rank = self.priority_rank() as i64;
                self.takeover_deadline_ms = Some(self.now_ms + (rank + 1) * self.election_timeout_ms() / 2);
            }
            Some(deadline) if self.now_ms >= deadline => {
                self.takeover_deadline_ms = None;
                self.outbox.push(Action::Log(format!(
                    "priority takeover: my priority {} is above the primary's; standing for election after term {}",
                    self.self_priority(),
                    self.term
                )));
                self.start_dry_run(ElectionReason::PriorityTakeover);
            }
            Some(_) => {}
        }
    }

    fn should_take_over(&self) -> bool {
        let Some(primary) = self.primary_id.filter(|id| Some(*id) != self.self_id) else {
            return false;
        };
        let Some(view) = self.members.get(&primary).filter(|view| view.healthy) else {
            return false;
        };
        let primary_priority = self
            .config
            .find_member_by_id(primary)
            .map_or(0.0, |member| member.priority);
        self.can_stand() && self.self_priority() > primary_priority && is_fresh_enough(self.applied, view.applied)
    }

    /// How many electable members we know to be healthy have a strictly higher priority than ours.
    fn priority_rank(&self) -> usize {
        let mine = self.self_priority();
        let is_healthy = |id: i32| self.members.get(&id).is_some_and(|view| view.healthy);
        self.config
            .members
            .iter()
            .filter(|member| member.is_electable() && member.priority > mine && is_healthy(member.id))
            .count()
    }

    pub(super) fn on_step_up_requested(&mut self, from: i32) {
        if self.can_stand() {
            self.outbox.push(Action::Log(format!(
                "member {from} stepped down and asked this member to step up: standing for election after term {}",
                self.term
            )));
            self.start_real_election(ElectionReason::StepUpCmd);
        }
    }

    pub(super) fn start_dry_run(&mut self, reason: ElectionReason) {
        self.start_candidacy(reason, true, self.term);
    }

    pub(super) fn start_real_election(&mut self, reason: ElectionReason) {
        let Some(self_id) = self.self_id else {
            return;
        };
        self.metrics.called(reason);
        self.single_node_prompt = false;
        self.term += 1;
        self.last_vote = Some(LastVote {
            term: self.term,
            candidate_id: self_id,
        });
        self.persist_election_state();
        if self.primary_id.is_some() {
            self.set_primary(None);
        }
        self.start_candidacy(reason, false, self.term);
    }

    fn start_candidacy(&mut self, reason: ElectionReason, dry_run: bool, term: i64) {
        let Some(self_id) = self.self_id else {
            return;
        };
        self.takeover_deadline_ms = None;
        self.candidacy = Some(Candidacy {
            reason,
            dry_run,
            term,
            votes: BTreeSet::from([self_id]),
            started_ms: self.now_ms,
        });
        let request = VoteRequest {
            set_name: self.config.set_name.clone(),
            dry_run,
            term,
            candidate_id: self_id,
            config_version: self.config.version,
            config_term: self.config.term,
            last_applied: self.applied,
        };
        let voters: Vec<i32> = self
            .config
            .voting_members()
            .map(|member| member.id)
            .filter(|id| *id != self_id)
            .collect();
        for to in voters {
            self.outbox.push(Action::SendVoteRequest {
                to,
                request: request.clone(),
            });
        }
        self.count_votes();
    }

    pub(super) fn on_vote_response(&mut self, from: i32, response: &VoteResponse) {
        if let Some(view) = self.members.get_mut(&from) {
            view.last_contact_ms = Some(self.now_ms);
        }
        if response.term > self.term {
            self.observe_term(response.term);
            self.reset_election_timer();
            return;
        }
        let Some(candidacy) = self.candidacy.as_mut() else {
            return;
        };
        let matches = candidacy.dry_run == response.dry_run && candidacy.term == response.request_term;
        let is_voter = self
            .config
            .find_member_by_id(from)
            .is_some_and(|member| member.is_voter());
        if matches && response.vote_granted && is_voter {
            candidacy.votes.insert(from);
            self.count_votes();
        }
    }

    /// Moves on when the candidacy holds a majority: dry run → real election → primary.
    fn count_votes(&mut self) {
        let Some(candidacy) = &self.candidacy else {
            return;
        };
        if candidacy.votes.len() < self.config.majority_vote_count() {
            return;
        }
        let (dry_run, reason) = (candidacy.dry_run, candidacy.reason);
        let voters: Vec<String> = candidacy.votes.iter().map(i32::to_string).collect();
        self.candidacy = None;
        if dry_run {
            self.start_real_election(reason);
        } else {
            self.outbox.push(Action::Log(format!(
                "won the election for term {} with votes from members [{}] ({} needed of {} voters)",
                self.term,
                voters.join(", "),
                self.config.majority_vote_count(),
                self.config.voting_member_count()
            )));
            self.metrics.won(reason);
            self.become_primary();
        }
    }

    /// Won: PRIMARY (not yet writable), ask everyone for their newest optime, and start catching up.
    fn become_primary(&mut self) {
        let Some(self_id) = self.self_id else {
            return;
        };
        self.election = Some((self.now_ms, self.applied));
        self.clear_follower_timers();
        let timeout = self.config.settings.catch_up_timeout_millis;
        let deadline_ms = (timeout >= 0).then_some(self.now_ms + timeout);
        // As mongod counts it: no catch-up in a one-member set or with a zero timeout; otherwise one more
        // catch-up, concluded later (already caught up, succeeded, timed out or failed).
        if self.config.members.len() == 1 || timeout == 0 {
            self.metrics.concluded(CatchUpConclusion::Skipped);
        } else {
            self.catch_up_pending = true;
        }
        self.leader_phase = Some(LeaderPhase::CatchingUp {
            since_ms: self.now_ms,
            deadline_ms,
        });
        self.set_primary(Some(self_id));
        self.set_state(crate::repl::state::MemberState::Primary);
        let members: Vec<i32> = self.members.keys().copied().collect();
        for to in members {
            self.send_heartbeat_now(to);
        }
        self.check_catch_up();
    }

    fn clear_follower_timers(&mut self) {
        self.takeover_deadline_ms = None;
        self.pending_step_down = None;
    }
}

/// Whether `mine` is at least `primary`'s optime, or in the same term and at most a couple of seconds behind.
fn is_fresh_enough(mine: OpTime, primary: OpTime) -> bool {
    mine >= primary
        || (mine.term == primary.term && mine.ts.time.saturating_add(TAKEOVER_FRESHNESS_SECS) >= primary.ts.time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_window() {
        assert!(is_fresh_enough(OpTime::new(10, 0, 2), OpTime::new(10, 0, 2)));
        assert!(is_fresh_enough(OpTime::new(8, 0, 2), OpTime::new(10, 5, 2)));
        assert!(!is_fresh_enough(OpTime::new(7, 0, 2), OpTime::new(10, 0, 2)));
        assert!(!is_fresh_enough(OpTime::new(10, 0, 1), OpTime::new(10, 0, 2)));
    }
}
