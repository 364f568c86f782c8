//! The machine's interface: `Event`s in, `Action`s out. Everything that happens to a member is an event;
//! everything the member wants done is an action the shell carries out **in order**.

use super::messages::{
    HeartbeatRequest, HeartbeatResponse, MemberPosition, PersistedElectionState, VoteRequest, VoteResponse,
};
use crate::repl::config::ReplSetConfig;
use crate::repl::error::ReplError;
use crate::repl::optime::OpTime;
use crate::repl::state::MemberState;

/// Something that happened to this member. Time comes with every call to `ReplMachine::handle`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Time passed: run timers (heartbeats, election timeout, takeovers, step-down checks).
    Tick,
    /// A `replSetHeartbeat` arrived from member `from`.
    HeartbeatRequest { from: i32, request: HeartbeatRequest },
    /// Our heartbeat to `from` was answered after `rtt_ms`.
    HeartbeatResponse {
        from: i32,
        response: Box<HeartbeatResponse>,
        rtt_ms: i64,
    },
    /// Our heartbeat to `to` failed or timed out.
    HeartbeatFailed { to: i32, message: String },
    /// A `replSetRequestVotes` arrived from member `from`.
    VoteRequest { from: i32, request: VoteRequest },
    /// A vote reply arrived from member `from`.
    VoteResponse { from: i32, response: VoteResponse },
    /// A `replSetUpdatePosition` arrived (from a member syncing from us).
    /// `term` is the reporter's term (`$replData.term`; `None` from a sender that did not say).
    UpdatePosition {
        from: i32,
        term: Option<i64>,
        positions: Vec<MemberPosition>,
    },
    /// Our oplog applier advanced `lastApplied`.
    LocalApplied { optime: OpTime, wall_ms: i64 },
    /// Our journal made `optime` durable.
    LocalDurable { optime: OpTime, wall_ms: i64 },
    /// The oplog fetcher got metadata from our sync source: its term, its commit point, the primary it knows.
    SyncSourceMetadata {
        from: i32,
        term: i64,
        commit_point: OpTime,
        primary_id: Option<i32>,
    },
    /// The shell finished `Action::CompleteStepUp`: the buffer is drained and the new-primary no-op written.
    StepUpCompleted { term: i64, noop: OpTime },
    /// `replSetStepUp` from the old primary: stand now, skipping the dry run.
    StepUpRequested { from: i32 },
    /// The shell starts an initial sync (the member has no data to serve): STARTUP2 until it finishes.
    InitialSyncStarted,
    /// Initial sync finished: SECONDARY.
    InitialSyncFinished,
    /// The oplog fetcher found our history diverged from the sync source's: ROLLBACK while the shell looks
    /// for the common point (checked with `ReplMachine::check_rollback_common_point`) and undoes our suffix.
    RollbackStarted,
    /// The shell rolled our oplog back to `common_point`: applied and durable optimes move back to it, and
    /// the member stays RECOVERING until its applied optime reaches `min_valid` (the sync source's newest
    /// optime when the rollback ended: before it, our data may be inconsistent), then SECONDARY.
    RolledBack { common_point: OpTime, min_valid: OpTime },
    /// The rollback stopped before it changed any data (the source became unreachable, say): leave ROLLBACK
    /// for SECONDARY (RECOVERING while an earlier rollback's min-valid is not reached) and try again later.
    RollbackAbandoned,
    /// The oplog fetcher looked at member `from`'s oplog: `too_stale` when its oldest entry is newer than our
    /// newest (we fell off its oplog), false when it holds our newest entry.
    SyncSourceProbed { from: i32, too_stale: bool },
    /// The oplog fetcher found that member `from`, our sync source, has nothing newer than our newest entry.
    SyncSourceBehind { from: i32 },
}

/// Something the shell must do. Actions are ordered: a `PersistElectionState` must be durable before any action
/// that follows it is carried out (no vote or vote request may leave before the vote is on disk).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Durably store term and last vote (`local.replset.election`) before the actions after this one.
    PersistElectionState(PersistedElectionState),
    /// Send a `replSetHeartbeat` to member `to`.
    SendHeartbeat { to: i32, request: HeartbeatRequest },
    /// Answer member `to`'s heartbeat.
    ReplyHeartbeat { to: i32, response: Box<HeartbeatResponse> },
    /// Send a vote request (dry run or real) to member `to`.
    SendVoteRequest { to: i32, request: VoteRequest },
    /// Answer member `to`'s vote request.
    ReplyVote { to: i32, response: VoteResponse },
    /// Send `replSetUpdatePosition` to our sync source `to`.
    /// `term` is ours, sent as `$replData.term`: a primary that learns of a newer term from it steps down
    /// instead of counting the positions toward its commit point.
    SendUpdatePosition {
        to: i32,
        term: i64,
        positions: Vec<MemberPosition>,
    },
    /// Send `replSetStepUp` to member `to` (hand-over after a step-down).
    SendStepUp { to: i32 },
    /// The member's state changed. On leaving PRIMARY the shell interrupts operations (11602) and stops
    /// accepting writes; on becoming PRIMARY it keeps fetching (catch-up) until `CompleteStepUp`.
    TransitionTo { state: MemberState },
    /// Catch-up is over: stop fetching, drain the apply buffer, write the new-primary no-op in `term`, then
    /// report `Event::StepUpCompleted`.
    CompleteStepUp { term: i64 },
    /// Writes are now accepted (`isWritablePrimary: true`) in `term`.
    AcceptWrites { term: i64 },
    /// The majority commit point moved forward: the shell persists it (it seeds `MachineStart.commit_point`
    /// after a restart).
    CommitPointAdvanced { optime: OpTime },
    /// `topologyVersion.counter` changed; wake awaitable `hello` waiters.
    TopologyChanged { counter: i64 },
    /// Start (or stop, with `None`) fetching from this sync source.
    SyncSourceChanged { member_id: Option<i32> },
    /// A newer config arrived through heartbeats: persist it to `local.system.replset`.
    InstallConfig(Box<ReplSetConfig>),
    /// Something the operator should read in the log: why the state changed, who voted, what a reconfig did.
    Log(String),
    /// A pending `replSetStepDown` finished.
    StepDownFinished {
        request_id: u64,
        result: Result<(), ReplError>,
    },
}
