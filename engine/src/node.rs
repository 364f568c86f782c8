//! One running member: its storage, wall clock, replica-set role, cursors and fail points, shared by all
//! connections; plus what `serverStatus` and `currentOp` report about it (counters, connections, operations
//! in flight).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bson::Document;

use crate::clock::Clock;
use crate::cursor::CursorRegistry;
use crate::error::Result;
use crate::failpoint::FailPoints;
use crate::member::Member;
use crate::options::NodeOptions;
use crate::options::QueryParameters;
use crate::storage::Storage;

/// Counters reported by `serverStatus`.
#[derive(Default)]
pub struct Counters {
    pub connections_current: AtomicI64,
    pub connections_total: AtomicI64,
    pub commands: AtomicU64,
    pub inserts: AtomicU64,
    pub queries: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    pub getmores: AtomicU64,
    /// `network`: bytes of request and reply messages, and requests read.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub requests: AtomicU64,
    /// `asserts`: `regular` (commands failed with an internal error) and `user` (commands failed otherwise).
    pub asserts_regular: AtomicU64,
    pub asserts_user: AtomicU64,
    /// `opLatencies`: total microseconds and operations, per class.
    pub latency: [Latency; 3],
}

/// The `opLatencies` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    Reads = 0,
    Writes = 1,
    Commands = 2,
}

/// Total latency and count of one `opLatencies` class.
#[derive(Default)]
pub struct Latency {
    pub micros: AtomicU64,
    pub ops: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// One request message of `bytes` (header included) was read.
    pub fn note_request(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One reply message of `bytes` was written.
    pub fn note_reply(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Records one operation of `class` that took `micros`.
    pub fn record_latency(&self, class: OpClass, micros: u64) {
        let slot = &self.latency[class as usize];
        slot.micros.fetch_add(micros, Ordering::Relaxed);
        slot.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A client connection as `currentOp` lists it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub peer: SocketAddr,
    pub connected_at: Instant,
    /// The `client` document of the connection's handshake (`clientMetadata`), once it sent one.
    pub metadata: Option<Document>,
}

/// A command being executed right now.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub opid: u64,
    pub conn: i64,
    pub started: Instant,
    /// The command as it arrived (`currentOp` leaves out a write's statements when it shows it).
    pub command: Arc<Document>,
    pub db: String,
}

/// Connections and the operations running on them (`currentOp`); a lock held only to insert, remove or copy.
#[derive(Default)]
pub struct Activity {
    clients: Mutex<HashMap<i64, ClientInfo>>,
    ops: Mutex<HashMap<u64, InFlight>>,
    next_opid: AtomicU64,
}

impl Activity {
    pub fn connected(&self, id: i64, peer: SocketAddr) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(
                id,
                ClientInfo {
                    peer,
                    connected_at: Instant::now(),
                    metadata: None,
                },
            );
        }
    }

    pub fn disconnected(&self, id: i64) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(&id);
        }
    }

    /// Remembers the handshake's `client` document (first one wins, as mongod keeps it).
    pub fn set_metadata(&self, id: i64, metadata: &Document) {
        if let Ok(mut clients) = self.clients.lock()
            && let Some(client) = clients.get_mut(&id)
            && client.metadata.is_none()
        {
            client.metadata = Some(metadata.clone());
        }
    }

    /// Registers a command that starts now; the guard removes it when dropped.
    pub fn begin(&self, conn: i64, db: &str, command: Arc<Document>) -> OpGuard<'_> {
        let opid = self.next_opid.fetch_add(1, Ordering::Relaxed) + 1;
        let op = InFlight {
            opid,
            conn,
            started: Instant::now(),
            command,
            db: db.to_string(),
        };
        if let Ok(mut ops) = self.ops.lock() {
            ops.insert(opid, op);
        }
        OpGuard { activity: self, opid }
    }

    /// Copies of every connection and every operation in flight.
    pub fn snapshot(&self) -> (HashMap<i64, ClientInfo>, Vec<InFlight>) {
        let clients = self.clients.lock().map(|c| c.clone()).unwrap_or_default();
        let ops = self
            .ops
            .lock()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default();
        (clients, ops)
    }
}

/// Removes its operation from the registry when the command finishes (or its future is dropped).
pub struct OpGuard<'a> {
    activity: &'a Activity,
    opid: u64,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut ops) = self.activity.ops.lock() {
            ops.remove(&self.opid);
        }
    }
}

/// The runtime client queries run on (finds, aggregations, counts, dbHash...): its own threads, so a heavy
/// scan or sort can never hold up the connections, heartbeats, elections and oplog fetching that run on the
/// server's runtime. Shut down in the background when the node goes away (a runtime may not be dropped
/// inside another's async context).
pub struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> Result<QueryRuntime> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("query")
            .thread_stack_size(crate::depth::WORKER_STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| crate::error::Error::internal(format!("cannot start the query runtime: {e}")))?;
        Ok(QueryRuntime(Some(runtime)))
    }

    /// The runtime's handle, for spawning a query.
    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Everything a command can reach.
pub struct Node {
    pub storage: Storage,
    pub member: std::sync::Arc<Member>,
    pub cursors: Arc<CursorRegistry>,
    /// Memory limits of blocking query stages and cursor timeouts (`--setParameter`).
    pub query: QueryParameters,
    pub failpoints: Arc<FailPoints>,
    pub counters: Counters,
    pub queries: QueryRuntime,
    pub activity: Activity,
    /// The cluster time clients gossip (`$clusterTime`, `command/cluster_time.rs`).
    pub cluster_time: crate::command::ClusterClock,
    /// The logical sessions commands ran in (`$listLocalSessions`, `command/local_sessions.rs`).
    pub local_sessions: crate::command::LocalSessions,
    /// A shard member's sharding state (identity, owned versions); unused on other members.
    pub sharding: crate::shardsvr::ShardingState,
    /// The write commands running now (`command/write.rs`), which decide whether a write may skip the
    /// storage writer's thread.
    pub writes_in_flight: crate::command::WritesInFlight,
}

impl Node {
    /// Opens storage under the options' dbpath and restores the replica-set role.
    pub async fn open(options: NodeOptions) -> Result<Arc<Node>> {
        let routes = options.peer_routes.clone().into_iter().collect();
        // The same routes for every other connection the member makes (a shard's to the config servers).
        crate::wire::client::install_dial_routes(options.peer_routes.clone());
        Node::open_on(options, Arc::new(crate::member::peers::Peers::new(routes))).await
    }

    /// [`Node::open`] with the member reaching its peers over `peers` (the simulation's in-process network).
    pub async fn open_on(
        options: NodeOptions,
        peers: Arc<dyn crate::member::network::PeerNetwork>,
    ) -> Result<Arc<Node>> {
        // The member's own wall clock: its storage stamps oplog entries with it, `skewClock` moves it.
        let clock = Clock::new();
        let storage = Storage::open_with_clock(&options.dbpath, clock.clone())?;
        Node::open_with(options, peers, storage, clock).await
    }

    /// A member of the in-process simulation: its database on `disk`, its writer inline, its wall clock
    /// `clock` (simulated time).
    pub async fn open_simulated(
        options: NodeOptions,
        peers: Arc<dyn crate::member::network::PeerNetwork>,
        disk: &crate::storage::MemoryDisk,
        clock: Clock,
    ) -> Result<Arc<Node>> {
        let storage = Storage::open_simulated(&options.dbpath, disk, clock.clone())?;
        Node::open_with(options, peers, storage, clock).await
    }

    async fn open_with(
        options: NodeOptions,
        peers: Arc<dyn crate::member::network::PeerNetwork>,
        storage: Storage,
        clock: Clock,
    ) -> Result<Arc<Node>> {
        let query = QueryParameters::from_parameters(&options.set_parameters)?;
        crate::spill::clean_tmp_dir(&options.dbpath);
        let failpoints = Arc::new(FailPoints::from_parameters(&options.set_parameters, clock)?);
        let member = Member::start_on(storage.clone(), options, peers, failpoints.clone()).await?;
        let cursors = Arc::new(CursorRegistry::new(
            std::time::Duration::from_millis(query.cursor_timeout_millis),
            std::time::Duration::from_secs(query.client_cursor_monitor_frequency_secs),
        ));
        tokio::spawn(CursorRegistry::run_reaper(Arc::downgrade(&cursors)));
        Ok(Arc::new(Node {
            storage,
            member,
            cursors,
            query,
            failpoints,
            counters: Counters::default(),
            queries: QueryRuntime::new()?,
            activity: Activity::default(),
            cluster_time: crate::command::ClusterClock::default(),
            local_sessions: crate::command::LocalSessions::default(),
            sharding: Default::default(),
            writes_in_flight: Default::default(),
        }))
    }

    /// Dies as a killed process does (simulation): every background task of the member ends and storage
    /// commits nothing more. The caller stops routing messages to it; a command already running on it fails
    /// its writes.
    pub fn kill(&self) {
        self.member.kill();
        self.storage.abandon();
    }

    /// The limits of blocking stages for a command that did (or did not) say `allowDiskUse`.
    pub fn query_limits(&self, allow_disk_use: Option<bool>) -> crate::query::pipeline::Limits {
        crate::query::pipeline::Limits {
            sort_bytes: self.query.max_blocking_sort_bytes,
            group_bytes: self.query.max_group_bytes,
            push_bytes: self.query.max_push_bytes,
            add_to_set_bytes: self.query.max_add_to_set_bytes,
            allow_disk_use: allow_disk_use.unwrap_or(self.query.allow_disk_use_by_default),
            spill_dir: Some(crate::spill::tmp_dir(self.storage.dbpath())),
        }
    }

    /// The member's wall clock (held by its storage): what commands read the time from.
    pub fn clock(&self) -> &Clock {
        self.storage.clock()
    }

    pub fn options(&self) -> &NodeOptions {
        self.member.options()
    }
}
