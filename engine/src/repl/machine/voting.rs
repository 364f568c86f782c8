//! The voter's side of `replSetRequestVotes`: adopt a higher term (real elections only), then grant or refuse
//! by MongoDB's rules, persisting the vote before the reply leaves.

use super::ReplMachine;
use super::io::Action;
use super::messages::{LastVote, VoteRequest, VoteResponse};

impl ReplMachine {
    pub(super) fn on_vote_request(&mut self, from: i32, request: &VoteRequest) {
        if !request.dry_run && request.set_name == self.config.set_name {
            self.observe_term(request.term);
        }
        let refusal = self.vote_refusal(request);
        let granted = refusal.is_none();
        if granted && !request.dry_run {
            self.last_vote = Some(LastVote {
                term: request.term,
                candidate_id: request.candidate_id,
            });
            self.persist_election_state();
            self.reset_election_timer();
        }
        let response = VoteResponse {
            term: self.term,
            vote_granted: granted,
            reason: refusal.unwrap_or_default(),
            dry_run: request.dry_run,
            request_term: request.term,
        };
        self.outbox.push(Action::ReplyVote { to: from, response });
    }

    /// Why this member would not vote for `request`'s candidate, or `None` if it would.
    pub(super) fn vote_refusal(&self, request: &VoteRequest) -> Option<String> {
        if request.set_name != self.config.set_name {
            return Some(format!("candidate's set name '{}' differs from mine", request.set_name));
        }
        if request.term < self.term {
            return Some(format!(
                "candidate's term ({}) is lower than mine ({})",
                request.term, self.term
            ));
        }
        if request.config_version != self.config.version || request.config_term != self.config.term {
            return Some(format!(
                "candidate's config (version {}, term {}) differs from mine (version {}, term {})",
                request.config_version, request.config_term, self.config.version, self.config.term
            ));
        }
        if !self.self_member().is_some_and(|member| member.is_voter()) {
            return Some("I am not a voting member".to_owned());
        }
        if self.is_newer(&self.applied, &request.last_applied) {
            return Some(format!(
                "candidate's data is staler than mine: {} < {}",
                request.last_applied, self.applied
            ));
        }
        if let Some(vote) = self.last_vote
            && !request.dry_run
            && vote.term == request.term
            && vote.candidate_id != request.candidate_id
        {
            return Some(format!(
                "already voted for member {} in term {}",
                vote.candidate_id, vote.term
            ));
        }
        self.arbiter_refusal(request.candidate_id)
    }

    /// An arbiter refuses a candidate while it sees a healthy primary of equal or higher priority.
    fn arbiter_refusal(&self, candidate_id: i32) -> Option<String> {
        if !self.is_arbiter() {
            return None;
        }
        let primary = self.primary_id.filter(|id| *id != candidate_id)?;
        if !self.members.get(&primary).is_some_and(|view| view.healthy) {
            return None;
        }
        let priority_of = |id: i32| self.config.find_member_by_id(id).map_or(0.0, |member| member.priority);
        (priority_of(primary) >= priority_of(candidate_id))
            .then(|| format!("member {primary} is a healthy primary of equal or greater priority"))
    }
}

#[cfg(test)]
mod fail_point_tests {
    use super::super::{MachineStart, PersistedElectionState, ReplMachine};
    use super::VoteRequest;
    use crate::repl::config::{MemberConfig, ReplSetConfig};
    use crate::repl::optime::OpTime;

    fn voter(applied: OpTime) -> ReplMachine {
        let members = (0..3).map(|id| MemberConfig::new(id, format!("h{id}:1"))).collect();
        let mut config = ReplSetConfig::new("rs0", members);
        config.term = 0;
        let start = MachineStart {
            config,
            self_host: "h1:1".into(),
            persisted: PersistedElectionState {
                term: 2,
                last_vote: None,
            },
            applied,
            durable: applied,
            commit_point: OpTime::null(),
            seed: 1,
            data: Default::default(),
        };
        ReplMachine::new(start, 0)
    }

    /// A deposed primary from term 1 whose last write has a later timestamp than the term-2 entries we hold.
    fn stale_term_candidate(machine: &ReplMachine) -> VoteRequest {
        VoteRequest {
            set_name: "rs0".into(),
            dry_run: false,
            term: 3,
            candidate_id: 0,
            config_version: machine.config().version,
            config_term: machine.config().term,
            last_applied: OpTime::new(200, 5, 1),
        }
    }

    #[test]
    fn terms_decide_freshness_unless_elect_by_timestamp_is_on() {
        let mut machine = voter(OpTime::new(150, 1, 2));
        let request = stale_term_candidate(&machine);
        let refusal = machine.vote_refusal(&request);
        assert!(
            refusal.as_deref().is_some_and(|r| r.contains("staler")),
            "a term-1 candidate must lose to our term-2 data: {refusal:?}"
        );
        machine.set_elect_by_timestamp(true);
        assert_eq!(machine.vote_refusal(&request), None, "by timestamp, 200 > 150 wins");
        let mut older = request.clone();
        older.last_applied = OpTime::new(100, 1, 5);
        assert!(
            machine.vote_refusal(&older).is_some(),
            "an older timestamp still loses, whatever its term"
        );
    }
}
