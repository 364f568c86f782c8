//! The member's replica-set role at run time: the async shell around [`crate::repl::ReplMachine`].
//!
//! ```text
//!  tick loop (20 ms) ─┐                         ┌─► persist term/vote, config (storage, durable)
//!  storage positions ─┼─► Event ─► ReplMachine ─┼─► send heartbeats / votes / positions (peers)
//!  incoming RPCs ─────┘     (one lock)          ├─► start/stop the oplog fetcher (fetcher.rs)
//!                                               ├─► step-up: drain, write the new-primary no-op
//!                                               └─► role snapshot + watch: hello, write concern, reads
//! ```
//!
//! A member always runs as a replica-set member: before `replSetInitiate` it has no machine and answers
//! `hello` as an uninitialised member (drivers call it RSGhost). A member that receives a heartbeat from an
//! initiated set fetches the set's config from the sender, installs it and initial-syncs (sync.rs).

mod fetcher;
mod hello;
pub mod messages;
mod oplog_cap;
pub mod peers;
mod rpc;
mod sync;
pub mod write_concern;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bson::{Document, doc, oid::ObjectId};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, Result, code};
use crate::failpoint::{ELECT_BY_TIMESTAMP, FailPoints};
use crate::options::NodeOptions;
use crate::repl::machine::{ElectionMetrics, LastVote, PersistedElectionState};
use crate::repl::{Action, Event, MachineStart, MemberState, OpTime, ReplError, ReplMachine, ReplSetConfig};
use crate::storage::Storage;
pub use write_concern::{WriteConcern, WriteMode};

const META_CONFIG: &str = "replset.config";
const META_ELECTION: &str = "replset.election";
const META_INITIAL_SYNC: &str = "replset.initialSyncFlag";
const META_RBID: &str = "replset.rbid";
const TICK: Duration = Duration::from_millis(20);

/// What the member currently is, as one consistent picture (refreshed after every machine event).
#[derive(Debug, Clone)]
pub struct RoleSnapshot {
    pub config: Option<Arc<ReplSetConfig>>,
    pub state: MemberState,
    pub term: i64,
    pub self_id: Option<i32>,
    pub primary_id: Option<i32>,
    pub writable: bool,
    pub commit_point: OpTime,
    pub election: Option<(i64, OpTime)>,
    pub sync_source: Option<i32>,
    /// Bumped on every refresh: waiters re-check their condition.
    pub version: u64,
}

impl RoleSnapshot {
    fn uninitialised() -> RoleSnapshot {
        RoleSnapshot {
            config: None,
            state: MemberState::Startup,
            term: 0,
            self_id: None,
            primary_id: None,
            writable: false,
            commit_point: OpTime::null(),
            election: None,
            sync_source: None,
            version: 0,
        }
    }

    pub fn host_of(&self, id: i32) -> Option<String> {
        self.config.as_ref()?.find_member_by_id(id).map(|m| m.host.clone())
    }

    pub fn self_member(&self) -> Option<&crate::repl::MemberConfig> {
        self.config.as_ref()?.find_member_by_id(self.self_id?)
    }

    pub fn primary_host(&self) -> Option<String> {
        self.host_of(self.primary_id?)
    }
}

/// The member's replica-set role.
pub struct Member {
    me: Weak<Member>,
    storage: Storage,
    options: NodeOptions,
    peers: peers::Peers,
    process_id: ObjectId,
    started: Instant,
    machine: Mutex<Option<ReplMachine>>,
    role: watch::Sender<RoleSnapshot>,
    topology: watch::Sender<i64>,
    election_date: Mutex<Option<bson::DateTime>>,
    step_downs: Mutex<HashMap<u64, oneshot::Sender<std::result::Result<(), ReplError>>>>,
    next_request: AtomicU64,
    fetcher: Mutex<Option<(i32, JoinHandle<()>)>>,
    installing: AtomicBool,
    /// An initial sync is running (only one at a time).
    syncing: AtomicBool,
    /// After a rollback: stay RECOVERING until the oplog reaches this point.
    min_valid: Mutex<Option<OpTime>>,
    /// The member's fail points (shared with the commands).
    failpoints: Arc<FailPoints>,
    /// Fail point `applyOplogOutOfOrder`: batches held back to be applied after newer ones.
    held_batches: Mutex<std::collections::VecDeque<Vec<crate::storage::OplogEntry>>>,
    /// The rollback id (`replSetGetRBID`), kept in memory: every oplog batch served carries it.
    rbid: AtomicI32,
    /// Set once the member met a condition it must not continue past (mongod's fatal assertions); the
    /// server then stops and the process exits abruptly.
    fatal: watch::Sender<Option<String>>,
    /// What the oplog applier applied (`serverStatus.opcountersRepl`).
    pub applied_ops: AppliedOps,
}

/// Oplog entries applied from another member, by kind (`opcountersRepl`; the applier never queries, so
/// `query` and `getmore` stay 0 as on mongod).
#[derive(Debug, Default)]
pub struct AppliedOps {
    pub insert: AtomicU64,
    pub update: AtomicU64,
    pub delete: AtomicU64,
    pub command: AtomicU64,
    /// Entries applied while this member was a new primary catching up (`averageCatchUpOps`).
    pub during_catch_up: AtomicU64,
}

impl AppliedOps {
    /// Adds an applied batch's counts; `catching_up` when this member is a new primary catching up.
    pub fn add(&self, counts: OpCounts, catching_up: bool) {
        if catching_up {
            self.during_catch_up.fetch_add(counts.entries, Ordering::Relaxed);
        }
        self.insert.fetch_add(counts.insert, Ordering::Relaxed);
        self.update.fetch_add(counts.update, Ordering::Relaxed);
        self.delete.fetch_add(counts.delete, Ordering::Relaxed);
        self.command.fetch_add(counts.command, Ordering::Relaxed);
    }
}

/// The entries of one batch by kind (no-ops are not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCounts {
    insert: u64,
    update: u64,
    delete: u64,
    command: u64,
    /// Every entry, no-ops included.
    entries: u64,
}

impl OpCounts {
    pub fn of(batch: &[crate::storage::OplogEntry]) -> OpCounts {
        let mut counts = OpCounts {
            entries: batch.len() as u64,
            ..OpCounts::default()
        };
        for entry in batch {
            match entry.op.kind() {
                Some(crate::storage::OpKind::Insert) => counts.insert += 1,
                Some(crate::storage::OpKind::Update) => counts.update += 1,
                Some(crate::storage::OpKind::Delete) => counts.delete += 1,
                Some(crate::storage::OpKind::Command) => counts.command += 1,
                Some(crate::storage::OpKind::Noop) | None => {}
            }
        }
        counts
    }
}

impl Member {
    /// Loads the stored config, term and vote; with a config, starts the replica-set machinery.
    pub async fn start(
        storage: Storage,
        options: NodeOptions,
        routes: HashMap<String, String>,
        failpoints: Arc<FailPoints>,
    ) -> Result<Arc<Member>> {
        let config = match storage.read_meta(META_CONFIG)? {
            Some(doc) => Some(ReplSetConfig::parse_document(&doc).map_err(repl_error)?),
            None => None,
        };
        oplog_cap::init_max_size(&storage, &options).await?;
        let (role, _) = watch::channel(RoleSnapshot::uninitialised());
        let (topology, _) = watch::channel(0);
        let rbid = stored_rollback_id(&storage);
        let member = Arc::new_cyclic(|me| Member {
            me: me.clone(),
            storage,
            options,
            peers: peers::Peers::new(routes),
            process_id: ObjectId::new(),
            started: Instant::now(),
            machine: Mutex::new(None),
            role,
            topology,
            election_date: Mutex::new(None),
            step_downs: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            fetcher: Mutex::new(None),
            installing: AtomicBool::new(false),
            syncing: AtomicBool::new(false),
            min_valid: Mutex::new(None),
            failpoints,
            held_batches: Mutex::new(std::collections::VecDeque::new()),
            rbid: AtomicI32::new(rbid),
            fatal: watch::channel(None).0,
            applied_ops: AppliedOps::default(),
        });
        member.spawn_oplog_truncation();
        if let Some(config) = config {
            member.install_machine(config)?;
            // An initial sync cut short (its flag still says in progress) starts over; a finished one is kept.
            let unfinished = member
                .storage
                .read_meta(META_INITIAL_SYNC)?
                .is_some_and(|flag| flag.get_bool("inProgress").unwrap_or(true));
            let needs_sync = unfinished || member.storage.positions().last_written.is_null();
            if needs_sync {
                member.spawn_initial_sync();
            }
        }
        Ok(member)
    }

    /// Stops the member for good: logs `message` as fatal and tells the server to shut down.
    pub(crate) fn fail_fatally(&self, message: String) {
        tracing::error!("fatal: {message}");
        self.fatal.send_replace(Some(message));
    }

    /// Completes with the fatal condition's message once [`Member::fail_fatally`] was called.
    pub async fn fatal_condition(&self) -> String {
        let mut rx = self.fatal.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(message) => message.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    fn arc(&self) -> Arc<Member> {
        self.me.upgrade().expect("a member is only used while alive")
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    pub fn role(&self) -> RoleSnapshot {
        self.role.borrow().clone()
    }

    pub fn watch_role(&self) -> watch::Receiver<RoleSnapshot> {
        self.role.subscribe()
    }

    /// `{processId, counter}`: drivers compare it to order topology changes.
    pub fn topology_version(&self) -> Document {
        doc! {"processId": self.process_id, "counter": *self.topology.borrow()}
    }

    fn bump_topology(&self) {
        self.topology.send_modify(|counter| *counter += 1);
    }

    /// Waits until the topology changes past `counter` (awaitable hello), or the timeout passes.
    pub async fn wait_topology_change(&self, process_id: ObjectId, counter: i64, timeout: Duration) {
        if process_id != self.process_id {
            return;
        }
        let mut rx = self.topology.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            let _ = rx.wait_for(|current| *current != counter).await;
        })
        .await;
    }

    /// Creates the machine for `config` and starts the tick and position loops.
    fn install_machine(&self, config: ReplSetConfig) -> Result<()> {
        let persisted = self.read_election_state()?;
        let positions = self.storage.positions();
        let self_host = find_self(&config, &self.options).unwrap_or_else(|| self.options.self_host());
        let start = MachineStart {
            config,
            self_host,
            persisted,
            applied: positions.last_written,
            durable: positions.last_durable,
            commit_point: OpTime::null(),
            seed: u64::from(self.options.port) ^ (self.process_id.timestamp().timestamp_millis() as u64),
        };
        let mut machine = ReplMachine::new(start, self.now_ms());
        machine.set_elect_by_timestamp(self.failpoints.is_on(ELECT_BY_TIMESTAMP));
        {
            let mut slot = self
                .machine
                .lock()
                .map_err(|_| Error::internal("replication state poisoned"))?;
            *slot = Some(machine);
        }
        self.refresh_role();
        self.bump_topology();
        let me = self.arc();
        tokio::spawn(async move { me.tick_loop().await });
        let me = self.arc();
        tokio::spawn(async move { me.position_loop().await });
        Ok(())
    }

    fn read_election_state(&self) -> Result<PersistedElectionState> {
        let Some(doc) = self.storage.read_meta(META_ELECTION)? else {
            return Ok(PersistedElectionState::default());
        };
        let term = doc.get_i64("term").unwrap_or(0);
        let last_vote = doc.get_document("lastVote").ok().and_then(|v| {
            Some(LastVote {
                term: v.get_i64("term").ok()?,
                candidate_id: v.get_i32("candidateId").ok()?,
            })
        });
        Ok(PersistedElectionState { term, last_vote })
    }

    async fn tick_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let actions = self.handle(Event::Tick);
            self.execute(actions).await;
        }
    }

    /// Feeds the machine our own applied and durable optimes as storage advances.
    async fn position_loop(self: Arc<Self>) {
        let mut positions = self.storage.watch_positions();
        let (mut applied, mut durable) = (OpTime::null(), OpTime::null());
        loop {
            let now = *positions.borrow_and_update();
            let mut actions = Vec::new();
            if now.last_written != applied {
                applied = now.last_written;
                actions.extend(self.handle(Event::LocalApplied {
                    optime: applied,
                    wall_ms: crate::clock::now_millis(),
                }));
                self.check_min_valid(applied);
            }
            if now.last_durable != durable {
                durable = now.last_durable;
                actions.extend(self.handle(Event::LocalDurable {
                    optime: durable,
                    wall_ms: crate::clock::now_millis(),
                }));
            }
            self.execute(actions).await;
            if positions.changed().await.is_err() {
                return;
            }
        }
    }

    /// Runs one event through the machine and refreshes the role snapshot. Returns the actions to carry out.
    fn handle(&self, event: Event) -> Vec<Action> {
        let now = self.now_ms();
        let actions = match self.machine.lock() {
            Ok(mut slot) => match slot.as_mut() {
                Some(machine) => machine.handle(now, event),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        self.refresh_role();
        actions
    }

    /// Runs `f` on the machine (reconfig, step-down, ...) and refreshes the role snapshot.
    fn with_machine<T>(&self, f: impl FnOnce(&mut ReplMachine, i64) -> Result<T>) -> Result<T> {
        let now = self.now_ms();
        let result = {
            let mut slot = self
                .machine
                .lock()
                .map_err(|_| Error::internal("replication state poisoned"))?;
            let machine = slot.as_mut().ok_or_else(not_yet_initialized)?;
            f(machine, now)
        };
        self.refresh_role();
        result
    }

    fn refresh_role(&self) {
        let snapshot = match self.machine.lock() {
            Ok(slot) => slot.as_ref().map(|m| RoleSnapshot {
                config: Some(Arc::new(m.config().clone())),
                state: m.state(),
                term: m.term(),
                self_id: m.self_id(),
                primary_id: m.primary_id(),
                writable: m.is_writable_primary(),
                commit_point: m.commit_point(),
                election: m.status().election,
                sync_source: m.sync_source(),
                version: 0,
            }),
            Err(_) => None,
        };
        if let Some(mut snapshot) = snapshot {
            self.role.send_modify(|role| {
                snapshot.version = role.version + 1;
                let unchanged_config = match (&role.config, &snapshot.config) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                if unchanged_config {
                    snapshot.config = role.config.clone();
                }
                *role = snapshot;
            });
        }
    }

    /// Carries out the machine's actions in order; network sends run in the background. (Boxed: actions
    /// lead to tasks that carry out further actions, and a recursive future must have a known size.)
    fn execute(&self, actions: Vec<Action>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for action in actions {
                if let Err(err) = self.execute_one(action).await {
                    tracing::warn!(error = %err, "replication action failed");
                }
            }
        })
    }

    async fn execute_one(&self, action: Action) -> Result<()> {
        if !matches!(action, Action::SendHeartbeat { .. } | Action::ReplyHeartbeat { .. }) {
            tracing::debug!(?action, "replication action");
        }
        match action {
            Action::PersistElectionState(_) => self.persist_election_state().await?,
            Action::SendHeartbeat { to, request } => {
                self.spawn_rpc(to, "heartbeat", messages::heartbeat_request_to_bson(&request))
            }
            Action::SendVoteRequest { to, request } => {
                self.spawn_rpc(to, "vote", messages::vote_request_to_bson(&request))
            }
            Action::SendUpdatePosition { to, positions } => {
                let mut body = messages::update_position_to_bson(&positions);
                body.insert("fromId", self.role().self_id.unwrap_or(-1));
                self.spawn_rpc(to, "position", body)
            }
            Action::SendStepUp { to } => {
                let from = self.role().self_id.unwrap_or(-1);
                self.spawn_rpc(
                    to,
                    "stepup",
                    doc! {"replSetStepUp": 1, "skipDryRun": true, "fromId": from, "$db": "admin"},
                )
            }
            Action::ReplyHeartbeat { .. } | Action::ReplyVote { .. } => {}
            Action::TransitionTo { state } => {
                tracing::info!(state = state.as_str(), term = self.role().term, "member state changed");
                self.bump_topology();
            }
            Action::CompleteStepUp { term } => {
                let me = self.arc();
                tokio::spawn(async move { me.complete_step_up(term).await });
            }
            Action::AcceptWrites { term } => {
                tracing::info!(term, "transition to PRIMARY complete; accepting writes");
                if let Ok(mut date) = self.election_date.lock() {
                    *date = Some(crate::clock::now());
                }
                self.bump_topology();
            }
            Action::CommitPointAdvanced { .. } => {}
            Action::Log(message) => tracing::info!("{message}"),
            Action::TopologyChanged { .. } => self.bump_topology(),
            Action::SyncSourceChanged { member_id } => self.change_sync_source(member_id),
            Action::InstallConfig(config) => {
                let doc = config.to_document();
                self.storage
                    .write(true, move |w| w.put_meta(META_CONFIG, &doc))
                    .await??;
                self.bump_topology();
            }
            Action::StepDownFinished { request_id, result } => {
                if let Some(waiter) = self.step_downs.lock().ok().and_then(|mut m| m.remove(&request_id)) {
                    let _ = waiter.send(result);
                }
            }
        }
        Ok(())
    }

    /// Writes the machine's current term and vote durably (always the newest: persisting is monotonic).
    async fn persist_election_state(&self) -> Result<()> {
        let state = match self.machine.lock() {
            Ok(slot) => slot.as_ref().map(|m| m.persisted_election_state()),
            Err(_) => None,
        };
        let Some(state) = state else { return Ok(()) };
        let mut doc = doc! {"term": state.term};
        if let Some(vote) = state.last_vote {
            doc.insert("lastVote", doc! {"term": vote.term, "candidateId": vote.candidate_id});
        }
        self.storage
            .write(true, move |w| w.put_meta(META_ELECTION, &doc))
            .await?
    }

    /// Sends a command to member `to` in the background and feeds the reply back to the machine.
    fn spawn_rpc(&self, to: i32, purpose: &'static str, body: Document) {
        let Some(host) = self.role().host_of(to) else { return };
        let timeout = self.rpc_timeout();
        let me = self.arc();
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = me.peers.command(&host, purpose, &body, timeout).await;
            let event = match (purpose, reply) {
                ("heartbeat", Ok(reply)) => match messages::heartbeat_response_from_bson(&reply) {
                    Ok(response) => Some(Event::HeartbeatResponse {
                        from: to,
                        response: Box::new(response),
                        rtt_ms: started.elapsed().as_millis() as i64,
                    }),
                    Err(err) => Some(Event::HeartbeatFailed {
                        to,
                        message: err.message,
                    }),
                },
                ("heartbeat", Err(err)) => Some(Event::HeartbeatFailed {
                    to,
                    message: err.message,
                }),
                ("vote", Ok(reply)) => messages::vote_response_from_bson(&reply)
                    .ok()
                    .map(|response| Event::VoteResponse { from: to, response }),
                _ => None,
            };
            if let Some(event) = event {
                let actions = me.handle(event);
                me.execute(actions).await;
            }
        });
    }

    fn rpc_timeout(&self) -> Duration {
        let role = self.role();
        let settings = role.config.as_ref().map(|c| c.settings.clone()).unwrap_or_default();
        Duration::from_millis(settings.election_timeout_millis.clamp(500, 10_000) as u64)
    }

    /// Catch-up is over: stop fetching, write the new-primary no-op in the new term, tell the machine.
    async fn complete_step_up(&self, term: i64) {
        self.stop_fetcher().await;
        self.storage.set_term(term);
        match self.storage.write(false, |w| w.noop(doc! {"msg": "new primary"})).await {
            Ok(Ok(noop)) => {
                let actions = self.handle(Event::StepUpCompleted { term, noop });
                self.execute(actions).await;
            }
            Ok(Err(err)) | Err(err) => tracing::error!(error = %err, "could not write the new-primary no-op"),
        }
    }

    fn change_sync_source(&self, member_id: Option<i32>) {
        let mut slot = match self.fetcher.lock() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        if slot.as_ref().map(|(id, _)| Some(*id)) == Some(member_id) {
            return;
        }
        if let Some((_, handle)) = slot.take() {
            handle.abort();
        }
        if let Some(id) = member_id
            && let Some(host) = self.role().host_of(id)
        {
            tracing::info!(sync_source = %host, "choosing a new sync source");
            let me = self.arc();
            *slot = Some((id, tokio::spawn(async move { me.run_fetcher(id, host).await })));
        }
    }

    async fn stop_fetcher(&self) {
        let handle = self.fetcher.lock().ok().and_then(|mut slot| slot.take());
        if let Some((_, handle)) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }

    fn check_min_valid(&self, applied: OpTime) {
        let reached = match self.min_valid.lock() {
            Ok(mut min) => match *min {
                Some(target) if applied >= target => {
                    *min = None;
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if reached {
            let actions = self.handle(Event::FollowerStateChanged {
                state: MemberState::Secondary,
            });
            let me = self.arc();
            tokio::spawn(async move { me.execute(actions).await });
        }
    }

    // ---- what commands ask -------------------------------------------------------------------------

    /// Fails with NotWritablePrimary (10107) unless this member accepts writes to `db`.
    pub fn check_writable(&self, db: &str) -> Result<()> {
        if db == "local" || self.role().writable {
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

    /// Fail point `electByTimestamp` switched at run time: tell the machine's voter rules.
    pub fn set_elect_by_timestamp(&self, on: bool) {
        if let Ok(mut slot) = self.machine.lock()
            && let Some(machine) = slot.as_mut()
        {
            machine.set_elect_by_timestamp(on);
        }
    }

    /// The replication machine's election metrics (all zero before the set is initiated).
    pub fn election_metrics(&self) -> ElectionMetrics {
        match self.machine.lock() {
            Ok(slot) => slot.as_ref().map(|m| m.election_metrics().clone()).unwrap_or_default(),
            Err(_) => ElectionMetrics::default(),
        }
    }

    /// Whether this member has been primary since it started (it may have been deposed since).
    pub fn has_been_primary(&self) -> bool {
        self.election_date.lock().is_ok_and(|date| date.is_some())
    }

    /// The newest optime known to be majority-committed.
    pub fn majority_optime(&self) -> OpTime {
        let role = self.role();
        if role.config.is_none() {
            self.storage.positions().last_durable
        } else {
            role.commit_point
        }
    }

    /// Waits until the majority commit point this member knows satisfies `reached` (majority reads and
    /// `afterClusterTime` on any member). Before initiation the commit point is what is durable here.
    pub async fn wait_committed(&self, reached: impl Fn(OpTime) -> bool) -> Result<()> {
        if self.role().config.is_none() {
            let _ = self.storage.flush().await;
        }
        let mut roles = self.role.subscribe();
        let mut positions = self.storage.watch_positions();
        loop {
            if reached(self.majority_optime()) {
                return Ok(());
            }
            tokio::select! {
                changed = roles.changed() => if changed.is_err() { break },
                changed = positions.changed() => if changed.is_err() { break },
            }
        }
        Err(Error::new(code::SHUTDOWN_IN_PROGRESS, "shutting down"))
    }

    /// Waits until `optime` (written while this member was primary in the current term) satisfies the
    /// write concern. Returns a `writeConcernError` document when it cannot (the write itself stays).
    pub async fn wait_for_write_concern(&self, optime: OpTime, wc: &WriteConcern) -> Option<Document> {
        let role = self.role();
        // Before initiation there is nothing to wait for: the write is as replicated as it can be.
        let config = role.config.clone()?;
        let data_members = config.members.iter().filter(|m| m.is_data_bearing()).count();
        match &wc.w {
            WriteMode::Nodes(n) if *n as usize > data_members => {
                return Some(doc! {"code": 100, "codeName": "UnsatisfiableWriteConcern",
                "errmsg": "Not enough data-bearing nodes", "errInfo": {"writeConcern": wc.to_document()}});
            }
            WriteMode::Tag(tag) => {
                return Some(doc! {"code": 79, "codeName": "UnknownReplWriteConcern",
                "errmsg": format!("unrecognized getLastError mode: {tag}")});
            }
            _ => {}
        }
        // Journal now rather than at the next interval when durability is part of the answer.
        let journal_majority = config.write_concern_majority_journal_default && wc.w == WriteMode::Majority;
        if (wc.j || journal_majority) && self.storage.positions().last_durable < optime {
            let _ = self.storage.flush().await;
        }
        let term = role.term;
        let mut positions = self.storage.watch_positions();
        let mut roles = self.role.subscribe();
        let wait = async {
            loop {
                let role = roles.borrow_and_update().clone();
                if role.term != term || !role.state.is_primary() {
                    // Interrupted by a state change (MongoDB's InterruptedDueToReplStateChange): the write may
                    // or may not survive, and drivers treat the code as a state change.
                    return Some(doc! {"code": 11602, "codeName": "InterruptedDueToReplStateChange",
                    "errmsg": "the primary stepped down while waiting for replication"});
                }
                if self.write_concern_satisfied(optime, wc, &role) {
                    return None;
                }
                tokio::select! {
                    changed = roles.changed() => if changed.is_err() { break },
                    changed = positions.changed() => if changed.is_err() { break },
                }
            }
            Some(doc! {"code": 91, "codeName": "ShutdownInProgress", "errmsg": "shutting down"})
        };
        match wc.wtimeout {
            Some(limit) => tokio::time::timeout(limit, wait).await.unwrap_or_else(|_| {
                Some(doc! {"code": 64, "codeName": "WriteConcernTimeout",
                "errmsg": "waiting for replication timed out", "errInfo": {"wtimeout": true}})
            }),
            None => wait.await,
        }
    }

    fn write_concern_satisfied(&self, optime: OpTime, wc: &WriteConcern, role: &RoleSnapshot) -> bool {
        let local = self.storage.positions();
        if wc.j && local.last_durable < optime {
            return false;
        }
        match wc.w {
            WriteMode::Majority => role.commit_point >= optime,
            WriteMode::Nodes(n) if n <= 1 => true,
            WriteMode::Nodes(n) => {
                let status = match self.machine.lock() {
                    Ok(slot) => slot.as_ref().map(|m| m.status()),
                    Err(_) => None,
                };
                let Some(status) = status else { return false };
                let caught_up = status
                    .members
                    .iter()
                    .filter(|m| if wc.j { m.durable >= optime } else { m.applied >= optime })
                    .count();
                caught_up >= n as usize
            }
            WriteMode::Tag(_) => false,
        }
    }

    /// The `$replData` a sync source sends with oplog batches: its term, commit point, newest entry, rollback
    /// id and primary.
    pub fn repl_data(&self) -> Document {
        let role = self.role();
        let last = self.storage.positions().last_written;
        let mut data = doc! {"term": role.term, "lastOpCommitted": role.commit_point.to_document(),
        "lastOpApplied": last.to_document(), "rbid": self.rollback_id()};
        if let Some(primary) = role.primary_id {
            data.insert("primaryIndex", primary);
        }
        if let Some(id) = role.self_id {
            data.insert("memberId", id);
        }
        data
    }

    /// `replSetInitiate`: with no config, a one-member set of this member.
    pub async fn initiate(&self, config: Option<&Document>) -> Result<()> {
        if self.role().config.is_some() || self.installing.load(Ordering::SeqCst) {
            return Err(Error::new(code::ALREADY_INITIALIZED, "already initialized"));
        }
        let mut config = match config {
            None => ReplSetConfig::new(
                &self.options.repl_set,
                vec![crate::repl::MemberConfig::new(0, self.options.self_host())],
            ),
            Some(doc) => {
                // rs.initiate({_id, members}) as the tutorials write it: the version defaults to 1.
                let mut doc = doc.clone();
                if !doc.contains_key("version") {
                    doc.insert("version", 1);
                }
                ReplSetConfig::from_document(&doc).map_err(repl_error)?
            }
        };
        if config.settings.replica_set_id.is_none() {
            config.settings.replica_set_id = Some(ObjectId::new());
        }
        if config.set_name != self.options.repl_set {
            return Err(Error::new(
                code::INVALID_REPLICA_SET_CONFIG,
                format!(
                    "Attempting to initiate a replica set with name {}, but command line reports {}; rejecting",
                    config.set_name, self.options.repl_set
                ),
            ));
        }
        if find_self(&config, &self.options).is_none() {
            return Err(Error::new(
                (74, "NodeNotFound"),
                format!(
                    "No host described in new configuration with version {} for replica set {} maps to this node",
                    config.version, config.set_name
                ),
            ));
        }
        let stored = config.to_document();
        self.storage
            .write(true, move |w| {
                w.put_meta(META_CONFIG, &stored)?;
                w.noop(doc! {"msg": "initiating set"}).map(|_| ())
            })
            .await??;
        self.install_machine(config)?;
        tracing::info!("replica set initiated");
        Ok(())
    }

    /// The stored replica-set config as `replSetGetConfig` shows it.
    pub fn config_document(&self) -> Result<Document> {
        let role = self.role();
        // Exactly as installed: members compare (version, term) of their configs, so a joining member must get
        // the very config the others hold.
        let config = role.config.ok_or_else(not_yet_initialized)?;
        Ok(config.to_document())
    }

    fn rollback_id(&self) -> i32 {
        self.rbid.load(Ordering::SeqCst)
    }

    /// Records a rollback's new id (after it is stored).
    fn set_rollback_id(&self, rbid: i32) {
        self.rbid.store(rbid, Ordering::SeqCst);
    }
}

/// The rollback id stored by the last rollback (1 before any).
fn stored_rollback_id(storage: &Storage) -> i32 {
    storage
        .read_meta(META_RBID)
        .ok()
        .flatten()
        .and_then(|d| d.get_i32("rbid").ok())
        .unwrap_or(1)
}

/// MongoDB's electionId: `7fffffff` followed by the 8-byte term.
pub fn election_id(term: i64) -> ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes[4..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

fn not_yet_initialized() -> Error {
    Error::new(code::NOT_YET_INITIALIZED, "no replset config has been received")
}

pub(crate) fn repl_error(err: ReplError) -> Error {
    Error {
        code: err.code,
        code_name: err.code_name,
        message: err.message,
        labels: Vec::new(),
        extra: None,
    }
}

/// This process's `host` in `config`: a member whose port is ours and whose name is a local address.
fn find_self(config: &ReplSetConfig, options: &NodeOptions) -> Option<String> {
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
        .map(|m| m.host.clone())
}

fn local_host_names(options: &NodeOptions) -> Vec<String> {
    let mut names: Vec<String> = vec!["127.0.0.1".into(), "localhost".into(), "::1".into(), "[::1]".into()];
    names.extend(options.bind_ip.iter().cloned());
    if let Ok(hostname) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(hostname.trim().to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_id_grows_with_the_term() {
        assert!(election_id(2).bytes() > election_id(1).bytes());
        assert_eq!(election_id(5).to_hex(), "7fffffff0000000000000005");
    }
}
