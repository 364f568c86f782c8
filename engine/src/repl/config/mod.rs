//! `ReplSetConfig`: the replica-set configuration document (`replSetInitiate`, `replSetReconfig`,
//! `replSetGetConfig`, `local.system.replset`) as typed Rust, with MongoDB's defaults and the counting helpers
//! the election and commit-point rules need.
//!
//! Parsing and writing BSON live in `document.rs`; MongoDB's validity rules (code 93) and the safe-reconfig
//! rules (code 103) live in `validate.rs`.

mod document;
mod validate;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bson::oid::ObjectId;

use super::optime::UNINITIALIZED_TERM;

/// Most members a set may have.
pub const MAX_MEMBERS: usize = 50;
/// Most voting members a set may have.
pub const MAX_VOTING_MEMBERS: usize = 7;
/// Highest allowed member priority.
pub const MAX_PRIORITY: f64 = 1000.0;
/// Longest allowed `secondaryDelaySecs` (366 days, as in MongoDB).
pub const MAX_SECONDARY_DELAY_SECS: i64 = 366 * 24 * 3600;

/// One entry of `members[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    /// `_id`: the member's stable id (non-negative).
    pub id: i32,
    /// `host`: "hostname:port", exactly as clients dial it.
    pub host: String,
    /// `priority`: 0..=1000; 0 means never primary. Default 1 (0 for arbiters).
    pub priority: f64,
    /// `votes`: 0 or 1. Default 1.
    pub votes: i32,
    /// `arbiterOnly`: votes but holds no data.
    pub arbiter_only: bool,
    /// `hidden`: invisible to clients (`hello.hosts`), priority must be 0.
    pub hidden: bool,
    /// `secondaryDelaySecs`: apply the oplog this much behind; priority must be 0 when > 0.
    pub secondary_delay_secs: i64,
    /// `buildIndexes`: false only for priority-0 members.
    pub build_indexes: bool,
    /// `tags`: string → string, used by `getLastErrorModes` and read preferences.
    pub tags: BTreeMap<String, String>,
    /// `newlyAdded`: a voter added by a reconfig that does not vote (nor count toward any majority) until it
    /// has reached SECONDARY; the primary then clears the flag with a config of its own. Set by the server,
    /// never by users, and hidden from `replSetGetConfig` (MongoDB 4.4+).
    pub newly_added: bool,
}

impl MemberConfig {
    /// A data-bearing voting member with MongoDB's defaults.
    pub fn new(id: i32, host: impl Into<String>) -> Self {
        Self {
            id,
            host: host.into(),
            priority: 1.0,
            votes: 1,
            arbiter_only: false,
            hidden: false,
            secondary_delay_secs: 0,
            build_indexes: true,
            tags: BTreeMap::new(),
            newly_added: false,
        }
    }

    /// An arbiter with MongoDB's defaults (priority 0, one vote).
    pub fn arbiter(id: i32, host: impl Into<String>) -> Self {
        Self {
            priority: 0.0,
            arbiter_only: true,
            ..Self::new(id, host)
        }
    }

    /// Whether the member has a vote now (a `newlyAdded` member does not, yet).
    pub fn is_voter(&self) -> bool {
        self.votes > 0 && !self.newly_added
    }

    /// Whether the member holds data (everything but arbiters).
    pub fn is_data_bearing(&self) -> bool {
        !self.arbiter_only
    }

    /// Whether the member may ever stand for election: a data-bearing voter with priority above 0.
    pub fn is_electable(&self) -> bool {
        self.is_data_bearing() && self.is_voter() && self.priority > 0.0
    }
}

/// The `settings` sub-document.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplSetSettings {
    /// `heartbeatIntervalMillis` (default 2000).
    pub heartbeat_interval_millis: i64,
    /// `heartbeatTimeoutSecs` (default 10): no reply for this long marks a member DOWN.
    pub heartbeat_timeout_secs: i64,
    /// `electionTimeoutMillis` (default 10000).
    pub election_timeout_millis: i64,
    /// `catchUpTimeoutMillis` (default -1 = unlimited; 0 disables catch-up).
    pub catch_up_timeout_millis: i64,
    /// `catchUpTakeoverDelayMillis` (default 30000; -1 disables catch-up takeover).
    pub catch_up_takeover_delay_millis: i64,
    /// `chainingAllowed` (default true): secondaries may sync from other secondaries.
    pub chaining_allowed: bool,
    /// `replicaSetId`: chosen once at initiate, never changed by a reconfig.
    pub replica_set_id: Option<ObjectId>,
    /// `getLastErrorModes`: mode name → (tag name → number of distinct tag values required).
    pub get_last_error_modes: BTreeMap<String, BTreeMap<String, i32>>,
}

impl Default for ReplSetSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_millis: 2000,
            heartbeat_timeout_secs: 10,
            election_timeout_millis: 10_000,
            catch_up_timeout_millis: -1,
            catch_up_takeover_delay_millis: 30_000,
            chaining_allowed: true,
            replica_set_id: None,
            get_last_error_modes: BTreeMap::new(),
        }
    }
}

/// A replica-set configuration (protocol version 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplSetConfig {
    /// `_id`: the set name.
    pub set_name: String,
    /// `version`: increases with every reconfig.
    pub version: i32,
    /// `term`: the term in which the config was written (-1 for a forced reconfig or when absent).
    pub term: i64,
    /// `protocolVersion`: always 1.
    pub protocol_version: i64,
    /// `writeConcernMajorityJournalDefault` (default true): majority means majority-durable.
    pub write_concern_majority_journal_default: bool,
    /// `members`.
    pub members: Vec<MemberConfig>,
    /// `settings`.
    pub settings: ReplSetSettings,
}

/// The (version, term) pair MongoDB uses to decide which of two configs is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigVersionAndTerm {
    /// The config `version`.
    pub version: i32,
    /// The config `term`; -1 means "compare by version only".
    pub term: i64,
}

impl PartialOrd for ConfigVersionAndTerm {
    /// Term first, then version; when either term is -1 (forced reconfig), versions alone decide.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.term == UNINITIALIZED_TERM || other.term == UNINITIALIZED_TERM {
            Some(self.version.cmp(&other.version))
        } else {
            Some((self.term, self.version).cmp(&(other.term, other.version)))
        }
    }
}

impl ReplSetConfig {
    /// A config with default settings, version 1 and no term yet. Not validated.
    pub fn new(set_name: impl Into<String>, members: Vec<MemberConfig>) -> Self {
        Self {
            set_name: set_name.into(),
            version: 1,
            term: UNINITIALIZED_TERM,
            protocol_version: 1,
            write_concern_majority_journal_default: true,
            members,
            settings: ReplSetSettings::default(),
        }
    }

    /// The (version, term) of this config.
    pub fn version_and_term(&self) -> ConfigVersionAndTerm {
        ConfigVersionAndTerm {
            version: self.version,
            term: self.term,
        }
    }

    /// Members that have a vote.
    pub fn voting_members(&self) -> impl Iterator<Item = &MemberConfig> {
        self.members.iter().filter(|member| member.is_voter())
    }

    /// How many members have a vote.
    pub fn voting_member_count(&self) -> usize {
        self.voting_members().count()
    }

    /// How many voters hold data (`writableVotingMembersCount`).
    pub fn data_bearing_voter_count(&self) -> usize {
        self.voting_members().filter(|member| member.is_data_bearing()).count()
    }

    /// Votes needed to win an election (`majorityVoteCount`): a strict majority of voters.
    pub fn majority_vote_count(&self) -> usize {
        self.voting_member_count() / 2 + 1
    }

    /// Members that must have an optime for it to be majority-committed (`writeMajorityCount`):
    /// min(majority of voters, data-bearing voters). Arbiters never count.
    pub fn write_majority_count(&self) -> usize {
        self.majority_vote_count().min(self.data_bearing_voter_count())
    }

    /// The member whose `host` is exactly `host`.
    pub fn find_member_by_host(&self, host: &str) -> Option<&MemberConfig> {
        self.members.iter().find(|member| member.host == host)
    }

    /// The member whose `_id` is `id`.
    pub fn find_member_by_id(&self, id: i32) -> Option<&MemberConfig> {
        self.members.iter().find(|member| member.id == id)
    }

    /// Marks the voters that this config adds to `old` as `newlyAdded` and keeps the flag on members that
    /// still carry it in `old` (users reconfigure from `rs.conf()`, which hides it). Arbiters need no sync
    /// and never get it.
    pub fn mark_newly_added(&mut self, old: &ReplSetConfig) {
        for member in &mut self.members {
            member.newly_added = match old.find_member_by_id(member.id) {
                Some(previous) => previous.newly_added && member.votes > 0,
                None => member.votes > 0 && !member.arbiter_only,
            };
        }
    }

    /// The member that next loses its `newlyAdded` flag, given which members have reached SECONDARY.
    pub fn next_newly_added_to_promote(&self, is_secondary: impl Fn(i32) -> bool) -> Option<i32> {
        self.members
            .iter()
            .find(|member| member.newly_added && is_secondary(member.id))
            .map(|member| member.id)
    }

    /// Whether `host` is a voter in this config.
    pub fn is_voter_host(&self, host: &str) -> bool {
        self.find_member_by_host(host).is_some_and(MemberConfig::is_voter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psa() -> ReplSetConfig {
        ReplSetConfig::new(
            "rs0",
            vec![
                MemberConfig::new(0, "a:1"),
                MemberConfig::new(1, "b:1"),
                MemberConfig::arbiter(2, "c:1"),
            ],
        )
    }

    #[test]
    fn majorities_of_three_voters() {
        let config = psa();
        assert_eq!(config.voting_member_count(), 3);
        assert_eq!(config.majority_vote_count(), 2);
        assert_eq!(config.write_majority_count(), 2);
    }

    #[test]
    fn arbiters_do_not_count_toward_write_majority() {
        let mut config = psa();
        config.members.push(MemberConfig::arbiter(3, "d:1"));
        config.members.push(MemberConfig::arbiter(4, "e:1"));
        // 5 voters → 3 votes to win, but only 2 data-bearing voters can hold a write.
        assert_eq!(config.majority_vote_count(), 3);
        assert_eq!(config.data_bearing_voter_count(), 2);
        assert_eq!(config.write_majority_count(), 2);
    }

    #[test]
    fn non_voters_are_ignored_by_majorities() {
        let mut config = psa();
        config.members.push(MemberConfig {
            votes: 0,
            priority: 0.0,
            ..MemberConfig::new(3, "d:1")
        });
        assert_eq!(config.voting_member_count(), 3);
        assert_eq!(config.majority_vote_count(), 2);
    }

    #[test]
    fn member_lookup_by_host_and_id() {
        let config = psa();
        assert_eq!(config.find_member_by_host("b:1").map(|member| member.id), Some(1));
        assert!(config.find_member_by_host("b:2").is_none());
        assert_eq!(
            config.find_member_by_id(2).map(|member| member.arbiter_only),
            Some(true)
        );
        assert!(config.is_voter_host("c:1"));
    }

    #[test]
    fn electability() {
        assert!(MemberConfig::new(0, "a:1").is_electable());
        assert!(!MemberConfig::arbiter(0, "a:1").is_electable());
        assert!(
            !MemberConfig {
                priority: 0.0,
                ..MemberConfig::new(0, "a:1")
            }
            .is_electable()
        );
    }

    #[test]
    fn version_and_term_ordering() {
        let older = ConfigVersionAndTerm { version: 5, term: 2 };
        let newer_term = ConfigVersionAndTerm { version: 3, term: 3 };
        let forced = ConfigVersionAndTerm {
            version: 6,
            term: UNINITIALIZED_TERM,
        };
        assert!(older < newer_term);
        assert!(older < forced);
        assert!(forced > newer_term);
    }

    #[test]
    fn added_voters_are_newly_added_until_promoted() {
        let old = ReplSetConfig::new("rs", vec![MemberConfig::new(0, "a:1")]);
        let mut next = ReplSetConfig::new(
            "rs",
            vec![
                MemberConfig::new(0, "a:1"),
                MemberConfig::new(1, "b:1"),
                MemberConfig::arbiter(2, "c:1"),
            ],
        );
        next.mark_newly_added(&old);
        assert!(!next.members[0].newly_added, "existing members keep voting");
        assert!(
            next.members[1].newly_added,
            "a new data-bearing voter waits for SECONDARY"
        );
        assert!(!next.members[2].newly_added, "arbiters need no sync");
        assert_eq!(next.voting_member_count(), 2);
        assert_eq!(next.majority_vote_count(), 2);
        // A user reconfig built from rs.conf() (which hides the flag) keeps it.
        let mut again = ReplSetConfig::new(
            "rs",
            next.members
                .iter()
                .cloned()
                .map(|mut m| {
                    m.newly_added = false;
                    m
                })
                .collect(),
        );
        again.mark_newly_added(&next);
        assert!(again.members[1].newly_added);
        assert_eq!(next.next_newly_added_to_promote(|id| id == 1), Some(1));
        assert_eq!(next.next_newly_added_to_promote(|_| false), None);
    }
}
