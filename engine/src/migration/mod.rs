//! Chunk migrations between shards (`moveChunk`, `moveRange`), on the shard members: the donor drives, the
//! recipient pulls, the config servers record the new owner in one document write.
//!
//! ```text
//! router  moveChunk/moveRange ─▶ donor primary _shardsvrMoveRange {ns, min, max, toShard}
//! donor   1 config.collections {activeMigration} (one migration per collection) and a fence on the chunk
//!           ({migration: id}); persist config.migrationCoordinators {state: "clone"} and a pending
//!           config.rangeDeletions task, both w: majority on the donor's set
//!         2 ─▶ recipient _recvChunkStart: it persists its own pending range deletion, then pulls the range
//!           in batches (_migrateClone ◀ donor: the documents in range as of a snapshot)
//!         3 ─▶ recipient _recvChunkCatchUp: it pulls the writes made meanwhile (_transferMods ◀ donor: the
//!           documents the donor's oplog touched since the last pull, re-read now: upsert or delete)
//!         4 critical section on the donor (versioned requests wait); ─▶ recipient _recvChunkCommit: the
//!           last _transferMods until empty, majority-committed on the recipient
//!         5 coordinator {state: "commit"} (w: majority: still primary); the commit on the config servers:
//!           ONE update of the chunk {_id, shard: donor, migration: id} → {shard: recipient, lastmod:
//!           (collection major + 1).0}, w: majority
//!         6 the donor refreshes (now at the new version) and leaves the critical section; its range
//!           deletion task becomes ready; ─▶ recipient _recvChunkFinish {decision}; the lock is released,
//!           the coordinator document deleted; the range deleter removes the moved documents
//! ```
//!
//! Crash safety: every step is persisted before it has effects elsewhere, and [`cleanup::recover`] (run
//! every second on each shard primary, so also on a new primary after a failover or on a restarted member)
//! finishes any coordinator document no running migration owns: committed if the config servers name the
//! recipient, otherwise it aborts, first removing the chunk's fence so a commit still in flight from a dead
//! primary can no longer match. Aborted: the recipient's pending deletion becomes ready (its copy is
//! orphans, invisible to routed reads); committed: the donor's does. The range deleter never deletes a
//! document of a chunk the shard owns (re-read from the config servers before each pass).
//!
//! Versions: a shard's version of a collection is the *collection* version (its highest chunk version),
//! not MongoDB's per-shard placement version; each commit bumps the major version, so routers that have
//! not seen a commit are refused by the donor and the recipient alike, with one document written.

mod cleanup;
mod donor;
pub(crate) mod range;
mod recipient;

pub use cleanup::spawn_background;
pub use range::KeyRange;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};

use crate::command::Context;
use crate::error::{Error, Result};
use crate::member::write_concern::{WriteConcern, WriteMode};
use crate::node::Node;
use crate::router::rs_client::write_majority;
use crate::shard::code;
use crate::storage::Namespace;

/// Where the donor keeps its migration coordinator documents.
const COORDINATORS: &str = "migrationCoordinators";
/// Where each shard keeps its range deletion tasks.
const RANGE_DELETIONS: &str = "rangeDeletions";

/// The migrations a shard member takes part in now (in memory: what a restart forgets is recovered from the
/// persisted documents).
#[derive(Default)]
pub struct Migrations {
    /// The migration this member donates, if any (one at a time, as MongoDB's ActiveMigrationsRegistry).
    donating: Mutex<Option<donor::DonorSession>>,
    /// Migrations this member receives, by id.
    receiving: Mutex<HashMap<String, recipient::RecipientSession>>,
    /// Coordinator documents whose outcome this member is deciding now (the driver or recovery).
    deciding: Mutex<std::collections::HashSet<String>>,
}

/// Whether `name` is one of the migration commands of a shard member.
pub fn is_command(name: &str) -> bool {
    matches!(
        name,
        "_shardsvrMoveRange"
            | "_migrateClone"
            | "_transferMods"
            | "_recvChunkStart"
            | "_recvChunkCatchUp"
            | "_recvChunkCommit"
            | "_recvChunkFinish"
    )
}

/// Runs a migration command (see [`is_command`]).
pub async fn command(ctx: &Context<'_>) -> Result<Document> {
    if ctx.node.options().cluster_role != crate::options::ClusterRole::ShardServer {
        return Err(Error::new(
            code::SHARDING_STATE_NOT_INITIALIZED,
            format!("{} can only be run on a member started with --shardsvr", ctx.name),
        ));
    }
    ctx.require_admin()?;
    match ctx.name.as_str() {
        "_shardsvrMoveRange" => donor::move_range(ctx.node, ctx.body).await,
        "_migrateClone" => donor::serve_pull(ctx.node, ctx.body, donor::migrate_clone),
        "_transferMods" => donor::serve_pull(ctx.node, ctx.body, donor::transfer_mods),
        "_recvChunkStart" => recipient::start(ctx.node, ctx.body).await,
        "_recvChunkCatchUp" => recipient::catch_up(ctx.node, ctx.body, false).await,
        "_recvChunkCommit" => recipient::catch_up(ctx.node, ctx.body, true).await,
        "_recvChunkFinish" => recipient::finish(ctx.node, ctx.body).await,
        other => Err(Error::new(
            crate::error::code::COMMAND_NOT_FOUND,
            format!("no such cmd: {other}"),
        )),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `migrationId` field of a migration command.
fn migration_id(body: &Document) -> Result<String> {
    body.get_str("migrationId")
        .map(String::from)
        .map_err(|_| Error::failed_to_parse("a migration command needs its migrationId"))
}

fn new_migration_id() -> String {
    ObjectId::new().to_hex()
}

/// `_id: id` in `config.<coll>` on this member: replaced (or inserted) with `document`, then waited for
/// with w: majority on the shard's replica set (NotWritablePrimary if this member is not primary).
async fn put_local(node: &Node, coll: &str, document: Document) -> Result<()> {
    node.member.check_writable("config")?;
    let ns = Namespace::new("config", coll);
    node.storage
        .write(true, move |w| {
            let meta = w.ensure_collection(&ns)?;
            let id = document.get("_id").cloned().unwrap_or(Bson::Null);
            match w.get_by_id(&meta, &id)? {
                Some(before) => w.replace(&meta, &before, document, None),
                None => w.insert(&meta, document, None),
            }
        })
        .await??;
    wait_majority(node).await
}

/// Removes `_id: id` from `config.<coll>` on this member (w: majority).
async fn delete_local(node: &Node, coll: &str, id: &str) -> Result<()> {
    node.member.check_writable("config")?;
    let ns = Namespace::new("config", coll);
    let id = Bson::String(id.to_string());
    node.storage
        .write(true, move |w| {
            let Some(meta) = w.collection(&ns)? else {
                return Ok(());
            };
            match w.get_by_id(&meta, &id)? {
                Some(before) => w.delete(&meta, &before, None),
                None => Ok(()),
            }
        })
        .await??;
    wait_majority(node).await
}

/// Every document of `config.<coll>` on this member.
fn local_documents(node: &Node, coll: &str) -> Result<Vec<Document>> {
    let snapshot = node.storage.snapshot()?;
    let Some(meta) = snapshot.collection(&Namespace::new("config", coll))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    snapshot.scan(&meta, None, |d| {
        out.push(d);
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// One document of `config.<coll>` on this member.
fn local_document(node: &Node, coll: &str, id: &str) -> Result<Option<Document>> {
    let snapshot = node.storage.snapshot()?;
    match snapshot.collection(&Namespace::new("config", coll))? {
        Some(meta) => snapshot.get_by_id(&meta, &Bson::String(id.to_string())),
        None => Ok(None),
    }
}

/// Waits until everything this member wrote is majority-committed in its replica set.
async fn wait_majority(node: &Node) -> Result<()> {
    let optime = node.storage.positions().last_written;
    let majority = WriteConcern {
        w: WriteMode::Majority,
        j: false,
        wtimeout: Some(Duration::from_secs(30)),
    };
    match node.member.wait_for_write_concern(optime, &majority).await {
        None => Ok(()),
        Some(error) => Err(crate::router::rs_client::error_of_reply(&error)),
    }
}

/// Records a migration event in `config.changelog` on the config servers, as a shard does (best effort).
async fn changelog(node: &Node, what: &str, ns: &str, details: Document) {
    let Ok(identity) = crate::shardsvr::identity(node) else {
        return;
    };
    let server = crate::host::name();
    let now = bson::DateTime::now();
    let entry = doc! {
        "_id": format!("{server}-{}-{}", now.try_to_rfc3339_string().unwrap_or_default(), ObjectId::new()),
        "server": &server, "shard": &identity.shard_name, "clientAddr": "", "time": now, "what": what,
        "ns": ns, "details": details,
    };
    let insert = doc! {"insert": "changelog", "documents": [entry], "$db": "config"};
    if let Err(err) = write_majority(&identity.config, insert).await {
        tracing::warn!(error = %err, what, ns, "cannot write config.changelog");
    }
}

/// Waits while the fail point `name` is on (the `moveChunkHangAtStepN` points).
async fn hang_while_on(node: &Node, name: &str) {
    if node.failpoints.hit(name).is_none() {
        return;
    }
    tracing::info!(failpoint = name, "migration paused by fail point");
    while node.failpoints.is_on(name) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `db.coll` as a namespace (InvalidNamespace otherwise).
fn parse_namespace(ns: &str) -> Result<Namespace> {
    Namespace::parse(ns).ok_or_else(|| {
        Error::new(
            crate::error::code::INVALID_NAMESPACE,
            format!("Invalid namespace specified '{ns}'"),
        )
    })
}
