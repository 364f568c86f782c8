//! One running member: its storage, replica-set role, cursors and fail points, shared by all connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::cursor::CursorRegistry;
use crate::error::Result;
use crate::failpoint::FailPoints;
use crate::member::Member;
use crate::options::NodeOptions;
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
}

impl Counters {
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
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
    pub cursors: CursorRegistry,
    pub failpoints: Arc<FailPoints>,
    pub counters: Counters,
    pub queries: QueryRuntime,
}

impl Node {
    /// Opens storage under the options' dbpath and restores the replica-set role.
    pub async fn open(options: NodeOptions) -> Result<Arc<Node>> {
        let storage = Storage::open(&options.dbpath)?;
        let failpoints = Arc::new(FailPoints::from_parameters(&options.set_parameters)?);
        let cursors = CursorRegistry::new(options.cursor_timeout());
        let routes = options.peer_routes.clone().into_iter().collect();
        let member = Member::start(storage.clone(), options, routes, failpoints.clone()).await?;
        Ok(Arc::new(Node {
            storage,
            member,
            cursors,
            failpoints,
            counters: Counters::default(),
            queries: QueryRuntime::new()?,
        }))
    }

    pub fn options(&self) -> &NodeOptions {
        self.member.options()
    }
}
