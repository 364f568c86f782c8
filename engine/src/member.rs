//! The member's replica-set role at run time: its config, state, term and topology version.
//!
//! This is the async shell around the replica-set types in [`crate::repl`]. A member always runs as a
//! replica-set member: before `replSetInitiate` it answers `hello` as an uninitialised member (drivers call it
//! RSGhost); `rs.initiate()` makes a one-member set whose member becomes PRIMARY. On restart, a member that is
//! the only electable voter of its stored config steps up again in a new term.

use std::sync::Mutex;
use std::time::Duration;

use bson::{Bson, Document, doc, oid::ObjectId};
use tokio::sync::watch;

use crate::error::{Error, Result, code};
use crate::options::NodeOptions;
use crate::repl::{MemberConfig, MemberState, OpTime, ReplSetConfig};
use crate::storage::Storage;

const META_CONFIG: &str = "replset.config";
const META_ELECTION: &str = "replset.election";

/// What the member currently is.
#[derive(Debug, Clone)]
pub struct RoleSnapshot {
    pub config: Option<ReplSetConfig>,
    pub state: MemberState,
    pub term: i64,
    pub self_id: Option<i32>,
    pub election_optime: Option<OpTime>,
    pub election_date: Option<bson::DateTime>,
}

impl RoleSnapshot {
    pub fn self_member(&self) -> Option<&MemberConfig> {
        let config = self.config.as_ref()?;
        config.find_member_by_id(self.self_id?)
    }

    pub fn primary_host(&self) -> Option<String> {
        self.state
            .is_primary()
            .then(|| self.self_member().map(|m| m.host.clone()))
            .flatten()
    }
}

/// The member's replica-set role.
pub struct Member {
    storage: Storage,
    options: NodeOptions,
    role: Mutex<RoleSnapshot>,
    process_id: ObjectId,
    topology: watch::Sender<i64>,
    started: std::time::Instant,
}

impl Member {
    /// Loads the stored config and term; steps up when this member alone decides elections.
    pub async fn start(storage: Storage, options: NodeOptions) -> Result<Member> {
        let config = match storage.read_meta(META_CONFIG)? {
            Some(doc) => Some(ReplSetConfig::parse_document(&doc).map_err(repl_error)?),
            None => None,
        };
        let term = storage
            .read_meta(META_ELECTION)?
            .and_then(|d| d.get_i64("term").ok())
            .unwrap_or(0);
        storage.set_term(term);
        let role = RoleSnapshot {
            self_id: config.as_ref().and_then(|c| find_self(c, &options)),
            state: if config.is_some() {
                MemberState::Secondary
            } else {
                MemberState::Startup
            },
            config,
            term,
            election_optime: None,
            election_date: None,
        };
        let (topology, _) = watch::channel(0);
        let member = Member {
            storage,
            options,
            role: Mutex::new(role),
            process_id: ObjectId::new(),
            topology,
            started: std::time::Instant::now(),
        };
        if member.can_elect_itself() {
            member.step_up().await?;
        }
        Ok(member)
    }

    pub fn role(&self) -> RoleSnapshot {
        self.role
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update_role(&self, f: impl FnOnce(&mut RoleSnapshot)) {
        match self.role.lock() {
            Ok(mut role) => f(&mut role),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
        self.topology.send_modify(|counter| *counter += 1);
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// `{processId, counter}`: drivers compare it to order topology changes.
    pub fn topology_version(&self) -> Document {
        doc! {"processId": self.process_id, "counter": *self.topology.borrow()}
    }

    /// Waits until the topology changes past `counter` (awaitable hello), or the timeout passes.
    pub async fn wait_topology_change(&self, process_id: ObjectId, counter: i64, timeout: Duration) {
        if process_id != self.process_id {
            return;
        }
        let mut rx = self.topology.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|current| *current != counter)).await;
    }

    fn can_elect_itself(&self) -> bool {
        let role = self.role();
        let (Some(config), Some(me)) = (role.config.as_ref(), role.self_member()) else {
            return false;
        };
        me.is_electable() && config.voting_member_count() == 1 && me.is_voter()
    }

    /// Wins the (uncontested) election of a one-voter set: new term, durable vote, new-primary no-op.
    async fn step_up(&self) -> Result<()> {
        let term = self.role().term + 1;
        let self_id = self.role().self_id.unwrap_or(0);
        self.storage.set_term(term);
        let optime = self
            .storage
            .write(true, move |w| {
                w.put_meta(META_ELECTION, &doc! {"term": term, "votedFor": self_id})?;
                w.noop(doc! {"msg": "new primary"})
            })
            .await??;
        self.update_role(|role| {
            role.term = term;
            role.state = MemberState::Primary;
            role.election_optime = Some(optime);
            role.election_date = Some(bson::DateTime::now());
        });
        tracing::info!(term, "transition to PRIMARY");
        Ok(())
    }

    /// `replSetInitiate`: with no config, a one-member set of this member.
    pub async fn initiate(&self, config: Option<&Document>) -> Result<()> {
        if self.role().config.is_some() {
            return Err(Error::new(code::ALREADY_INITIALIZED, "already initialized"));
        }
        let config = match config {
            None => {
                let mut config = ReplSetConfig::new(
                    &self.options.repl_set,
                    vec![MemberConfig::new(0, self.options.self_host())],
                );
                config.settings.replica_set_id = Some(ObjectId::new());
                config
            }
            Some(doc) => {
                let mut config = ReplSetConfig::from_document(doc).map_err(repl_error)?;
                if config.settings.replica_set_id.is_none() {
                    config.settings.replica_set_id = Some(ObjectId::new());
                }
                config
            }
        };
        if config.set_name != self.options.repl_set {
            return Err(Error::new(
                code::INVALID_REPLICA_SET_CONFIG,
                format!(
                    "Attempting to initiate a replica set with name {}, but command line reports {}; rejecting",
                    config.set_name, self.options.repl_set
                ),
            ));
        }
        let Some(self_id) = find_self(&config, &self.options) else {
            return Err(Error::new(
                (74, "NodeNotFound"),
                format!(
                    "No host described in new configuration with version {} for replica set {} maps to this node",
                    config.version, config.set_name
                ),
            ));
        };
        if config.members.len() > 1 {
            return Err(Error::new(
                code::INVALID_REPLICA_SET_CONFIG,
                "this member can only initiate a one-member replica set so far; add members with several \
                 `faultline node` processes once multi-member replication lands",
            ));
        }
        let stored = config.to_document();
        self.storage
            .write(true, move |w| {
                w.put_meta(META_CONFIG, &stored)?;
                w.noop(doc! {"msg": "initiating set"}).map(|_| ())
            })
            .await??;
        self.update_role(|role| {
            role.config = Some(config);
            role.self_id = Some(self_id);
            role.state = MemberState::Secondary;
        });
        tracing::info!("replica set initiated");
        if self.can_elect_itself() {
            self.step_up().await?;
        }
        Ok(())
    }

    /// Fails with NotWritablePrimary (10107) unless this member accepts writes to `db`.
    pub fn check_writable(&self, db: &str) -> Result<()> {
        if db == "local" || self.role().state.is_primary() {
            return Ok(());
        }
        Err(Error::new(code::NOT_WRITABLE_PRIMARY, "not primary")
            .with_extra(doc! {"topologyVersion": self.topology_version()}))
    }

    /// Fails unless this member may serve reads: a primary always; others only when the client allows
    /// secondary reads, and never while in STARTUP2, RECOVERING or ROLLBACK.
    pub fn check_readable(&self, secondary_ok: bool) -> Result<()> {
        let state = self.role().state;
        if state.is_primary() {
            return Ok(());
        }
        if matches!(
            state,
            MemberState::Startup2 | MemberState::Recovering | MemberState::Rollback
        ) {
            return Err(Error::new(
                code::NOT_PRIMARY_OR_SECONDARY,
                "node is not in primary or recovering state",
            )
            .with_extra(doc! {"topologyVersion": self.topology_version()}));
        }
        if secondary_ok {
            return Ok(());
        }
        Err(
            Error::new(code::NOT_PRIMARY_NO_SECONDARY_OK, "not primary and secondaryOk=false")
                .with_extra(doc! {"topologyVersion": self.topology_version()}),
        )
    }

    /// The newest optime known to be majority-committed. In a one-voter set that is what is durable on
    /// this member (writeConcernMajorityJournalDefault).
    pub fn majority_optime(&self) -> OpTime {
        self.storage.positions().last_durable
    }

    /// Waits until `optime` satisfies the write concern. Returns a `writeConcernError` document when it
    /// cannot be satisfied (the write itself stays).
    pub async fn wait_for_write_concern(&self, optime: OpTime, wc: &WriteConcern) -> Option<Document> {
        let role = self.role();
        let data_members = role
            .config
            .as_ref()
            .map(|c| c.members.iter().filter(|m| m.is_data_bearing()).count())
            .unwrap_or(1);
        if let WriteMode::Nodes(n) = wc.w
            && n as usize > data_members.max(1)
        {
            return Some(doc! {"code": 100, "codeName": "UnsatisfiableWriteConcern",
            "errmsg": "Not enough data-bearing nodes", "errInfo": {"writeConcern": wc.to_document()}});
        }
        if let WriteMode::Tag(tag) = &wc.w {
            return Some(doc! {"code": 79, "codeName": "UnknownReplWriteConcern",
            "errmsg": format!("unrecognized getLastError mode: {tag}")});
        }
        let needs_durable = wc.j || matches!(wc.w, WriteMode::Majority);
        if !needs_durable {
            return None;
        }
        let mut positions = self.storage.watch_positions();
        let wait = positions.wait_for(|p| p.last_durable >= optime);
        let outcome = match wc.wtimeout {
            Some(limit) if !limit.is_zero() => tokio::time::timeout(limit, wait).await.ok().map(|r| r.is_ok()),
            _ => Some(wait.await.is_ok()),
        };
        match outcome {
            Some(true) => None,
            Some(false) => Some(doc! {"code": 91, "codeName": "ShutdownInProgress", "errmsg": "shutting down"}),
            None => Some(doc! {"code": 64, "codeName": "WriteConcernTimeout",
            "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": true}}),
        }
    }

    /// The replica-set part of a `hello` reply.
    pub fn hello_fields(&self, legacy: bool) -> Document {
        let role = self.role();
        let primary_flag = if legacy { "ismaster" } else { "isWritablePrimary" };
        let mut out = Document::new();
        let Some(config) = role.config.as_ref() else {
            out.insert(primary_flag, false);
            out.insert("secondary", false);
            out.insert("isreplicaset", true);
            out.insert("info", "Does not have a valid replica set config");
            out.insert("topologyVersion", self.topology_version());
            return out;
        };
        let visible = config.members.iter().filter(|m| !m.hidden);
        let hosts: Vec<Bson> = visible
            .clone()
            .filter(|m| m.priority > 0.0 && !m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        let passives: Vec<Bson> = visible
            .clone()
            .filter(|m| m.priority == 0.0 && !m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        let arbiters: Vec<Bson> = visible
            .filter(|m| m.arbiter_only)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        out.insert("topologyVersion", self.topology_version());
        out.insert("hosts", hosts);
        if !passives.is_empty() {
            out.insert("passives", passives);
        }
        if !arbiters.is_empty() {
            out.insert("arbiters", arbiters);
        }
        out.insert("setName", &config.set_name);
        out.insert("setVersion", config.version);
        out.insert(primary_flag, role.state.is_primary());
        out.insert("secondary", role.state.is_secondary());
        if let Some(primary) = role.primary_host() {
            out.insert("primary", primary);
        }
        if let Some(me) = role.self_member() {
            out.insert("me", &me.host);
            if me.priority == 0.0 && !me.arbiter_only {
                out.insert("passive", true);
            }
            if me.hidden {
                out.insert("hidden", true);
            }
            if me.arbiter_only {
                out.insert("arbiterOnly", true);
            }
            if !me.tags.is_empty() {
                let tags: Document = me
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
                    .collect();
                out.insert("tags", tags);
            }
        }
        if role.state.is_primary() {
            out.insert("electionId", election_id(role.term));
        }
        let positions = self.storage.positions();
        let majority = self.majority_optime();
        out.insert(
            "lastWrite",
            doc! {
                "opTime": positions.last_written.to_document(),
                "lastWriteDate": ts_date(positions.last_written),
                "majorityOpTime": majority.to_document(),
                "majorityWriteDate": ts_date(majority),
            },
        );
        out
    }

    /// `replSetGetConfig`'s `config` document.
    pub fn config_document(&self) -> Result<Document> {
        let role = self.role();
        let config = role.config.ok_or_else(not_yet_initialized)?;
        let mut doc = config.to_document();
        doc.insert("term", role.term);
        Ok(doc)
    }

    /// `replSetGetStatus`.
    pub fn status(&self) -> Result<Document> {
        let role = self.role();
        let config = role.config.as_ref().ok_or_else(not_yet_initialized)?;
        let positions = self.storage.positions();
        let majority = self.majority_optime();
        let now = bson::DateTime::now();
        let mut members = Vec::new();
        for m in &config.members {
            let is_self = Some(m.id) == role.self_id;
            let state = if is_self { role.state } else { MemberState::Unknown };
            let mut entry = doc! {
                "_id": m.id, "name": &m.host, "health": if is_self { 1.0 } else { 0.0 },
                "state": state.code(), "stateStr": state.as_str(),
                "uptime": if is_self { self.uptime().as_secs() as i64 } else { 0 },
                "optime": positions.last_written.to_document(), "optimeDate": ts_date(positions.last_written),
                "optimeDurable": positions.last_durable.to_document(), "optimeDurableDate": ts_date(positions.last_durable),
                "lastAppliedWallTime": ts_date(positions.last_written), "lastDurableWallTime": ts_date(positions.last_durable),
                "syncSourceHost": "", "syncSourceId": -1, "infoMessage": "",
                "configVersion": config.version, "configTerm": role.term, "self": is_self,
                "lastHeartbeatMessage": "",
            };
            if is_self && role.state.is_primary() {
                if let Some(optime) = role.election_optime {
                    entry.insert("electionTime", optime.ts);
                }
                if let Some(date) = role.election_date {
                    entry.insert("electionDate", date);
                }
            }
            members.push(entry);
        }
        let voters = config.voting_member_count() as i32;
        Ok(doc! {
            "set": &config.set_name, "date": now, "myState": role.state.code(), "term": role.term,
            "syncSourceHost": "", "syncSourceId": -1,
            "heartbeatIntervalMillis": config.settings.heartbeat_interval_millis,
            "majorityVoteCount": config.majority_vote_count() as i32,
            "writeMajorityCount": config.write_majority_count() as i32,
            "votingMembersCount": voters, "writableVotingMembersCount": config.data_bearing_voter_count() as i32,
            "optimes": {
                "lastCommittedOpTime": majority.to_document(), "lastCommittedWallTime": ts_date(majority),
                "readConcernMajorityOpTime": majority.to_document(),
                "appliedOpTime": positions.last_written.to_document(), "durableOpTime": positions.last_durable.to_document(),
                "lastAppliedWallTime": ts_date(positions.last_written), "lastDurableWallTime": ts_date(positions.last_durable),
            },
            "members": members,
        })
    }
}

/// MongoDB's electionId: `7fffffff` followed by the 8-byte term.
pub fn election_id(term: i64) -> ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes[4..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

fn ts_date(optime: OpTime) -> bson::DateTime {
    bson::DateTime::from_millis(i64::from(optime.ts.time) * 1000)
}

fn not_yet_initialized() -> Error {
    Error::new(code::NOT_YET_INITIALIZED, "no replset config has been received")
}

fn repl_error(err: crate::repl::ReplError) -> Error {
    Error {
        code: err.code,
        code_name: err.code_name,
        message: err.message,
        labels: Vec::new(),
        extra: None,
    }
}

/// Which member of `config` this process is: a host whose port is ours and whose name is a local address.
fn find_self(config: &ReplSetConfig, options: &NodeOptions) -> Option<i32> {
    let local_names = local_host_names(options);
    config
        .members
        .iter()
        .find(|m| {
            let Some((host, port)) = m.host.rsplit_once(':') else {
                return false;
            };
            port.parse::<u16>().ok() == Some(options.port) && local_names.iter().any(|n| n.eq_ignore_ascii_case(host))
        })
        .map(|m| m.id)
}

fn local_host_names(options: &NodeOptions) -> Vec<String> {
    let mut names: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "::1".into(), "[::1]".into()];
    names.extend(options.bind_ip.iter().cloned());
    if let Ok(hostname) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(hostname.trim().to_string());
    }
    names
}

/// How many members must acknowledge a write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    Nodes(i32),
    Majority,
    Tag(String),
}

/// A parsed `writeConcern` document.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteConcern {
    pub w: WriteMode,
    pub j: bool,
    pub wtimeout: Option<Duration>,
}

impl Default for WriteConcern {
    /// MongoDB's implicit default since 5.0: majority.
    fn default() -> WriteConcern {
        WriteConcern {
            w: WriteMode::Majority,
            j: false,
            wtimeout: None,
        }
    }
}

impl WriteConcern {
    pub fn parse(doc: Option<&Document>) -> Result<WriteConcern> {
        let mut wc = WriteConcern::default();
        let Some(doc) = doc else { return Ok(wc) };
        match doc.get("w") {
            None => {}
            Some(Bson::String(s)) if s == "majority" => wc.w = WriteMode::Majority,
            Some(Bson::String(s)) => wc.w = WriteMode::Tag(s.clone()),
            Some(v) => {
                let n = crate::command::args::as_i64(v)
                    .ok_or_else(|| Error::failed_to_parse("w has to be a number or string"))?;
                if n < 0 {
                    return Err(Error::failed_to_parse("w has to be a non-negative number"));
                }
                wc.w = WriteMode::Nodes(n as i32);
            }
        }
        match doc.get("j") {
            None | Some(Bson::Null) => {}
            Some(Bson::Boolean(b)) => wc.j = *b,
            Some(v) => {
                wc.j = crate::command::args::as_i64(v)
                    .map(|n| n != 0)
                    .ok_or_else(|| Error::type_mismatch("j must be a boolean"))?
            }
        }
        if let Some(v) = doc.get("wtimeout").or_else(|| doc.get("wtimeoutMS")) {
            let ms =
                crate::command::args::as_i64(v).ok_or_else(|| Error::failed_to_parse("wtimeout must be a number"))?;
            wc.wtimeout = (ms > 0).then(|| Duration::from_millis(ms as u64));
        }
        Ok(wc)
    }

    pub fn is_unacknowledged(&self) -> bool {
        self.w == WriteMode::Nodes(0) && !self.j
    }

    pub fn to_document(&self) -> Document {
        let w = match &self.w {
            WriteMode::Nodes(n) => Bson::Int32(*n),
            WriteMode::Majority => Bson::String("majority".into()),
            WriteMode::Tag(t) => Bson::String(t.clone()),
        };
        let mut doc = doc! {"w": w};
        if self.j {
            doc.insert("j", true);
        }
        if let Some(t) = self.wtimeout {
            doc.insert("wtimeout", t.as_millis() as i64);
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_id_grows_with_the_term() {
        assert!(election_id(2).bytes() > election_id(1).bytes());
        assert_eq!(election_id(5).to_hex(), "7fffffff0000000000000005");
    }

    #[test]
    fn write_concern_parses_mongodb_forms() {
        let wc = WriteConcern::parse(Some(&doc! {"w": "majority", "j": true, "wtimeout": 500})).expect("valid");
        assert_eq!(
            wc,
            WriteConcern {
                w: WriteMode::Majority,
                j: true,
                wtimeout: Some(Duration::from_millis(500))
            }
        );
        let wc = WriteConcern::parse(Some(&doc! {"w": 0})).expect("valid");
        assert!(wc.is_unacknowledged());
        assert!(WriteConcern::parse(Some(&doc! {"w": -1})).is_err());
        assert!(WriteConcern::parse(Some(&doc! {"w": true})).is_err());
    }
}
