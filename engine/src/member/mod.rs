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
//!
//! Parts, one job each, each owning its state. This file is the driver: [`Member`] owns the machine, runs
//! the event loop, carries out actions, publishes the role snapshot, and composes the other parts:
//! - the replicator (`fetcher`, with its `applier`) tails the sync source's oplog and applies it;
//! - the syncer (`sync`) joins a set, runs initial sync and rollback, and keeps the rollback id (the machine
//!   decides the states and checks the common point);
//! - the presenter (`hello`) renders `hello`, `replSetGetStatus`, `$replData` and the topology version.
//!
//! The replicator and the syncer reach the driver only through a [`handle::DriverHandle`] (role snapshot,
//! feed an event, judge a common point, install a config, fail fatally). Beside them: `rpc` answers the
//! replica-set commands; `gate` answers what commands ask (writable, readable, write-concern waits);
//! `commit_point` persists the commit point; `oplog_cap` keeps the oplog under its size; `network` is the
//! interface to the peers (TCP `peers` in production, `crate::sim` under simulation).

mod applier;
mod commit_point;
mod fetcher;
mod gate;
mod handle;
mod hello;
pub mod messages;
mod min_valid;
pub mod network;
mod oplog_cap;
pub mod peers;
mod rpc;
mod sync;
pub mod write_concern;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bson::{Document, doc, oid::ObjectId};
use tokio::sync::{oneshot, watch};
// The runtime's clock, not the system's: the machine's time and RPC round trips follow a simulated clock too.
use tokio::time::Instant;

use crate::error::{Error, Result, code};
use crate::failpoint::{ELECT_BY_TIMESTAMP, FailPoints};
use crate::options::NodeOptions;
use crate::repl::machine::{ElectionMetrics, LastVote, PersistedElectionState};
use crate::repl::{Action, Event, MachineStart, MemberState, OpTime, ReplError, ReplMachine, ReplSetConfig};
use crate::storage::{Storage, ts_to_u64};
pub use applier::{AppliedOps, OpCounts};
use fetcher::Replicator;
use handle::DriverHandle;
use hello::Presenter;
use sync::Syncer;
pub use write_concern::{WriteConcern, WriteMode};

const META_CONFIG: &str = "replset.config";
const META_ELECTION: &str = "replset.election";
const META_INITIAL_SYNC: &str = "replset.initialSyncFlag";
const META_RBID: &str = "replset.rbid";
/// A rollback that began changing data and has not finished (`{inProgress, commonPoint}`).
const META_ROLLBACK: &str = "replset.rollbackInProgress";
const META_COMMIT_POINT: &str = "replset.commitPoint";
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
    /// The machine's count of member position changes ([`ReplMachine::position_changes`]).
    pub position_changes: u64,
    /// Bumped whenever the snapshot changes: waiters re-check their condition.
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
            position_changes: 0,
            version: 0,
        }
    }

    /// Whether two snapshots say the same (the version aside; configs compare by identity, as the machine
    /// replaces its config rather than changing it).
    fn same_as(&self, other: &RoleSnapshot) -> bool {
        let same_config = match (&self.config, &other.config) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_config
            && self.state == other.state
            && self.term == other.term
            && self.self_id == other.self_id
            && self.primary_id == other.primary_id
            && self.writable == other.writable
            && self.commit_point == other.commit_point
            && self.election == other.election
            && self.sync_source == other.sync_source
            && self.position_changes == other.position_changes
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

    /// How long a round trip to a peer may take: the election timeout, within 0.5 s to 10 s.
    pub fn rpc_timeout(&self) -> Duration {
        let settings = self.config.as_ref().map(|c| c.settings.clone()).unwrap_or_default();
        Duration::from_millis(settings.election_timeout_millis.clamp(500, 10_000) as u64)
    }
}

/// The member's replica-set role: the driver of the machine, composing the replicator, the syncer and the
/// presenter.
pub struct Member {
    me: Weak<Member>,
    storage: Storage,
    options: NodeOptions,
    /// The network to the other members (TCP in production, in-process under simulation).
    peers: Arc<dyn network::PeerNetwork>,
    /// The machine's clock starts here.
    started: Instant,
    machine: Mutex<Option<ReplMachine>>,
    role: watch::Sender<RoleSnapshot>,
    step_downs: Mutex<HashMap<u64, oneshot::Sender<std::result::Result<(), ReplError>>>>,
    next_request: AtomicU64,
    /// The member's fail points (shared with the commands).
    failpoints: Arc<FailPoints>,
    /// Set once the member met a condition it must not continue past (mongod's fatal assertions); the
    /// server then stops and the process exits abruptly.
    fatal: watch::Sender<Option<String>>,
    /// Persists the majority commit point as it advances.
    commit_point: commit_point::CommitPointRecorder,
    /// Fetches the sync source's oplog and applies it.
    replicator: Arc<Replicator>,
    /// Joins the set, runs initial sync and rollback.
    syncer: Arc<Syncer>,
    /// Renders status.
    presenter: Presenter,
    /// Every background task of the member (loops, fetcher, RPCs), stopped together by a simulated kill.
    tasks: crate::tasks::Tasks,
    /// Per member we report positions to: the newest `replSetUpdatePosition` body, sent by a reporter task
    /// that has at most one in flight (reports made meanwhile collapse into the newest one).
    position_reports: Mutex<HashMap<i32, watch::Sender<Option<Document>>>>,
    /// Writes running here whose write concern counts other members' durable positions (`$replData`'s
    /// `durableAwaited`).
    durable_waiters: AtomicUsize,
}

/// A write counted by [`Member::await_durable_members`].
pub struct DurableWaiter<'a>(&'a AtomicUsize);

impl Drop for DurableWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Member {
    /// Loads the stored config, term and vote; with a config, starts the replica-set machinery. Peers are
    /// reached over TCP, through `routes` where given.
    pub async fn start(
        storage: Storage,
        options: NodeOptions,
        routes: HashMap<String, String>,
        failpoints: Arc<FailPoints>,
    ) -> Result<Arc<Member>> {
        Member::start_on(storage, options, Arc::new(peers::Peers::new(routes)), failpoints).await
    }

    /// [`Member::start`] on any network to the peers (the simulation's in-process one).
    pub async fn start_on(
        storage: Storage,
        options: NodeOptions,
        peers: Arc<dyn network::PeerNetwork>,
        failpoints: Arc<FailPoints>,
    ) -> Result<Arc<Member>> {
        let config = match storage.read_meta(META_CONFIG)? {
            Some(doc) => Some(ReplSetConfig::parse_document(&doc).map_err(repl_error)?),
            None => None,
        };
        oplog_cap::init_max_size(&storage, &options).await?;
        let (role, _) = watch::channel(RoleSnapshot::uninitialised());
        let commit_point = commit_point::CommitPointRecorder::start(storage.clone());
        let started = Instant::now();
        let presenter = Presenter::new(ObjectId::new(), started, role.subscribe(), storage.clone());
        let tasks = crate::tasks::Tasks::default();
        let member = Arc::new_cyclic(|me| {
            let driver = DriverHandle::new(me.clone(), role.subscribe(), tasks.clone());
            let applier = Arc::new(applier::Applier::new(
                storage.clone(),
                failpoints.clone(),
                role.subscribe(),
                &tasks,
            ));
            let syncer = Syncer::new(
                storage.clone(),
                options.clone(),
                peers.clone(),
                failpoints.clone(),
                driver.clone(),
                applier.clone(),
            );
            let replicator = Replicator::new(
                storage.clone(),
                peers.clone(),
                failpoints.clone(),
                driver,
                applier,
                syncer.clone(),
            );
            Member {
                me: me.clone(),
                storage,
                options,
                peers,
                started,
                machine: Mutex::new(None),
                role,
                step_downs: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
                failpoints,
                fatal: watch::channel(None).0,
                commit_point,
                replicator,
                syncer,
                presenter,
                tasks,
                position_reports: Mutex::new(HashMap::new()),
                durable_waiters: AtomicUsize::new(0),
            }
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
                member.syncer.spawn_initial_sync();
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

    /// The fatal condition's message, once [`Member::fail_fatally`] was called.
    pub fn fatal_message(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    fn arc(&self) -> Arc<Member> {
        self.me.upgrade().expect("a member is only used while alive")
    }

    /// Ends every background task of the member at once, as the death of its process does (simulation).
    pub fn kill(&self) {
        self.tasks.stop_all();
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn uptime(&self) -> Duration {
        self.presenter.uptime()
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
        self.presenter.topology_version()
    }

    /// Waits until the topology changes past `counter` (awaitable hello), or the timeout passes.
    pub async fn wait_topology_change(&self, process_id: ObjectId, counter: i64, timeout: Duration) {
        self.presenter.wait_topology_change(process_id, counter, timeout).await
    }

    /// The replica-set part of a `hello` reply.
    pub fn hello_fields(&self, legacy: bool) -> Document {
        self.presenter.hello_fields(legacy)
    }

    /// `replSetGetStatus`.
    pub fn status(&self) -> Result<Document> {
        let (status, writable_since_ms) = {
            let slot = self
                .machine
                .lock()
                .map_err(|_| Error::internal("replication state poisoned"))?;
            let machine = slot.as_ref().ok_or_else(not_yet_initialized)?;
            (machine.status(), machine.writable_since_ms())
        };
        self.presenter.status(status, writable_since_ms, self.now_ms())
    }

    /// The `$replData` a sync source sends with oplog batches: its term, commit point, newest entry, rollback
    /// id and primary.
    pub fn repl_data(&self) -> Document {
        let mut data = self.presenter.repl_data(self.syncer.rollback_id());
        if self.durable_waiters.load(Ordering::SeqCst) > 0 || self.replicator.source_awaits_durable() {
            // Faultline's own field, absent otherwise (mongod sends no such thing): a write here (or on the
            // sync source, for members that sync from this one) waits for members' durable positions, so the
            // fetching member fsyncs the batch at once, starting it before it applies the batch
            // (`storage::EncodedBatch::awaited`); other batches are fsynced within the journal interval.
            data.insert("durableAwaited", true);
        }
        data
    }

    /// Counts a write whose write concern waits for other members' durable positions, until the guard is
    /// dropped; sync sources tell their fetchers while any is counted ([`Member::repl_data`]). Counted before
    /// the write commits, so every batch that carries its entry says so.
    pub fn await_durable_members(&self) -> DurableWaiter<'_> {
        self.durable_waiters.fetch_add(1, Ordering::SeqCst);
        DurableWaiter(&self.durable_waiters)
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
        self.machine
            .lock()
            .is_ok_and(|slot| slot.as_ref().is_some_and(|m| m.writable_since_ms().is_some()))
    }

    /// What the oplog applier applied (`serverStatus.opcountersRepl`).
    pub fn applied_ops(&self) -> &AppliedOps {
        self.replicator.applied_ops()
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
            commit_point: commit_point::stored_commit_point(&self.storage),
            data: self.syncer.start_data(),
            // The member's wall clock, not the process id's random part: a simulated member draws the same
            // election timeouts on every replay.
            seed: u64::from(self.options.port) ^ (self.storage.clock().now_millis() as u64),
        };
        let machine = ReplMachine::new(start, self.now_ms());
        {
            let mut slot = self
                .machine
                .lock()
                .map_err(|_| Error::internal("replication state poisoned"))?;
            *slot = Some(machine);
        }
        self.refresh_role();
        let me = self.arc();
        self.tasks.spawn(async move { me.tick_loop().await });
        let me = self.arc();
        self.tasks.spawn(async move { me.position_loop().await });
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
            tracing::trace!(
                target: "write_path",
                ts = ts_to_u64(now.last_written.ts),
                durable_ts = ts_to_u64(now.last_durable.ts),
                "positions.seen"
            );
            let mut actions = Vec::new();
            if now.last_written != applied {
                applied = now.last_written;
                actions.extend(self.handle(Event::LocalApplied {
                    optime: applied,
                    wall_ms: entry_wall_or_now(now.last_written_wall_ms, self.storage.clock()),
                }));
            }
            if now.last_durable != durable {
                durable = now.last_durable;
                actions.extend(self.handle(Event::LocalDurable {
                    optime: durable,
                    wall_ms: entry_wall_or_now(now.last_durable_wall_ms, self.storage.clock()),
                }));
            }
            self.execute(latest_position_sends(actions)).await;
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
                Some(machine) => {
                    self.sync_fail_points(machine);
                    machine.handle(now, event)
                }
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
            self.sync_fail_points(machine);
            f(machine, now)
        };
        self.refresh_role();
        result
    }

    /// The fail points that change the machine's rules are read from [`FailPoints`] (their one home) before
    /// every machine call, so a `configureFailPoint` takes effect at the next event.
    fn sync_fail_points(&self, machine: &mut ReplMachine) {
        machine.set_elect_by_timestamp(self.failpoints.is_on(ELECT_BY_TIMESTAMP));
    }

    /// Mirrors the machine into the role snapshot and the topology counter (the machine owns both). Runs after
    /// every machine event, so it copies nothing but an `Arc` of the config and wakes the snapshot's waiters
    /// only when something in it changed.
    fn refresh_role(&self) {
        let mirrored = match self.machine.lock() {
            Ok(slot) => slot.as_ref().map(|m| {
                let snapshot = RoleSnapshot {
                    config: Some(m.shared_config()),
                    state: m.state(),
                    term: m.term(),
                    self_id: m.self_id(),
                    primary_id: m.primary_id(),
                    writable: m.is_writable_primary(),
                    commit_point: m.commit_point(),
                    election: m.election(),
                    sync_source: m.sync_source(),
                    position_changes: m.position_changes(),
                    version: 0,
                };
                (snapshot, m.topology_version())
            }),
            Err(_) => None,
        };
        let Some((mut snapshot, counter)) = mirrored else {
            return;
        };
        self.presenter.mirror_topology(counter);
        self.role.send_if_modified(|role| {
            if snapshot.same_as(role) {
                return false;
            }
            snapshot.version = role.version + 1;
            *role = snapshot;
            true
        });
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
            Action::SendUpdatePosition { to, term, positions } => {
                if let Some(mine) = positions.first() {
                    tracing::trace!(
                        target: "write_path",
                        ts = ts_to_u64(mine.applied.ts),
                        durable_ts = ts_to_u64(mine.durable.ts),
                        "position.send"
                    );
                }
                let mut body = messages::update_position_to_bson(term, &positions);
                body.insert("fromId", self.role().self_id.unwrap_or(-1));
                self.report_position(to, body)
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
            }
            Action::CompleteStepUp { term } => {
                let me = self.arc();
                self.tasks.spawn(async move { me.complete_step_up(term).await });
            }
            Action::AcceptWrites { term } => {
                tracing::info!(term, "transition to PRIMARY complete; accepting writes");
            }
            Action::CommitPointAdvanced { optime } => {
                tracing::trace!(target: "write_path", ts = ts_to_u64(optime.ts), "commit_point.advanced");
                self.commit_point.record(optime)
            }
            Action::Log(message) => tracing::info!("{message}"),
            // Mirrored by `refresh_role` after every machine call.
            Action::TopologyChanged { .. } => {}
            Action::SyncSourceChanged { member_id } => self.replicator.change_sync_source(member_id),
            Action::InstallConfig(config) => {
                let doc = config.to_document();
                self.storage
                    .write(true, move |w| w.put_meta(META_CONFIG, &doc))
                    .await??;
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
    /// Hands `body` (a `replSetUpdatePosition`) to the reporter of member `to`, starting it on first use. The
    /// reporter sends one report at a time, always the newest: under load a secondary's applied and durable
    /// positions of several batches reach the primary as one report, not one per change.
    fn report_position(&self, to: i32, body: Document) {
        let Ok(mut reporters) = self.position_reports.lock() else {
            return;
        };
        if let Some(reporter) = reporters.get(&to)
            && !reporter.is_closed()
        {
            reporter.send_replace(Some(body));
            return;
        }
        let (reporter, mut newest) = watch::channel(Some(body));
        newest.mark_changed();
        reporters.insert(to, reporter);
        let me = self.me.clone();
        self.tasks.spawn(async move {
            while newest.changed().await.is_ok() {
                let body = newest.borrow_and_update().clone();
                let Some(member) = me.upgrade() else { return };
                let role = member.role();
                let (Some(body), Some(host)) = (body, role.host_of(to)) else {
                    continue;
                };
                let _ = member.peers.send(&host, "position", &body, role.rpc_timeout()).await;
            }
        });
    }

    fn spawn_rpc(&self, to: i32, purpose: &'static str, body: Document) {
        let Some(host) = self.role().host_of(to) else { return };
        let timeout = self.role().rpc_timeout();
        let me = self.arc();
        self.tasks.spawn(async move {
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

    /// Catch-up is over: stop fetching, write the new-primary no-op in the new term, tell the machine.
    async fn complete_step_up(&self, term: i64) {
        self.replicator.stop_fetcher().await;
        self.storage.set_term(term);
        match self.storage.write(false, |w| w.noop(doc! {"msg": "new primary"})).await {
            Ok(Ok(noop)) => {
                let actions = self.handle(Event::StepUpCompleted { term, noop });
                self.execute(actions).await;
            }
            Ok(Err(err)) | Err(err) => tracing::error!(error = %err, "could not write the new-primary no-op"),
        }
    }
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
    let hostname = crate::host::name();
    if !hostname.is_empty() {
        names.push(hostname);
    }
    names
}

/// The wall time reported for a position (`lastAppliedWallTime`, `lastDurableWallTime`): the entry's own
/// `wall`, as mongod reports it, so that a member's reported lag is the primary's entry against its own; the
/// member's clock when the entry's is unknown (after a rollback, until the next entry).
fn entry_wall_or_now(entry_wall_ms: i64, clock: &crate::clock::Clock) -> i64 {
    if entry_wall_ms > 0 {
        entry_wall_ms
    } else {
        clock.now_millis()
    }
}

/// Drops every `SendUpdatePosition` that a later one in `actions` to the same member supersedes (each
/// carries every position the machine knows, so the last is enough): one report when a batch's applied and
/// durable optimes move together.
fn latest_position_sends(actions: Vec<Action>) -> Vec<Action> {
    let mut reported = std::collections::BTreeSet::new();
    let mut kept: Vec<Action> = actions
        .into_iter()
        .rev()
        .filter(|action| match action {
            Action::SendUpdatePosition { to, .. } => reported.insert(*to),
            _ => true,
        })
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test member's options (with a small oplog) and its storage, in `dir`.
    fn test_node(dir: &std::path::Path, port: u16) -> (NodeOptions, Storage) {
        let options = NodeOptions {
            port,
            dbpath: dir.to_path_buf(),
            oplog_size_mb: Some(1),
            ..NodeOptions::default()
        };
        (options, Storage::open(dir).expect("open storage"))
    }

    /// Item 9 of issue #13: `MachineStart.commit_point` is restored from storage, so a restarted member
    /// knows what was majority-committed before it hears from anyone.
    #[tokio::test]
    async fn the_commit_point_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (options, storage) = test_node(dir.path(), 27999);
        let committed = {
            let failpoints = Arc::new(FailPoints::default());
            let member = Member::start(storage.clone(), options.clone(), HashMap::new(), failpoints)
                .await
                .expect("start");
            member.initiate(None).await.expect("initiate");
            let mut roles = member.watch_role();
            tokio::time::timeout(Duration::from_secs(10), roles.wait_for(|r| r.writable))
                .await
                .expect("the lone member becomes a writable primary in time")
                .expect("role channel open");
            let written = storage
                .write(true, |w| w.noop(doc! {"msg": "after election"}))
                .await
                .expect("writer")
                .expect("noop");
            tokio::time::timeout(Duration::from_secs(10), roles.wait_for(|r| r.commit_point >= written))
                .await
                .expect("the write is majority-committed in time")
                .expect("role channel open");
            let mut stored = None;
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    stored = storage
                        .read_meta(META_COMMIT_POINT)
                        .ok()
                        .flatten()
                        .and_then(|d| OpTime::from_document(&d).ok());
                    if stored.is_some_and(|s| s >= written) {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the commit point is persisted in time");
            stored.expect("persisted")
        };
        // A second member over the same store stands for the restarted process (the first one's tasks keep
        // running, but this current-thread runtime does not run them before the assertion).
        let restarted = Member::start(storage, options, HashMap::new(), Arc::new(FailPoints::default()))
            .await
            .expect("restart");
        assert_eq!(restarted.role().commit_point, committed, "the restored commit point");
    }

    /// `$replData` says `durableAwaited` exactly while a write here or on the sync source waits for members'
    /// durable positions, and is mongod's otherwise.
    #[tokio::test]
    async fn repl_data_says_while_writes_wait_for_durable_members() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (options, storage) = test_node(dir.path(), 27998);
        let member = Member::start(storage, options, HashMap::new(), Arc::new(FailPoints::default()))
            .await
            .expect("start");
        let awaited = |m: &Member| m.repl_data().get_bool("durableAwaited").ok();
        assert_eq!(awaited(&member), None, "no waiter: the field is absent");
        let first = member.await_durable_members();
        let second = member.await_durable_members();
        assert_eq!(awaited(&member), Some(true));
        drop(first);
        assert_eq!(awaited(&member), Some(true), "one write still waits");
        drop(second);
        assert_eq!(awaited(&member), None, "the last waiter is gone");
        member.replicator.source_awaits_durable.store(true, Ordering::SeqCst);
        assert_eq!(
            awaited(&member),
            Some(true),
            "a write on the sync source waits: members that sync from this one hear of it"
        );
    }

    /// A batch whose applied and durable optimes move together is reported once, with the newer positions.
    #[test]
    fn only_the_latest_position_report_per_member_is_sent() {
        let send = |to: i32, n: usize| Action::SendUpdatePosition {
            to,
            term: 1,
            positions: vec![
                crate::repl::machine::MemberPosition {
                    member_id: to,
                    config_version: 1,
                    applied: OpTime::null(),
                    applied_wall_ms: 0,
                    durable: OpTime::null(),
                    durable_wall_ms: 0,
                };
                n
            ],
        };
        let actions = vec![send(1, 1), Action::Log("between".into()), send(2, 1), send(1, 2)];
        let kept = latest_position_sends(actions);
        let shape: Vec<String> = kept
            .iter()
            .map(|action| match action {
                Action::SendUpdatePosition { to, positions, .. } => format!("send {to}:{}", positions.len()),
                Action::Log(message) => message.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(shape, ["between", "send 2:1", "send 1:2"]);
    }

    #[test]
    fn election_id_grows_with_the_term() {
        assert!(election_id(2).bytes() > election_id(1).bytes());
        assert_eq!(election_id(5).to_hex(), "7fffffff0000000000000005");
    }
}
