//! One running member: its storage, replica-set role, cursors and fail points, shared by all connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
}

impl Counters {
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
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
}

impl Node {
    /// Opens storage under the options' dbpath and restores the replica-set role.
    pub async fn open(options: NodeOptions) -> Result<Arc<Node>> {
        let query = QueryParameters::from_parameters(&options.set_parameters)?;
        let storage = Storage::open(&options.dbpath)?;
        crate::spill::clean_tmp_dir(&options.dbpath);
        let failpoints = Arc::new(FailPoints::from_parameters(&options.set_parameters)?);
        let routes = options.peer_routes.clone().into_iter().collect();
        let member = Member::start(storage.clone(), options, routes, failpoints.clone()).await?;
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
        }))
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

    pub fn options(&self) -> &NodeOptions {
        self.member.options()
    }
}
