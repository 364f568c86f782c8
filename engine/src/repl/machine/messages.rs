//! The messages members exchange, as plain Rust values. The shell maps them to and from the BSON commands
//! `replSetHeartbeat`, `replSetRequestVotes` and `replSetUpdatePosition` (MongoDB's field names are noted on
//! each field).

use crate::repl::config::ReplSetConfig;
use crate::repl::optime::OpTime;
use crate::repl::state::MemberState;

/// `replSetHeartbeat` request.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRequest {
    /// `replSetHeartbeat`: the set name.
    pub set_name: String,
    /// `configVersion`.
    pub config_version: i32,
    /// `configTerm`.
    pub config_term: i64,
    /// `fromId`.
    pub sender_id: i32,
    /// `from`: the sender's host.
    pub sender_host: String,
    /// `term`.
    pub term: i64,
    /// `primaryId`: the member the sender takes for primary (-1 on the wire when none).
    pub primary_id: Option<i32>,
}

/// `replSetHeartbeat` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResponse {
    /// `set`.
    pub set_name: String,
    /// `state`.
    pub state: MemberState,
    /// `term`.
    pub term: i64,
    /// The sender's member id (the shell knows it from the connection; carried for simplicity).
    pub sender_id: i32,
    /// `primaryId`: whom the sender believes is primary.
    pub primary_id: Option<i32>,
    /// `electionTime`: when the sender (a primary) was elected, as the optime of its election.
    pub election_optime: Option<OpTime>,
    /// `opTime` / `wallTime`.
    pub applied: OpTime,
    /// `durableOpTime` / `durableWallTime`.
    pub durable: OpTime,
    /// `wallTime` of the applied optime, ms since the epoch.
    pub applied_wall_ms: i64,
    /// `durableWallTime`, ms since the epoch.
    pub durable_wall_ms: i64,
    /// `syncingTo`: the sender's sync source.
    pub sync_source_id: Option<i32>,
    /// `configVersion`.
    pub config_version: i32,
    /// `configTerm`.
    pub config_term: i64,
    /// `config`: included when the requester's config is older.
    pub config: Option<ReplSetConfig>,
    /// `$replData.lastOpCommitted`: the sender's commit point.
    pub commit_point: OpTime,
    /// `electable`: whether the sender could stand for election now (not frozen, electable config).
    pub electable: bool,
    /// `hbmsg`: the sender's own message (its `infoMessage`), shown by the others as `lastHeartbeatMessage`.
    pub message: String,
}

/// `replSetRequestVotes` request.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteRequest {
    /// `setName`.
    pub set_name: String,
    /// `dryRun`: a dry run asks "would you vote for me?" without bumping the term.
    pub dry_run: bool,
    /// `term`: the candidate's current term for a dry run, its new term for a real election.
    pub term: i64,
    /// `candidateIndex` (as a member id).
    pub candidate_id: i32,
    /// `configVersion`.
    pub config_version: i32,
    /// `configTerm`.
    pub config_term: i64,
    /// `lastAppliedOpTime`.
    pub last_applied: OpTime,
}

/// `replSetRequestVotes` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteResponse {
    /// `term`: the voter's term after processing the request.
    pub term: i64,
    /// `voteGranted`.
    pub vote_granted: bool,
    /// `reason`: why the vote was refused (empty when granted).
    pub reason: String,
    /// Echo of the request's `dryRun` and `term`, so a stale reply can be recognised.
    pub dry_run: bool,
    /// The request's term.
    pub request_term: i64,
}

/// One entry of `replSetUpdatePosition.optimes[]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberPosition {
    /// `memberId`.
    pub member_id: i32,
    /// `cfgver`.
    pub config_version: i32,
    /// `appliedOpTime`.
    pub applied: OpTime,
    /// `appliedWallTime`, ms since the epoch.
    pub applied_wall_ms: i64,
    /// `durableOpTime`.
    pub durable: OpTime,
    /// `durableWallTime`, ms since the epoch.
    pub durable_wall_ms: i64,
}

/// What this member persisted about elections (`local.replset.election`): its term and last vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PersistedElectionState {
    /// The current term.
    pub term: i64,
    /// The last vote cast: (term, candidate member id).
    pub last_vote: Option<LastVote>,
}

/// A vote cast in a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastVote {
    /// The term of the vote.
    pub term: i64,
    /// The member voted for.
    pub candidate_id: i32,
}
