//! A shard member's side of database placement (`movePrimary`): it checks the `databaseVersion` that routers
//! send with every request on an unsharded collection against `config.databases` (is this shard the
//! database's primary, at that version?), and refuses a stale one with StaleDbVersion (249) so the router
//! refreshes; and it runs the old primary's steps of a `movePrimary` (`router/move_primary.rs`).
//!
//! ```text
//! request with databaseVersion V (and the unsharded shardVersion) on db
//!      wait out db's critical section; cached {primary, version} of db (read from config if absent)
//!      this shard is primary and V names the same uuid and lastMod ─▶ run
//!      otherwise: refresh; still different ─▶ StaleDbVersion {db, vReceived, vWanted}
//! ```
//!
//! Commands (old primary, from a router's `movePrimary`):
//! `_shardsvrMovePrimaryEnterCriticalSection: db` (requests on db's unsharded collections wait; refused with
//! ConflictingOperationInProgress when another move holds it), `_shardsvrMovePrimaryCommit: db, to` (the one
//! majority write on the config servers that names the new primary and bumps `version.lastMod`, then a
//! refresh and the end of the critical section: waiting requests get StaleDbVersion),
//! `_shardsvrMovePrimaryAbort: db` (end the critical section, nothing changed), and `_flushDatabaseCacheUpdates:
//! db` (re-read the database's entry now).
//!
//! The critical section lives in memory: a restart of the old primary ends it, and a move whose router
//! vanished loses it after [`MOVE_PRIMARY_LEASE`] (the next request on the database ends it); a commit asked
//! after that is refused, so the old shard stays authoritative.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};

use super::{ShardingState, VersionedRequest, identity, lock, require_shard, wait_out_critical_section};
use crate::command::Context;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::router::rs_client::{find_all, write_majority};
use crate::shard::code;

/// How long a `movePrimary` may hold a database's critical section before it is taken back.
pub const MOVE_PRIMARY_LEASE: Duration = Duration::from_secs(120);

/// What a shard knows of its databases.
#[derive(Default)]
pub(crate) struct DatabasePlacement {
    /// `config.databases` entries read: db ─▶ (primary shard, version).
    entries: Mutex<HashMap<String, Option<(String, Document)>>>,
    /// Databases whose critical section a `movePrimary` holds, and since when (absent while committing).
    leases: Mutex<HashMap<String, Instant>>,
}

/// Whether two database versions name the same incarnation at the same `lastMod`.
fn same_version(a: &Document, b: &Document) -> bool {
    let last_mod = |d: &Document| d.get("lastMod").and_then(crate::bsonx::as_i64);
    a.get("uuid") == b.get("uuid") && last_mod(a) == last_mod(b)
}

/// The cached (or, with `refresh`, freshly read) `{primary, version}` of `db`; `None`: no such database.
async fn placement_of(node: &Node, db: &str, refresh: bool) -> Result<Option<(String, Document)>> {
    let state = &node.sharding.databases;
    if !refresh && let Some(entry) = lock(&state.entries).get(db) {
        return Ok(entry.clone());
    }
    let config = identity(node)?.config;
    let found = find_all(&config, "config", "databases", doc! {"_id": db}, None).await?;
    let entry = found.first().map(|d| {
        (
            d.get_str("primary").unwrap_or_default().to_string(),
            d.get_document("version").cloned().unwrap_or_default(),
        )
    });
    lock(&state.entries).insert(db.to_string(), entry.clone());
    Ok(entry)
}

/// Checks a request's `databaseVersion` (sent with the unsharded shardVersion); the returned guard keeps the
/// database's critical section waiting until the command ends.
pub(super) async fn check_database_version<'a>(
    node: &'a Node,
    db: &str,
    received: &Document,
) -> Result<VersionedRequest<'a>> {
    let state = &node.sharding;
    let me = identity(node)?.shard_name;
    let current = |entry: &Option<(String, Document)>| {
        entry
            .as_ref()
            .is_some_and(|(primary, version)| *primary == me && same_version(received, version))
    };
    let wanted = loop {
        expire_lease(state, db);
        wait_out_critical_section(state, db).await?;
        let mut entry = placement_of(node, db, false).await?;
        if !current(&entry) {
            entry = placement_of(node, db, true).await?;
        }
        if !current(&entry) {
            break entry;
        }
        let running = state.begin(db);
        if !state.in_critical_section(db) {
            return Ok(running);
        }
    };
    let mut extra = doc! {"db": db, "vReceived": received.clone()};
    if let Some((primary, version)) = &wanted
        && *primary == me
    {
        extra.insert("vWanted", version.clone());
    }
    Err(Error::new(
        code::STALE_DB_VERSION,
        format!(
            "version mismatch detected for database {db}: this shard ({me}) is not its primary at the router's version"
        ),
    )
    .with_extra(extra))
}

/// Ends a `movePrimary`'s critical section on `db` when its lease ran out.
fn expire_lease(state: &ShardingState, db: &str) {
    let mut leases = lock(&state.databases.leases);
    if leases.get(db).is_some_and(|since| since.elapsed() > MOVE_PRIMARY_LEASE) {
        leases.remove(db);
        drop(leases);
        tracing::warn!(%db, "a movePrimary held the database's critical section too long; ending it");
        state.leave_critical_section(db);
    }
}

/// The old primary's `movePrimary` commands; `None` when `name` is not one of them.
pub(super) async fn command(ctx: &Context<'_>) -> Option<Result<Document>> {
    let run = match ctx.name.as_str() {
        "_shardsvrMovePrimaryEnterCriticalSection" => enter(ctx).await,
        "_shardsvrMovePrimaryCommit" => commit(ctx).await,
        "_shardsvrMovePrimaryAbort" => abort(ctx),
        "_flushDatabaseCacheUpdates" | "_flushDatabaseCacheUpdatesWithWriteConcern" => flush(ctx).await,
        _ => return None,
    };
    Some(run)
}

fn database_name(ctx: &Context<'_>) -> Result<String> {
    require_shard(ctx)?;
    ctx.body
        .get_str(&ctx.name)
        .map(String::from)
        .map_err(|_| Error::type_mismatch(format!("{} takes a database name", ctx.name)))
}

async fn enter(ctx: &Context<'_>) -> Result<Document> {
    let db = database_name(ctx)?;
    let state = &ctx.node.sharding;
    expire_lease(state, &db);
    if state.in_critical_section(&db) {
        return Err(Error::new(
            code::CONFLICTING_OPERATION_IN_PROGRESS,
            format!("another movePrimary of database {db} is in progress"),
        ));
    }
    let me = identity(ctx.node)?.shard_name;
    match placement_of(ctx.node, &db, true).await? {
        Some((primary, _)) if primary == me => {}
        _ => {
            return Err(Error::new(
                code::STALE_DB_VERSION,
                format!("this shard ({me}) is not the primary shard of database {db}"),
            ));
        }
    }
    state.enter_critical_section(&db).await?;
    lock(&state.databases.leases).insert(db, Instant::now());
    Ok(Document::new())
}

async fn commit(ctx: &Context<'_>) -> Result<Document> {
    let db = database_name(ctx)?;
    let to = ctx
        .body
        .get_str("to")
        .map_err(|_| Error::failed_to_parse("_shardsvrMovePrimaryCommit needs to"))?
        .to_string();
    let state = &ctx.node.sharding;
    // Taking the lease out means it can no longer expire: the critical section lasts until the commit's end.
    if lock(&state.databases.leases).remove(&db).is_none() || !state.in_critical_section(&db) {
        return Err(Error::new(
            code::CONFLICTING_OPERATION_IN_PROGRESS,
            format!("database {db} is not in this movePrimary's critical section (its lease ran out?)"),
        ));
    }
    let result = write_commit(ctx.node, &db, &to).await;
    let after = placement_of(ctx.node, &db, true).await;
    state.leave_critical_section(&db);
    let committed = matches!(&after, Ok(Some((primary, _))) if *primary == to);
    match (result, committed) {
        (_, true) => Ok(doc! {"primary": to}),
        (Err(err), false) => Err(err),
        (Ok(()), false) => Err(Error::internal(format!(
            "the new primary of {db} was written but reads back as {after:?}"
        ))),
    }
}

/// The commit: `config.databases` names `to` and the version's `lastMod` goes up, if this shard is still the
/// primary at the version it has.
async fn write_commit(node: &Node, db: &str, to: &str) -> Result<()> {
    let me = identity(node)?.shard_name;
    let Some((primary, version)) = placement_of(node, db, true).await? else {
        return Err(Error::new(
            crate::error::code::NAMESPACE_NOT_FOUND,
            format!("database {db} not found"),
        ));
    };
    if primary != me {
        return Err(Error::new(
            code::STALE_DB_VERSION,
            format!("this shard ({me}) is no longer the primary shard of database {db}"),
        ));
    }
    let last_mod = version.get("lastMod").and_then(crate::bsonx::as_i64).unwrap_or(1);
    let mut next = version.clone();
    next.insert("lastMod", Bson::Int32(i32::try_from(last_mod + 1).unwrap_or(i32::MAX)));
    next.insert("timestamp", crate::router::now_timestamp());
    let update = doc! {"update": "databases", "updates": [{
        "q": {"_id": db, "primary": &me, "version.lastMod": last_mod},
        "u": {"$set": {"primary": to, "version": next}},
    }], "$db": "config"};
    let reply = write_majority(&identity(node)?.config, update).await?;
    if reply.get("n").and_then(crate::bsonx::as_i64) != Some(1) {
        return Err(Error::new(
            code::CONFLICTING_OPERATION_IN_PROGRESS,
            format!("config.databases entry of {db} changed during movePrimary"),
        ));
    }
    Ok(())
}

fn abort(ctx: &Context<'_>) -> Result<Document> {
    let db = database_name(ctx)?;
    let state = &ctx.node.sharding;
    if lock(&state.databases.leases).remove(&db).is_some() {
        state.leave_critical_section(&db);
    }
    Ok(Document::new())
}

async fn flush(ctx: &Context<'_>) -> Result<Document> {
    let db = database_name(ctx)?;
    let entry = placement_of(ctx.node, &db, true).await?;
    Ok(match entry {
        Some((primary, version)) => doc! {"primary": primary, "version": version},
        None => Document::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_versions_match_on_uuid_and_last_mod_whatever_the_integer_width() {
        let uuid = bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![1; 16],
        };
        let other = bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![2; 16],
        };
        let v1 = doc! {"uuid": uuid.clone(), "lastMod": 1_i32};
        assert!(same_version(&v1, &doc! {"uuid": uuid.clone(), "lastMod": 1_i64}));
        assert!(!same_version(&v1, &doc! {"uuid": uuid, "lastMod": 2_i32}));
        assert!(!same_version(&v1, &doc! {"uuid": other, "lastMod": 1_i32}));
    }
}
