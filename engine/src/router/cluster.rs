//! Cluster commands on the router, and the metadata documents they write on the config servers, in
//! MongoDB's shapes:
//!
//! ```text
//! config.shards       {_id: "rs1", host: "rs1/h1:p1,h2:p2", state: 1, topologyTime: Timestamp}
//! config.databases    {_id: "db", primary: "rs1", version: {uuid: UUID, timestamp: Timestamp, lastMod: 1}}
//! config.collections  {_id: "db.c", lastmodEpoch: ObjectId, lastmod: Date, timestamp: Timestamp, uuid: UUID,
//!                      key: {k: 1}, unique: false, noBalance: false}
//! config.chunks       {_id, uuid, min, max, shard, lastmod: Timestamp(major, minor), onCurrentShardSince, history}
//! config.settings     {_id: "balancer", mode: "full" | "off", stopped: bool}
//! config.version      {_id: 1, clusterId: ObjectId}            (written by the first router, see `ping_loop`)
//! config.mongos       {_id: "host:port", ping, up, waiting, mongoVersion, advisoryHostFQDNs}
//! config.changelog    {_id, server, shard: "config", clientAddr, time, what, ns, details}   (addShard,
//!                      shardCollection.start/.end, split, dropCollection, dropDatabase; best effort)
//! ```
//!
//! `split` (`sh.splitAt`: `middle`, `sh.splitFind`: `find`, the median key of the chunk holding the match)
//! cuts one chunk in two on the same shard with the next two minor versions, as MongoDB does: no data moves,
//! so shards need not refresh (their check compares major versions).
//!
//! Every write uses `w: "majority"`. Nothing is left half-done: `addShard` checks the new shard fully (reachable,
//! its set name, started with `--shardsvr`) before writing anything; `shardCollection` writes the chunks before
//! the collection entry that makes them visible, and removes them if that fails.

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, Timestamp, doc};

use super::Router;
use super::rs_client::{ReplicaSetClient, SeedList, error_of_reply, find_all, hello, write_majority};
use crate::error::{Error, Result, code};
use crate::shard::{self, ShardKeyPattern, initial_chunks};

pub async fn run(router: &Router, name: &str, body: &Document) -> Result<Document> {
    match name {
        "addShard" => add_shard(router, body).await,
        "listShards" => {
            let shards = find_all(
                router.catalog.config(),
                "config",
                "shards",
                doc! {},
                Some(doc! {"_id": 1}),
            )
            .await?;
            Ok(doc! {"shards": shards})
        }
        "enableSharding" | "enablesharding" => {
            let db = body
                .get_str(name)
                .map_err(|_| Error::type_mismatch(format!("{name} takes a database name")))?;
            let primary = body.get_str("primaryShard").ok();
            ensure_database(router, db, primary).await?;
            Ok(Document::new())
        }
        "shardCollection" | "shardcollection" => shard_collection(router, name, body).await,
        "getShardMap" => get_shard_map(router).await,
        "split" => split(router, body).await,
        "moveChunk" | "movechunk" | "moveRange" => super::migrate::move_chunk(router, name, body).await,
        "removeShard" | "removeshard" => remove_shard(router, name, body).await,
        "movePrimary" | "moveprimary" => super::move_primary::move_primary(router, name, body).await,
        "flushRouterConfig" | "flushrouterconfig" => {
            router.catalog.flush();
            Ok(doc! {"flushed": true})
        }
        "balancerStatus" => {
            let settings = find_all(
                router.catalog.config(),
                "config",
                "settings",
                doc! {"_id": "balancer"},
                None,
            )
            .await?;
            let mode = settings
                .first()
                .and_then(|s| s.get_str("mode").ok().map(String::from))
                .unwrap_or_else(|| "full".to_string());
            Ok(doc! {"mode": mode, "inBalancerRound": false, "numBalancerRounds": 0_i64})
        }
        "balancerStart" | "balancerStop" => {
            let (mode, stopped) = if name == "balancerStart" {
                ("full", false)
            } else {
                ("off", true)
            };
            let update = doc! {"update": "settings", "updates": [{"q": {"_id": "balancer"},
            "u": {"$set": {"mode": mode, "stopped": stopped}}, "upsert": true}], "$db": "config"};
            write_majority(router.catalog.config(), update).await?;
            Ok(Document::new())
        }
        other => Err(Error::new(code::COMMAND_NOT_FOUND, format!("no such cmd: {other}"))),
    }
}

/// `addShard: "rs1/h:p,..."` (or one `h:p`), `name?`.
async fn add_shard(router: &Router, body: &Document) -> Result<Document> {
    let text = body
        .get_str("addShard")
        .map_err(|_| Error::type_mismatch("addShard takes a connection string \"set/host:port,...\""))?;
    let seeds = SeedList::parse(text)?;
    let failed = |message: String| Error::new(shard::code::OPERATION_FAILED, message);
    // Ask the seeds: reachable, one replica set, the set name given (if any), started as a shard.
    let mut set_name = None;
    let mut members = Vec::new();
    let mut reasons = Vec::new();
    for host in &seeds.hosts {
        match hello(host).await {
            Ok(reply) => {
                let name = reply.get_str("setName").ok().map(String::from);
                if let (Some(expected), Some(actual)) = (&seeds.set_name, &name)
                    && expected != actual
                {
                    return Err(failed(format!(
                        "in seed list {text}, host {host} does not belong to replica set {expected}; found {actual} instead"
                    )));
                }
                let Some(name) = name else {
                    reasons.push(format!("{host} is not yet a member of an initiated replica set"));
                    continue;
                };
                if seeds.set_name.is_none() {
                    return Err(failed(format!(
                        "host {host} is part of set {name}; use replica set url format <setname>/<server1>,<server2>, ..."
                    )));
                }
                members = reply
                    .get_array("hosts")
                    .map(|h| h.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                set_name = Some(name);
                break;
            }
            Err(err) => reasons.push(format!("{host}: {err}")),
        }
    }
    let Some(set_name) = set_name else {
        return Err(Error::new(
            shard::code::HOST_UNREACHABLE,
            format!("cannot reach any member of {text}: {}", reasons.join("; ")),
        ));
    };
    // A candidate's members are not yet the cluster's: nothing is gossiped to them.
    let client = super::rs_client::ReplicaSetClient::new(
        SeedList {
            set_name: Some(set_name.clone()),
            hosts: seeds.hosts.clone(),
        },
        Default::default(),
    );
    let options = client.command(&doc! {"getCmdLineOpts": 1, "$db": "admin"}).await?;
    let role = options
        .get_document("parsed")
        .ok()
        .and_then(|p| p.get_document("sharding").ok())
        .and_then(|s| s.get_str("clusterRole").ok());
    if role != Some("shardsvr") {
        return Err(failed(format!(
            "Cannot add {text} as a shard since it was not started with --shardsvr (sharding.clusterRole: shardsvr)"
        )));
    }
    let shard_name = match body.get("name") {
        Some(Bson::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err(Error::bad_value("shard name must be a non-empty string")),
        None => set_name.clone(),
    };
    let host = format!(
        "{set_name}/{}",
        if members.is_empty() {
            seeds.hosts.clone()
        } else {
            members
        }
        .join(",")
    );
    let config = router.catalog.config();
    // Already a shard? The same set under the same name is a success; anything else a conflict.
    let existing = find_all(config, "config", "shards", doc! {}, None).await?;
    for shard in &existing {
        let id = shard.get_str("_id").unwrap_or_default();
        let existing_set = shard
            .get_str("host")
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        if existing_set == set_name {
            if id == shard_name {
                return Ok(doc! {"shardAdded": id});
            }
            return Err(failed(format!(
                "{set_name} is already a member of the cluster as shard {id}"
            )));
        }
        if id == shard_name {
            return Err(failed(format!("A shard named {shard_name} already exists")));
        }
    }
    let version = find_all(config, "config", "version", doc! {"_id": 1}, None).await?;
    let cluster_id = version
        .first()
        .and_then(|v| v.get_object_id("clusterId").ok())
        .ok_or_else(|| Error::new(code::NOT_YET_INITIALIZED, "config.version is not written yet; retry"))?;
    let config_string = config.seeds().to_string();
    // The shard learns who it is and where the config servers are before the cluster names it.
    let identity = doc! {"_addShard": 1, "shardIdentity": {
        "shardName": &shard_name, "clusterId": cluster_id, "configsvrConnectionString": &config_string,
    }, "writeConcern": {"w": "majority", "wtimeout": 30_000_i32}, "$db": "admin"};
    let reply = client.run(&identity).await?;
    if !crate::wire::client::reply_ok(&reply) {
        return Err(error_of_reply(&reply));
    }
    let insert = doc! {"insert": "shards", "documents": [{
        "_id": &shard_name, "host": &host, "state": 1, "topologyTime": now_timestamp(),
    }], "$db": "config"};
    write_majority(config, insert).await?;
    router.catalog.reload_shards().await?;
    changelog(router, "addShard", "", doc! {"name": &shard_name, "host": &host}).await;
    tracing::info!(shard = %shard_name, %host, "shard added");
    Ok(doc! {"shardAdded": shard_name})
}

/// The database's entry, created (with a primary shard) when the cluster has none yet. `primary` names the
/// shard to use (`enableSharding`'s `primaryShard`); otherwise the shard that is primary for the fewest
/// databases.
pub async fn ensure_database(
    router: &Router,
    db: &str,
    primary: Option<&str>,
) -> Result<super::catalog::DatabaseEntry> {
    check_database_name(db)?;
    if let Some(entry) = router.catalog.database(db).await? {
        if let Some(wanted) = primary
            && wanted != entry.primary
        {
            return Err(Error::new(
                code::NAMESPACE_EXISTS,
                format!("database {db} already exists with primary shard {}", entry.primary),
            ));
        }
        return Ok(entry);
    }
    let config = router.catalog.config();
    let mut shards = router.catalog.reload_shards().await?;
    shards.retain(|s| !s.draining || primary == Some(s.id.as_str()));
    if shards.is_empty() {
        return Err(Error::new(
            shard::code::SHARD_NOT_FOUND,
            "Database could not be created: the cluster has no shards that are not being removed (addShard first)",
        ));
    }
    let chosen = match primary {
        Some(name) => shards
            .iter()
            .find(|s| s.id == name)
            .map(|s| s.id.clone())
            .ok_or_else(|| Error::new(shard::code::SHARD_NOT_FOUND, format!("Shard {name} not found")))?,
        None => {
            let databases = find_all(config, "config", "databases", doc! {}, None).await?;
            let load = |id: &str| {
                databases
                    .iter()
                    .filter(|d| d.get_str("primary").ok() == Some(id))
                    .count()
            };
            shards
                .iter()
                .min_by_key(|s| (load(&s.id), s.id.clone()))
                .map(|s| s.id.clone())
                .unwrap_or_default()
        }
    };
    let insert = doc! {"insert": "databases", "documents": [{
        "_id": db, "primary": &chosen,
        "version": {"uuid": new_uuid(), "timestamp": now_timestamp(), "lastMod": 1},
    }], "$db": "config"};
    match write_majority(config, insert).await {
        Ok(_) => {}
        // Another router created it meanwhile: use theirs.
        Err(err) if err.code == code::DUPLICATE_KEY.0 => {}
        Err(err) => return Err(err),
    }
    router.catalog.invalidate_database(db);
    router
        .catalog
        .database(db)
        .await?
        .ok_or_else(|| Error::internal(format!("database {db} vanished after it was created")))
}

fn check_database_name(db: &str) -> Result<()> {
    if db.is_empty() || db.contains(['/', '\\', '.', ' ', '"', '$']) {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("invalid database name '{db}'"),
        ));
    }
    if matches!(db, "admin" | "local" | "config") {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            format!("Cannot shard or create database {db} on a sharded cluster's shards: it is reserved"),
        ));
    }
    Ok(())
}

/// `shardCollection: "db.c", key, unique?, numInitialChunks?`.
async fn shard_collection(router: &Router, name: &str, body: &Document) -> Result<Document> {
    let ns = body
        .get_str(name)
        .map_err(|_| Error::type_mismatch(format!("{name} takes a namespace \"db.collection\"")))?;
    let Some((db, coll)) = ns.split_once('.').filter(|(d, c)| !d.is_empty() && !c.is_empty()) else {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("Invalid namespace specified '{ns}'"),
        ));
    };
    let key = body
        .get_document("key")
        .map_err(|_| Error::failed_to_parse("BSON field 'shardCollection.key' is missing but a required field"))?;
    let pattern = ShardKeyPattern::parse(key)?;
    let unique = body.get_bool("unique").unwrap_or(false);
    if unique && pattern.is_hashed() {
        return Err(Error::new(
            code::INVALID_OPTIONS,
            "Hashed shard keys cannot be declared unique. It's possible to ensure uniqueness on the hashed field by \
             declaring an additional (non-hashed) unique index on the field.",
        ));
    }
    let requested = match body.get("numInitialChunks").map(crate::bsonx::as_i64) {
        None => 0,
        Some(Some(n)) if (0..=8192).contains(&n) => n as u32,
        Some(_) => return Err(Error::bad_value("numInitialChunks must be between 0 and 8192")),
    };
    if coll.starts_with("system.") {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            format!("can't shard system namespace {ns}"),
        ));
    }
    let database = ensure_database(router, db, None).await?;
    let config = router.catalog.config();
    router.catalog.invalidate_collection(ns);
    if let Some(existing) = router.catalog.collection(ns).await? {
        if existing.pattern == pattern {
            return Ok(doc! {"collectionsharded": ns});
        }
        return Err(Error::new(
            code::ALREADY_INITIALIZED,
            format!(
                "sharding already enabled for collection {ns} with options {{ key: {} }}",
                existing.pattern.to_document()
            ),
        ));
    }
    // A collection that already holds documents keeps them where they are: one chunk on the primary shard.
    let primary = router.catalog.shard(&database.primary).await?;
    let count = primary
        .client
        .command(&doc! {"count": coll, "$db": db, "readConcern": {"level": "majority"}})
        .await
        .ok()
        .and_then(|r| r.get("n").and_then(crate::bsonx::as_i64))
        .unwrap_or(0);
    let mut shard_ids: Vec<String> = router
        .catalog
        .reload_shards()
        .await?
        .iter()
        .filter(|s| !s.draining)
        .map(|s| s.id.clone())
        .collect();
    shard_ids.retain(|s| *s != database.primary);
    shard_ids.insert(0, database.primary.clone());
    if count > 0 {
        shard_ids.truncate(1);
    }
    let chunks = initial_chunks(&pattern, &shard_ids, requested);
    changelog(
        router,
        "shardCollection.start",
        ns,
        doc! {"shardKey": pattern.to_document(),
        "primary": &database.primary, "numChunks": chunks.len() as i64},
    )
    .await;
    let uuid = new_uuid();
    let epoch = ObjectId::new();
    let timestamp = now_timestamp();
    let names = pattern.names();
    let documents: Vec<Document> = chunks.iter().map(|c| c.to_document(&names, &uuid, timestamp)).collect();
    write_majority(
        config,
        doc! {"insert": "chunks", "documents": documents, "$db": "config"},
    )
    .await?;
    let collection = doc! {
        "_id": ns, "lastmodEpoch": epoch, "lastmod": bson::DateTime::now(), "timestamp": timestamp,
        "uuid": Bson::Binary(uuid.clone()), "key": pattern.to_document(), "unique": unique, "noBalance": false,
    };
    if let Err(err) = write_majority(
        config,
        doc! {"insert": "collections", "documents": [collection], "$db": "config"},
    )
    .await
    {
        // Nothing half-done: the chunks are invisible without the collection entry, and are removed.
        let cleanup = doc! {"delete": "chunks", "deletes": [{"q": {"uuid": Bson::Binary(uuid.clone())}, "limit": 0}],
        "$db": "config"};
        if let Err(cleanup_err) = write_majority(config, cleanup).await {
            tracing::warn!(error = %cleanup_err, %ns, "cannot remove the chunks of a failed shardCollection");
        }
        return Err(err);
    }
    router.catalog.invalidate_collection(ns);
    changelog(
        router,
        "shardCollection.end",
        ns,
        doc! {"version": format!("1|{}", chunks.len().saturating_sub(1))},
    )
    .await;
    tracing::info!(%ns, key = %pattern.to_document(), chunks = chunks.len(), "collection sharded");
    Ok(doc! {"collectionsharded": ns, "collectionUUID": Bson::Binary(uuid)})
}

/// `removeShard: "id"`: the first call marks the shard draining (it gets no new databases or chunks), later
/// calls report what it still owns, and once it owns no chunk and is no database's primary it is removed.
/// Its chunks move away through migrations (the balancer, `moveChunk`), its databases with `movePrimary`.
async fn remove_shard(router: &Router, name: &str, body: &Document) -> Result<Document> {
    let id = body
        .get_str(name)
        .map_err(|_| Error::type_mismatch("removeShard takes a shard id"))?;
    let shards = router.catalog.reload_shards().await?;
    let target = shards
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Error::new(shard::code::SHARD_NOT_FOUND, format!("Shard {id} not found")))?;
    if shards.len() == 1 {
        return Err(Error::new(
            code::ILLEGAL_OPERATION,
            "Operation not allowed because it would remove the last shard",
        ));
    }
    let config = router.catalog.config();
    let databases: Vec<String> = find_all(config, "config", "databases", doc! {"primary": id}, None)
        .await?
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(String::from))
        .collect();
    if !target.draining {
        let update = doc! {"update": "shards", "updates": [{"q": {"_id": id}, "u": {"$set": {"draining": true}}}],
        "$db": "config"};
        write_majority(config, update).await?;
        router.catalog.reload_shards().await?;
        changelog(router, "removeShard.start", "", doc! {"shard": id}).await;
        return Ok(doc! {
            "msg": "draining started successfully", "state": "started", "shard": id,
            "note": "its chunks move away while the balancer runs (sh.startBalancer()) or with moveChunk; its databases move with movePrimary",
            "dbsToMove": databases, "collectionsToMove": [],
        });
    }
    let chunks = find_all(config, "config", "chunks", doc! {"shard": id}, None)
        .await?
        .len() as i64;
    if chunks > 0 || !databases.is_empty() {
        return Ok(doc! {
            "msg": "draining ongoing", "state": "ongoing",
            "remaining": {"chunks": chunks, "dbs": databases.len() as i64, "jumboChunks": 0_i64},
            "note": "its chunks move away while the balancer runs (sh.startBalancer()) or with moveChunk; its databases move with movePrimary",
            "dbsToMove": databases, "collectionsToMove": [],
        });
    }
    write_majority(
        config,
        doc! {"delete": "shards", "deletes": [{"q": {"_id": id}, "limit": 1}], "$db": "config"},
    )
    .await?;
    router.catalog.reload_shards().await?;
    changelog(router, "removeShard", "", doc! {"shard": id}).await;
    Ok(doc! {"msg": "removeshard completed successfully", "state": "completed", "shard": id})
}

/// `split: "db.c", middle: {k: v}` or `find: {k: v}`.
pub(super) async fn split(router: &Router, body: &Document) -> Result<Document> {
    let ns = body
        .get_str("split")
        .map_err(|_| Error::type_mismatch("split takes a namespace \"db.collection\""))?;
    router.catalog.invalidate_collection(ns);
    let table = router
        .catalog
        .collection(ns)
        .await?
        .ok_or_else(|| Error::new(shard::code::NAMESPACE_NOT_SHARDED, format!("ns {ns} is not sharded")))?;
    let names = table.pattern.names();
    let point = match (body.get_document("middle"), body.get_document("find")) {
        (Ok(middle), Err(_)) => shard::ShardKeyValue::from_document(middle, &names).ok_or_else(|| {
            Error::bad_value(format!(
                "split failed: middle {middle} does not match the shard key {}",
                table.pattern.to_document()
            ))
        })?,
        (Err(_), Ok(find)) => median_of_chunk(router, &table, find).await?,
        _ => {
            return Err(Error::bad_value(
                "need to specify exactly one of 'find', 'bounds', or 'middle'",
            ));
        }
    };
    let chunk = table.chunk_for(&point).clone();
    if chunk.min == point || !chunk.contains(&point) {
        return Err(Error::bad_value(format!(
            "cannot split chunk [{}, {}) at {}: the split point must lie strictly inside the chunk",
            chunk.min.to_document(&names),
            chunk.max.to_document(&names),
            point.to_document(&names)
        )));
    }
    commit_split(
        router.catalog.config(),
        &router.options.self_host(),
        &table,
        &chunk,
        std::slice::from_ref(&point),
    )
    .await?;
    router.catalog.invalidate_collection(ns);
    tracing::info!(%ns, at = %point.to_document(&names), "chunk split");
    Ok(Document::new())
}

/// The median shard key of the chunk holding the document `find` pins (`sh.splitFind`).
async fn median_of_chunk(
    router: &Router,
    table: &shard::RoutingTable,
    find: &Document,
) -> Result<shard::ShardKeyValue> {
    let shard::Target::Key(key) = shard::target_filter(&table.pattern, find) else {
        return Err(Error::bad_value(format!(
            "split failed: find {find} must pin the whole shard key {}",
            table.pattern.to_document()
        )));
    };
    let chunk = table.chunk_for(&key).clone();
    let owner = router.catalog.shard(&chunk.shard).await?;
    let (db, coll) = table.namespace.split_once('.').unwrap_or_default();
    let projection: Document = table
        .pattern
        .names()
        .iter()
        .map(|n| (n.to_string(), Bson::Int32(1)))
        .collect();
    let projection = crate::query::projection::Projection::parse(&projection)?;
    let mut keys = Vec::new();
    for doc in find_all(&owner.client, db, coll, Document::new(), None).await? {
        let key = table.pattern.extract(&projection.apply(&doc)?)?;
        if chunk.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort();
    keys.dedup();
    keys.get(keys.len() / 2)
        .filter(|median| **median != chunk.min)
        .cloned()
        .ok_or_else(|| {
            Error::new(
                shard::code::OPERATION_FAILED,
                "cannot split chunk: it holds too few distinct keys",
            )
        })
}

/// Splits `chunk` of `table` at `points` (sorted, each strictly inside the chunk) on the config servers:
/// the chunk keeps its id and shrinks to [min, first point), a new chunk is inserted for each further piece,
/// each with the collection version's next minor version (w: majority), and the change is logged as `split`
/// (one point) or one `multi-split` entry per piece, as MongoDB's config server does. `server` names who
/// made the change in `config.changelog`. Used by `split` (mongos) and the balancer's splits by size.
pub async fn commit_split(
    config: &ReplicaSetClient,
    server: &str,
    table: &shard::RoutingTable,
    chunk: &shard::Chunk,
    points: &[shard::ShardKeyValue],
) -> Result<()> {
    let names = table.pattern.names();
    let top = table.collection_version();
    let lastmod = |piece: usize| shard::Lastmod {
        major: top.major,
        minor: top.minor + 1 + piece as u32,
    };
    let bounds: Vec<&shard::ShardKeyValue> = std::iter::once(&chunk.min)
        .chain(points)
        .chain(std::iter::once(&chunk.max))
        .collect();
    let pieces: Vec<(Document, Document, Timestamp)> = bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            (
                w[0].to_document(&names),
                w[1].to_document(&names),
                lastmod(i).to_timestamp(),
            )
        })
        .collect();
    let update = doc! {"update": "chunks", "updates": [{"q": {"_id": chunk.id}, "u": {"$set": {
        "max": &pieces[0].1, "lastmod": pieces[0].2,
    }}}], "$db": "config"};
    write_majority(config, update).await?;
    let uppers: Vec<Document> = bounds
        .windows(2)
        .enumerate()
        .skip(1)
        .map(|(i, w)| {
            shard::Chunk {
                id: ObjectId::new(),
                min: w[0].clone(),
                max: w[1].clone(),
                shard: chunk.shard.clone(),
                lastmod: lastmod(i),
            }
            .to_document(&names, &table.uuid, now_timestamp())
        })
        .collect();
    write_majority(config, doc! {"insert": "chunks", "documents": uppers, "$db": "config"}).await?;
    let ns = table.namespace.as_str();
    let before = doc! {"min": chunk.min.to_document(&names), "max": chunk.max.to_document(&names)};
    let piece_doc =
        |(min, max, lastmod): &(Document, Document, Timestamp)| doc! {"min": min, "max": max, "lastmod": lastmod};
    if let [left, right] = pieces.as_slice() {
        let details =
            doc! {"before": before, "left": piece_doc(left), "right": piece_doc(right), "owningShard": &chunk.shard};
        changelog_on(config, server, "split", ns, details).await;
    } else {
        for (i, piece) in pieces.iter().enumerate() {
            let details = doc! {"before": &before, "number": (i + 1) as i32, "of": pieces.len() as i32,
            "chunk": piece_doc(piece), "owningShard": &chunk.shard};
            changelog_on(config, server, "multi-split", ns, details).await;
        }
    }
    Ok(())
}

/// Records a metadata change in `config.changelog`, as the config server does (best effort: a change that
/// happened is not undone because its log entry could not be written).
pub async fn changelog(router: &Router, what: &str, ns: &str, details: Document) {
    changelog_on(router.catalog.config(), &router.options.self_host(), what, ns, details).await;
}

/// [`changelog`] written by `server` through the config servers' client `config`.
pub async fn changelog_on(config: &ReplicaSetClient, server: &str, what: &str, ns: &str, details: Document) {
    let now = bson::DateTime::now();
    let entry = doc! {
        "_id": format!("{server}-{}-{}", now.try_to_rfc3339_string().unwrap_or_default(), ObjectId::new()),
        "server": server, "shard": "config", "clientAddr": "", "time": now, "what": what, "ns": ns,
        "details": details,
    };
    let insert = doc! {"insert": "changelog", "documents": [entry], "$db": "config"};
    if let Err(err) = write_majority(config, insert).await {
        tracing::warn!(error = %err, what, ns, "cannot write config.changelog");
    }
}

/// `getShardMap`: every shard's and the config servers' connection strings.
async fn get_shard_map(router: &Router) -> Result<Document> {
    let shards = router.catalog.reload_shards().await?;
    let config = router.catalog.config().seeds().to_string();
    let mut map = doc! {"config": &config};
    let mut hosts = Document::new();
    let mut conn_strings = doc! {&config: "config"};
    for shard in &shards {
        map.insert(shard.id.clone(), shard.host.clone());
        conn_strings.insert(shard.host.clone(), shard.id.clone());
        if let Some((_, list)) = shard.host.split_once('/') {
            for host in list.split(',') {
                hosts.insert(host.to_string(), shard.id.clone());
            }
        }
    }
    if let Some((_, list)) = config.split_once('/') {
        for host in list.split(',') {
            hosts.insert(host.to_string(), "config");
        }
    }
    Ok(doc! {"map": map, "hosts": hosts, "connStrings": conn_strings})
}

/// `listDatabases` on the router: the cluster's databases from `config.databases`.
pub async fn list_databases(router: &Router) -> Result<Document> {
    let databases = find_all(
        router.catalog.config(),
        "config",
        "databases",
        doc! {},
        Some(doc! {"_id": 1}),
    )
    .await?;
    let list: Vec<Document> = databases
        .iter()
        .filter_map(|d| d.get_str("_id").ok())
        .map(|name| doc! {"name": name, "sizeOnDisk": 0_i64, "empty": false})
        .collect();
    Ok(doc! {"databases": list, "totalSize": 0_i64, "totalSizeMb": 0_i64})
}

fn new_uuid() -> Binary {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: bytes.to_vec(),
    }
}

/// The cluster time of a metadata change (seconds since the epoch, increment 1).
pub(crate) fn now_timestamp() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Timestamp {
        time: u32::try_from(secs).unwrap_or(u32::MAX),
        increment: 1,
    }
}
