//! `ReplMachine`: one member's replica-set decision logic as a pure state machine.
//!
//! ```text
//!                 now_ms + Event                     Vec<Action>
//!   shell ───────────────────────────▶ ReplMachine ──────────────────▶ shell
//!   (sockets,     Tick, HeartbeatRequest/Response,    PersistElectionState, SendHeartbeat, ReplyVote,
//!    timers,      VoteRequest/Response, UpdatePosition, SendVoteRequest, TransitionTo, CompleteStepUp,
//!    storage)     LocalApplied/Durable, ...            CommitPointAdvanced, SyncSourceChanged, ...
//!                 + commands: step_down, freeze,
//!                   sync_from, reconfig, status
//! ```
//!
//! No I/O, no clock, no threads: time arrives with every call, randomness comes from a seeded generator
//! the machine owns, so a run is reproducible from (seed, inputs). Submodules, one rule family each:
//! `heartbeat` (health, config propagation), `election` (timer, dry run, candidacy, takeover), `voting`
//! (the voter's rules), `leader` (catch-up, commit point, losing the majority), `stepdown` (`replSetStepDown`,
//! `replSetFreeze`, hand-over), `sync_source`, `status` (the `replSetGetStatus` snapshot).

mod election;
mod heartbeat;
mod io;
mod leader;
mod members;
mod messages;
mod metrics;
mod oplog_window;
mod status;
mod stepdown;
mod sync_source;
mod voting;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use io::{Action, Event};
pub use members::MemberView;
pub use messages::{
    HeartbeatRequest, HeartbeatResponse, LastVote, MemberPosition, PersistedElectionState, VoteRequest, VoteResponse,
};
pub use metrics::{CatchUpConclusion, ElectionMetrics, ElectionReason, ReasonCounter};
pub use oplog_window::{TOO_STALE_DENYLIST_MS, TOO_STALE_MESSAGE};
pub use status::{MemberStatus, ReplStatus};

use super::config::ReplSetConfig;
use super::error::ReplError;
use super::optime::OpTime;
use super::rng::SplitMix64;
use super::state::MemberState;

/// How this member starts: its identity, what it persisted, and its oplog position.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineStart {
    /// The installed config.
    pub config: ReplSetConfig,
    /// This member's `host` as written in the config.
    pub self_host: String,
    /// Term and last vote read back from storage.
    pub persisted: PersistedElectionState,
    /// Last applied optime in the oplog.
    pub applied: OpTime,
    /// Last durable optime.
    pub durable: OpTime,
    /// The commit point last persisted (never goes backwards across restarts).
    pub commit_point: OpTime,
    /// Seed for election jitter.
    pub seed: u64,
    /// Whether the data it starts on is consistent, or a rollback left it otherwise.
    pub data: StartData,
}

/// The data a member starts on, as its last rollback left it. A member whose data is not consistent starts
/// ROLLBACK or RECOVERING (never SECONDARY: it may neither serve reads nor be elected) until it is.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StartData {
    /// No rollback is pending.
    #[default]
    Consistent,
    /// A rollback began changing data and did not finish: it is resumed before anything is applied.
    RollbackUnfinished,
    /// A rollback finished and the member had not yet applied up to its min-valid optime.
    BehindMinValid(OpTime),
}

/// An election this member is running.
#[derive(Debug, Clone, PartialEq)]
struct Candidacy {
    reason: ElectionReason,
    dry_run: bool,
    term: i64,
    votes: BTreeSet<i32>,
    started_ms: i64,
}

/// Where a newly elected primary is in its step-up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LeaderPhase {
    /// Fetching until our applied optime reaches the newest optime that members reported after we won
    /// (`since_ms`), or the deadline passes. The target is recomputed from those reports on every event, so
    /// a member that dies or is unreachable is not waited for.
    CatchingUp { since_ms: i64, deadline_ms: Option<i64> },
    /// Waiting for the shell to drain and write the new-primary no-op.
    Draining,
    /// Accepting writes.
    Writable,
}

/// A conditional `replSetStepDown` waiting for a secondary to catch up.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PendingStepDown {
    request_id: u64,
    deadline_ms: i64,
    freeze_ms: i64,
    force: bool,
}

/// One replica-set member's decision logic. See the module docs.
#[derive(Debug, Clone)]
pub struct ReplMachine {
    /// Shared with the driver's role snapshot: replaced (never changed in place) when a config is installed.
    config: Arc<ReplSetConfig>,
    self_host: String,
    self_id: Option<i32>,
    state: MemberState,
    term: i64,
    last_vote: Option<LastVote>,
    applied: OpTime,
    applied_wall_ms: i64,
    durable: OpTime,
    durable_wall_ms: i64,
    commit_point: OpTime,
    members: BTreeMap<i32, MemberView>,
    primary_id: Option<i32>,
    candidacy: Option<Candidacy>,
    leader_phase: Option<LeaderPhase>,
    election: Option<(i64, OpTime)>,
    /// When this member last became a writable primary (`electionDate`); never cleared, so it also says
    /// whether the member has accepted writes since it started.
    writable_since_ms: Option<i64>,
    election_deadline_ms: i64,
    takeover_deadline_ms: Option<i64>,
    frozen_until_ms: i64,
    pending_step_down: Option<PendingStepDown>,
    sync_source: Option<i32>,
    requested_sync_source: Option<i32>,
    next_keepalive_ms: i64,
    topology_version: i64,
    started_ms: i64,
    now_ms: i64,
    rng: SplitMix64,
    outbox: Vec<Action>,
    /// Fail point `electByTimestamp`: optimes compare by timestamp alone, ignoring terms (see
    /// [`ReplMachine::is_newer`]).
    elect_by_timestamp: bool,
    /// `serverStatus.electionMetrics`.
    metrics: ElectionMetrics,
    /// A catch-up counted in `numCatchUps` is under way: its conclusion is still to be counted.
    catch_up_pending: bool,
    /// A one-voter set whose freeze or step-down period was set: its next election is a prompt one
    /// (`freezeTimeout`).
    single_node_prompt: bool,
    /// Sync sources whose oplog starts after our newest entry, and until when they are not tried again.
    stale_sources: BTreeMap<i32, i64>,
    /// Sync sources found behind us while another member was ahead, until when they are passed over.
    behind_sources: BTreeMap<i32, i64>,
    /// We fell off every sync source's oplog: RECOVERING until one can serve us (oplog_window.rs).
    too_stale: bool,
    /// After a rollback: RECOVERING until our applied optime reaches this point (`Event::RolledBack`).
    min_valid: Option<OpTime>,
    /// Bumped whenever a member's applied or durable optime (ours included) changes: write-concern waiters
    /// counting members re-check only then.
    position_changes: u64,
    /// The (term, primary) a heartbeat request last made us restart our heartbeats for: once each, so two
    /// members with different stale views of the primary cannot set each other off for ever.
    heartbeats_restarted_for: Option<(i64, i32)>,
}

impl ReplMachine {
    /// A member starting at `now_ms`. Data-bearing members start as SECONDARY, arbiters as ARBITER, and a
    /// host missing from the config as REMOVED. A lone voter stands for election on the first tick.
    pub fn new(start: MachineStart, now_ms: i64) -> Self {
        let mut machine = Self {
            config: Arc::new(start.config),
            self_host: start.self_host,
            self_id: None,
            state: MemberState::Startup,
            term: start.persisted.term,
            last_vote: start.persisted.last_vote,
            applied: start.applied,
            applied_wall_ms: 0,
            durable: start.durable,
            durable_wall_ms: 0,
            commit_point: start.commit_point.min(start.applied),
            members: BTreeMap::new(),
            primary_id: None,
            candidacy: None,
            leader_phase: None,
            election: None,
            writable_since_ms: None,
            election_deadline_ms: now_ms,
            takeover_deadline_ms: None,
            frozen_until_ms: 0,
            pending_step_down: None,
            sync_source: None,
            requested_sync_source: None,
            next_keepalive_ms: now_ms,
            // 0 is the counter of a member without a config: installing the machine is a topology change.
            topology_version: 1,
            started_ms: now_ms,
            now_ms,
            rng: SplitMix64::new(start.seed),
            outbox: Vec::new(),
            elect_by_timestamp: false,
            metrics: ElectionMetrics::default(),
            catch_up_pending: false,
            single_node_prompt: false,
            stale_sources: BTreeMap::new(),
            behind_sources: BTreeMap::new(),
            too_stale: false,
            min_valid: None,
            position_changes: 0,
            heartbeats_restarted_for: None,
        };
        machine.adopt_config_members();
        machine.state = machine.resting_state();
        if machine.state == MemberState::Secondary {
            match start.data {
                StartData::Consistent => {}
                StartData::RollbackUnfinished => machine.state = MemberState::Rollback,
                StartData::BehindMinValid(min_valid) if machine.applied < min_valid => {
                    machine.state = MemberState::Recovering;
                    machine.min_valid = Some(min_valid);
                }
                StartData::BehindMinValid(_) => {}
            }
        }
        machine.reset_election_timer();
        if machine.is_lone_voter() {
            machine.election_deadline_ms = now_ms;
        }
        machine
    }

    /// Feeds one event at `now_ms` (time never goes backwards: an older `now_ms` is treated as the latest
    /// seen) and returns the actions to carry out, in order.
    pub fn handle(&mut self, now_ms: i64, event: Event) -> Vec<Action> {
        self.now_ms = self.now_ms.max(now_ms);
        match event {
            Event::Tick => self.on_tick(),
            Event::HeartbeatRequest { from, request } => self.on_heartbeat_request(from, &request),
            Event::HeartbeatResponse { from, response, rtt_ms } => self.on_heartbeat_response(from, *response, rtt_ms),
            Event::HeartbeatFailed { to, message } => self.on_heartbeat_failed(to, message),
            Event::VoteRequest { from, request } => self.on_vote_request(from, &request),
            Event::VoteResponse { from, response } => self.on_vote_response(from, &response),
            Event::UpdatePosition { from, term, positions } => self.on_update_position(from, term, &positions),
            Event::LocalApplied { optime, wall_ms } => self.on_local_applied(optime, wall_ms),
            Event::LocalDurable { optime, wall_ms } => self.on_local_durable(optime, wall_ms),
            Event::SyncSourceMetadata {
                from,
                term,
                commit_point,
                primary_id,
            } => self.on_sync_source_metadata(from, term, commit_point, primary_id),
            Event::StepUpCompleted { term, noop } => self.on_step_up_completed(term, noop),
            Event::StepUpRequested { from } => self.on_step_up_requested(from),
            Event::InitialSyncStarted => self.enter_follower_state(MemberState::Startup2),
            Event::InitialSyncFinished => self.enter_follower_state(MemberState::Secondary),
            Event::RollbackStarted => self.enter_follower_state(MemberState::Rollback),
            Event::RolledBack {
                common_point,
                min_valid,
            } => self.on_rolled_back(common_point, min_valid),
            Event::RollbackAbandoned => {
                if self.state == MemberState::Rollback {
                    let back = if self.min_valid.is_some() {
                        MemberState::Recovering
                    } else {
                        MemberState::Secondary
                    };
                    self.set_state(back);
                }
            }
            Event::SyncSourceProbed { from, too_stale } => self.on_sync_source_probed(from, too_stale),
            Event::SyncSourceBehind { from } => self.on_sync_source_behind(from),
        }
        self.settle();
        std::mem::take(&mut self.outbox)
    }

    /// Installs `new_config` from `replSetReconfig` (primary only unless `force`).
    pub fn reconfig(
        &mut self,
        now_ms: i64,
        mut new_config: ReplSetConfig,
        force: bool,
    ) -> Result<Vec<Action>, ReplError> {
        self.now_ms = self.now_ms.max(now_ms);
        if !force && !self.state.is_primary() {
            return Err(ReplError::not_writable_primary(
                "replSetReconfig must run on the primary unless force",
            ));
        }
        if !force {
            new_config.mark_newly_added(&self.config);
        }
        new_config.validate_reconfig_from(&self.config, force)?;
        if !force {
            new_config.term = self.term;
        }
        self.install_config(new_config);
        self.settle();
        Ok(std::mem::take(&mut self.outbox))
    }

    /// Fail point `electByTimestamp`: when on, this member compares optimes by timestamp alone, whatever
    /// the terms (protocol version 0's flaw): it votes for any candidate whose last-applied timestamp is not
    /// older than its own, and syncs from any member with a later timestamp.
    pub fn set_elect_by_timestamp(&mut self, on: bool) {
        self.elect_by_timestamp = on;
    }

    /// Whether optime `a` is newer than `b`: (term, timestamp) order, or timestamps alone under the
    /// `electByTimestamp` fail point. Vote freshness, sync source choice and the new primary's catch-up
    /// target use this one comparison.
    pub(super) fn is_newer(&self, a: &OpTime, b: &OpTime) -> bool {
        if self.elect_by_timestamp {
            (a.ts.time, a.ts.increment) > (b.ts.time, b.ts.increment)
        } else {
            a > b
        }
    }

    /// The current term.
    pub fn term(&self) -> i64 {
        self.term
    }

    /// The current member state.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// The installed config.
    pub fn config(&self) -> &ReplSetConfig {
        &self.config
    }

    /// The current config, shared (a new `Arc` only when a new config was installed).
    pub fn shared_config(&self) -> Arc<ReplSetConfig> {
        self.config.clone()
    }

    /// The term and optime of this member's election while it is primary (`electionId`, `electionOpTime`).
    pub fn election(&self) -> Option<(i64, OpTime)> {
        self.election.filter(|_| self.state.is_primary())
    }

    /// A counter that moves whenever any member's applied or durable optime changes (see
    /// [`ReplMachine::members_at`]).
    pub fn position_changes(&self) -> u64 {
        self.position_changes
    }

    /// How many members (this one included) have applied `optime`, or made it durable when `durable`.
    pub fn members_at(&self, optime: OpTime, durable: bool) -> usize {
        let reached = |applied: OpTime, durable_at: OpTime| {
            if durable {
                durable_at >= optime
            } else {
                applied >= optime
            }
        };
        let mine = self.self_id.is_some() && reached(self.applied, self.durable);
        let others = self
            .config
            .members
            .iter()
            .filter(|member| Some(member.id) != self.self_id)
            .filter_map(|member| self.members.get(&member.id))
            .filter(|view| reached(view.applied, view.durable))
            .count();
        others + usize::from(mine)
    }

    /// This member's `_id`, or `None` when it is not in the config.
    pub fn self_id(&self) -> Option<i32> {
        self.self_id
    }

    /// The member this one believes is primary.
    pub fn primary_id(&self) -> Option<i32> {
        self.primary_id
    }

    /// Whether writes are accepted here (`isWritablePrimary`).
    pub fn is_writable_primary(&self) -> bool {
        self.state.is_primary() && self.leader_phase == Some(LeaderPhase::Writable)
    }

    /// Whether a rollback to `common_point` is safe: it must not undo anything at or before the majority
    /// commit point this member has learned. A violation is a safety bug elsewhere (mongod stops with a
    /// fatal assertion); the caller must stop rather than roll back.
    ///
    /// Under the `electByTimestamp` fail point the member plays a MongoDB from before that assertion (the
    /// releases whose timestamp elections Jepsen caught losing majority-acknowledged writes): it rolls the
    /// committed writes back, so that the harness can observe the loss the fail point exists to reproduce.
    pub fn check_rollback_common_point(&self, common_point: OpTime) -> Result<(), ReplError> {
        if common_point < self.commit_point && !self.elect_by_timestamp {
            return Err(ReplError::new(
                1,
                "InternalError",
                format!(
                    "rollback would undo majority-committed writes: the common point {common_point:?} is before \
                     the majority commit point {:?}",
                    self.commit_point
                ),
            ));
        }
        Ok(())
    }

    /// The majority commit point.
    pub fn commit_point(&self) -> OpTime {
        self.commit_point
    }

    /// Last applied optime.
    pub fn applied(&self) -> OpTime {
        self.applied
    }

    /// The current sync source.
    pub fn sync_source(&self) -> Option<i32> {
        self.sync_source
    }

    /// `topologyVersion.counter`: the machine counts every change (state, primary, writability, config);
    /// the shell only mirrors it.
    pub fn topology_version(&self) -> i64 {
        self.topology_version
    }

    /// When (machine time) this member last started accepting writes as primary; `None` if it never has.
    pub fn writable_since_ms(&self) -> Option<i64> {
        self.writable_since_ms
    }

    /// What must be persisted about elections right now.
    pub fn persisted_election_state(&self) -> PersistedElectionState {
        PersistedElectionState {
            term: self.term,
            last_vote: self.last_vote,
        }
    }

    fn on_tick(&mut self) {
        self.expire_members();
        self.send_due_heartbeats();
        self.check_candidacy_timeout();
        self.check_election_timer();
        self.check_priority_takeover();
        self.check_majority_contact();
        self.check_catch_up_deadline();
        self.check_step_down_deadline();
        self.send_keepalive_position();
    }

    /// Rules re-checked after every event.
    fn settle(&mut self) {
        self.promote_newly_added();
        self.check_catch_up();
        self.advance_commit_point_as_primary();
        self.check_pending_step_down();
        self.reevaluate_sync_source();
    }

    fn on_local_applied(&mut self, optime: OpTime, wall_ms: i64) {
        if optime > self.applied {
            self.position_changes += 1;
            self.applied = optime;
            self.applied_wall_ms = wall_ms;
            self.send_position_upstream();
        }
        self.check_min_valid();
    }

    fn on_local_durable(&mut self, optime: OpTime, wall_ms: i64) {
        if optime > self.durable {
            self.position_changes += 1;
            self.durable = optime;
            self.durable_wall_ms = wall_ms;
            self.send_position_upstream();
        }
    }

    fn on_rolled_back(&mut self, common_point: OpTime, min_valid: OpTime) {
        if self.state.is_primary() {
            return;
        }
        if common_point < self.applied {
            self.position_changes += 1;
            self.applied = common_point;
            self.durable = self.durable.min(common_point);
        }
        self.enter_follower_state(MemberState::Recovering);
        self.min_valid = Some(min_valid);
        self.check_min_valid();
    }

    /// After a rollback: RECOVERING ends once our applied optime reaches min-valid.
    fn check_min_valid(&mut self) {
        let Some(target) = self.min_valid else { return };
        if self.applied >= target {
            self.min_valid = None;
            if self.state == MemberState::Recovering {
                self.enter_follower_state(MemberState::Secondary);
            }
        }
    }

    /// Moves a data-bearing member that is not primary into a follower state (STARTUP2, ROLLBACK,
    /// RECOVERING or SECONDARY).
    fn enter_follower_state(&mut self, state: MemberState) {
        if !self.state.is_primary() && self.self_id.is_some() && !self.is_arbiter() {
            self.set_state(state);
        }
    }

    /// The optime this member must reach before it leaves RECOVERING after a rollback, if any.
    pub fn min_valid(&self) -> Option<OpTime> {
        self.min_valid
    }

    /// Adopts a higher term seen in any message: persist it, abandon any candidacy, and step down if primary.
    fn observe_term(&mut self, term: i64) {
        if term <= self.term {
            return;
        }
        self.term = term;
        self.candidacy = None;
        self.persist_election_state();
        if self.state.is_primary() {
            self.metrics.step_downs_caused_by_higher_term += 1;
            self.conclude_catch_up(CatchUpConclusion::FailedWithNewTerm);
            self.step_down_now("a higher term was seen");
        }
        if self.primary_id == self.self_id {
            self.primary_id = None;
        }
    }

    fn persist_election_state(&mut self) {
        let state = self.persisted_election_state();
        self.outbox.push(Action::PersistElectionState(state));
    }

    fn set_state(&mut self, state: MemberState) {
        if self.state != state {
            self.state = state;
            self.outbox.push(Action::TransitionTo { state });
            self.bump_topology();
        }
    }

    fn set_primary(&mut self, primary_id: Option<i32>) {
        if self.primary_id != primary_id {
            self.primary_id = primary_id;
            self.bump_topology();
        }
    }

    fn bump_topology(&mut self) {
        self.topology_version += 1;
        self.outbox.push(Action::TopologyChanged {
            counter: self.topology_version,
        });
    }

    fn reset_election_timer(&mut self) {
        let timeout = self.config.settings.election_timeout_millis;
        self.election_deadline_ms = self.now_ms + timeout + self.rng.below(timeout * 15 / 100 + 1);
    }

    /// The state a member rests in when it is not primary.
    fn resting_state(&self) -> MemberState {
        match self.self_member() {
            None => MemberState::Removed,
            Some(member) if member.arbiter_only => MemberState::Arbiter,
            Some(_) => MemberState::Secondary,
        }
    }

    fn self_member(&self) -> Option<&super::config::MemberConfig> {
        self.self_id.and_then(|id| self.config.find_member_by_id(id))
    }

    fn is_arbiter(&self) -> bool {
        self.self_member().is_some_and(|member| member.arbiter_only)
    }

    fn self_priority(&self) -> f64 {
        self.self_member().map_or(0.0, |member| member.priority)
    }

    fn is_lone_voter(&self) -> bool {
        self.config.voting_member_count() == 1 && self.self_member().is_some_and(|member| member.is_electable())
    }

    fn is_frozen(&self) -> bool {
        self.now_ms < self.frozen_until_ms
    }

    /// Whether this member may stand for election now.
    fn can_stand(&self) -> bool {
        self.state == MemberState::Secondary
            && !self.is_frozen()
            && self.candidacy.is_none()
            && self.self_member().is_some_and(|member| member.is_electable())
    }

    fn election_timeout_ms(&self) -> i64 {
        self.config.settings.election_timeout_millis
    }

    /// Rebuilds the member views after a config change, keeping what we knew about surviving members.
    fn adopt_config_members(&mut self) {
        self.self_id = self.config.find_member_by_host(&self.self_host).map(|member| member.id);
        let mut members = BTreeMap::new();
        for member in &self.config.members {
            if Some(member.id) == self.self_id {
                continue;
            }
            // A member new to this config gets one election timeout of grace before it counts as
            // unreachable, as mongod resets member timeouts when it installs a config.
            let view = self.members.remove(&member.id).unwrap_or_else(|| {
                let mut view = MemberView::new(member.id, self.now_ms);
                view.last_contact_ms = Some(self.now_ms);
                view
            });
            members.insert(member.id, view);
        }
        self.members = members;
    }

    /// As a writable primary, clears `newlyAdded` from one member that has reached SECONDARY, with a config
    /// of its own (version + 1), so it votes from then on.
    fn promote_newly_added(&mut self) {
        if !self.is_writable_primary() {
            return;
        }
        let members = &self.members;
        let Some(id) = self.config.next_newly_added_to_promote(|id| {
            members
                .get(&id)
                .is_some_and(|view| view.healthy && view.state == MemberState::Secondary)
        }) else {
            return;
        };
        let mut next = (*self.config).clone();
        next.version += 1;
        next.term = self.term;
        for member in &mut next.members {
            if member.id == id {
                member.newly_added = false;
            }
        }
        self.outbox.push(Action::Log(format!(
            "member {id} reached SECONDARY: it votes from config version {} on (newlyAdded cleared)",
            next.version
        )));
        self.install_config(next);
    }

    /// Switches to `config`: rebuild views, move to REMOVED (or back) as membership demands, tell the shell.
    fn install_config(&mut self, config: ReplSetConfig) {
        let old = std::mem::replace(&mut self.config, Arc::new(config));
        let describe = |from: &ReplSetConfig, to: &ReplSetConfig| -> Vec<String> {
            to.members
                .iter()
                .filter(|m| from.find_member_by_id(m.id).is_none())
                .map(|m| format!("{} ({})", m.host, m.id))
                .collect()
        };
        let added = describe(&old, &self.config);
        let removed = describe(&self.config, &old);
        self.outbox.push(Action::Log(format!(
            "installing config version {} term {} (was version {} term {}); members added: [{}], removed: [{}]",
            self.config.version,
            self.config.term,
            old.version,
            old.term,
            added.join(", "),
            removed.join(", ")
        )));
        self.adopt_config_members();
        self.outbox
            .push(Action::InstallConfig(Box::new((*self.config).clone())));
        self.bump_topology();
        if self.self_id.is_none() {
            self.candidacy = None;
            self.leader_phase = None;
            self.set_primary(None);
            self.set_state(MemberState::Removed);
        } else if self.state == MemberState::Removed || self.state == MemberState::Startup {
            let resting = self.resting_state();
            self.set_state(resting);
        }
        if self
            .primary_id
            .is_some_and(|id| !self.members.contains_key(&id) && Some(id) != self.self_id)
        {
            self.set_primary(None);
        }
    }
}
