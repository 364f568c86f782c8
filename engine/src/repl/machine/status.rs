//! `ReplStatus`: a snapshot of everything `replSetGetStatus` and `hello` report, taken from the machine
//! without changing it. The shell renders it with MongoDB's field names (noted on each field).

use super::{LeaderPhase, ReplMachine};
use crate::repl::optime::OpTime;
use crate::repl::state::MemberState;

/// One entry of `replSetGetStatus.members[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    /// `_id`.
    pub id: i32,
    /// `name`: the config host.
    pub host: String,
    /// `health`: true → 1, false → 0.
    pub healthy: bool,
    /// `state` / `stateStr`.
    pub state: MemberState,
    /// `optime`.
    pub applied: OpTime,
    /// `optimeDurable`.
    pub durable: OpTime,
    /// `optimeDate`, ms since the epoch.
    pub applied_wall_ms: i64,
    /// `optimeDurableDate`, ms since the epoch.
    pub durable_wall_ms: i64,
    /// `lastHeartbeat` (others only).
    pub last_heartbeat_ms: Option<i64>,
    /// `lastHeartbeatRecv` (others only).
    pub last_heartbeat_recv_ms: Option<i64>,
    /// `pingMs` (others only).
    pub ping_ms: Option<i64>,
    /// `lastHeartbeatMessage`.
    pub last_heartbeat_message: String,
    /// `syncSourceId` (-1 in MongoDB when none).
    pub sync_source_id: Option<i32>,
    /// `electionTime` / `electionDate` source: the optime at which this member was elected, if primary.
    pub election_optime: Option<OpTime>,
    /// `configVersion`.
    pub config_version: i32,
    /// `configTerm`.
    pub config_term: i64,
    /// `self`.
    pub is_self: bool,
}

/// The whole-member snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplStatus {
    /// `set`.
    pub set_name: String,
    /// `myState`.
    pub state: MemberState,
    /// `term`.
    pub term: i64,
    /// This member's `_id`, if it is in the config.
    pub self_id: Option<i32>,
    /// The member believed to be primary (`hello.primary`).
    pub primary_id: Option<i32>,
    /// `hello.isWritablePrimary`.
    pub writable_primary: bool,
    /// `syncSourceId` / `syncSourceHost`.
    pub sync_source_id: Option<i32>,
    /// `optimes.lastCommittedOpTime` (and `readConcernMajorityOpTime`).
    pub commit_point: OpTime,
    /// `optimes.appliedOpTime`.
    pub applied: OpTime,
    /// `optimes.durableOpTime`.
    pub durable: OpTime,
    /// `electionDate` (ms) and `electionCandidateMetrics.electionOpTime`, when this member is primary.
    pub election: Option<(i64, OpTime)>,
    /// `topologyVersion.counter`.
    pub topology_version: i64,
    /// `setVersion` / `configVersion`.
    pub config_version: i32,
    /// `configTerm`.
    pub config_term: i64,
    /// `heartbeatIntervalMillis`.
    pub heartbeat_interval_millis: i64,
    /// `majorityVoteCount`.
    pub majority_vote_count: usize,
    /// `writeMajorityCount`.
    pub write_majority_count: usize,
    /// `votingMembersCount`.
    pub voting_members_count: usize,
    /// `writableVotingMembersCount`.
    pub writable_voting_members_count: usize,
    /// When the member stops being frozen, if it is frozen.
    pub frozen_until_ms: Option<i64>,
    /// `members[]`, in config order, self included.
    pub members: Vec<MemberStatus>,
    /// `infoMessage` of our own entry (e.g. mongod's RS102 when we are too stale to catch up).
    pub info_message: String,
}

impl ReplMachine {
    /// A snapshot for `replSetGetStatus` and `hello`.
    pub fn status(&self) -> ReplStatus {
        ReplStatus {
            set_name: self.config.set_name.clone(),
            state: self.state,
            term: self.term,
            self_id: self.self_id,
            primary_id: self.primary_id,
            writable_primary: self.state.is_primary() && self.leader_phase == Some(LeaderPhase::Writable),
            sync_source_id: self.sync_source,
            commit_point: self.commit_point,
            applied: self.applied,
            durable: self.durable,
            election: self.election.filter(|_| self.state.is_primary()),
            topology_version: self.topology_version,
            config_version: self.config.version,
            config_term: self.config.term,
            heartbeat_interval_millis: self.config.settings.heartbeat_interval_millis,
            majority_vote_count: self.config.majority_vote_count(),
            write_majority_count: self.config.write_majority_count(),
            voting_members_count: self.config.voting_member_count(),
            writable_voting_members_count: self.config.data_bearing_voter_count(),
            frozen_until_ms: self.frozen_until_ms(),
            members: self
                .config
                .members
                .iter()
                .map(|member| self.member_status(member))
                .collect(),
            info_message: self.info_message().to_string(),
        }
    }

    fn member_status(&self, member: &crate::repl::config::MemberConfig) -> MemberStatus {
        if Some(member.id) == self.self_id {
            return MemberStatus {
                id: member.id,
                host: member.host.clone(),
                healthy: true,
                state: self.state,
                applied: self.applied,
                durable: self.durable,
                applied_wall_ms: self.applied_wall_ms,
                durable_wall_ms: self.durable_wall_ms,
                last_heartbeat_ms: None,
                last_heartbeat_recv_ms: None,
                ping_ms: None,
                last_heartbeat_message: String::new(),
                sync_source_id: self.sync_source,
                election_optime: self
                    .election
                    .filter(|_| self.state.is_primary())
                    .map(|(_, optime)| optime),
                config_version: self.config.version,
                config_term: self.config.term,
                is_self: true,
            };
        }
        let fallback;
        let view = match self.members.get(&member.id) {
            Some(view) => view,
            None => {
                fallback = super::MemberView::new(member.id, self.now_ms);
                &fallback
            }
        };
        MemberStatus {
            id: member.id,
            host: member.host.clone(),
            healthy: view.healthy,
            state: view.state,
            applied: view.applied,
            durable: view.durable,
            applied_wall_ms: view.applied_wall_ms,
            durable_wall_ms: view.durable_wall_ms,
            last_heartbeat_ms: view.last_heartbeat_ms,
            last_heartbeat_recv_ms: view.last_heartbeat_recv_ms,
            ping_ms: view.ping_ms,
            last_heartbeat_message: view.last_heartbeat_message.clone(),
            sync_source_id: view.sync_source_id,
            election_optime: view.election_optime,
            config_version: view.config_version,
            config_term: view.config_term,
            is_self: false,
        }
    }
}
