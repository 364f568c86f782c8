//! Default read and write concerns: the implicit default write concern (MongoDB 5.0+), the cluster-wide
//! defaults set with `setDefaultRWConcern` and read with `getDefaultRWConcern`, and the rule that resolves
//! the write concern a command runs with.
//!
//! The cluster-wide defaults are one replicated document, `config.settings` `{_id: "ReadWriteConcernDefaults"}`,
//! in mongod's shape, so they survive restarts and fail-overs and every member sees the same value.
//!
//! The implicit default write concern is `{w: 1}` when the set has an arbiter and its data-bearing voters are
//! no more than a voting majority (PSA, PSSA), and `{w: "majority"}` otherwise. A reconfig that would change
//! it is refused (103) while no cluster-wide write concern is set ([`check_reconfig`]).

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use crate::error::{Error, Result, code};
use crate::member::{WriteConcern, WriteMode};
use crate::repl::ReplSetConfig;
use crate::storage::Namespace;

/// `_id` of the defaults document in `config.settings`.
const DEFAULTS_ID: &str = "ReadWriteConcernDefaults";

fn settings_ns() -> Namespace {
    Namespace::new("config", "settings")
}

/// The implicit default write concern of a config.
pub fn implicit_write_mode(config: &ReplSetConfig) -> WriteMode {
    let arbiters = config.members.iter().filter(|m| m.arbiter_only).count();
    if arbiters > 0 && config.data_bearing_voter_count() <= config.majority_vote_count() {
        WriteMode::Nodes(1)
    } else {
        WriteMode::Majority
    }
}

/// The stored cluster-wide defaults, if any were ever set.
fn stored(ctx: &Context<'_>) -> Result<Option<Document>> {
    let snapshot = ctx.node.storage.snapshot()?;
    let Some(meta) = snapshot.collection(&settings_ns())? else {
        return Ok(None);
    };
    snapshot.get_by_id(&meta, &Bson::String(DEFAULTS_ID.into()))
}

/// The write concern a write runs with: the command's own `w` if it gave one, else the cluster-wide default,
/// else the implicit default; `j` and `wtimeout` given by the command apply either way.
pub fn resolve_write_concern(ctx: &Context<'_>, given: Option<&Document>) -> Result<WriteConcern> {
    let mut wc = WriteConcern::parse(given)?;
    if given.is_some_and(|g| g.contains_key("w")) {
        return Ok(wc);
    }
    let global = stored(ctx)?
        .and_then(|d| d.get_document("defaultWriteConcern").ok().cloned())
        .filter(|d| !d.is_empty());
    match global {
        Some(global) => {
            let base = WriteConcern::parse(Some(&global))?;
            wc.w = base.w;
            wc.j |= base.j;
            if wc.wtimeout.is_none() {
                wc.wtimeout = base.wtimeout;
            }
        }
        None => {
            if let Some(config) = ctx.node.member.role().config.as_ref() {
                wc.w = implicit_write_mode(config);
            }
        }
    }
    Ok(wc)
}

/// Whether an administrator set a cluster-wide default write concern (`setDefaultRWConcern`).
pub fn has_global_write_concern(ctx: &Context<'_>) -> Result<bool> {
    Ok(stored(ctx)?
        .and_then(|d| d.get_document("defaultWriteConcern").ok().cloned())
        .is_some_and(|d| !d.is_empty()))
}

/// The read concern level a read without one runs at: the cluster-wide default, else `local`.
pub fn default_read_level(ctx: &Context<'_>) -> Result<Option<String>> {
    Ok(stored(ctx)?
        .and_then(|d| d.get_document("defaultReadConcern").ok().cloned())
        .and_then(|rc| rc.get_str("level").ok().map(str::to_string)))
}

/// Refuses a reconfig that changes the implicit default write concern while no cluster-wide write concern
/// is set (103 NewReplicaSetConfigurationIncompatible), as MongoDB 5.0+ does.
pub fn check_reconfig(ctx: &Context<'_>, new_config: &Document) -> Result<()> {
    let Some(old) = ctx.node.member.role().config.clone() else {
        return Ok(());
    };
    let Ok(new) = ReplSetConfig::from_document(new_config) else {
        return Ok(()); // the reconfig itself reports what is wrong with the document
    };
    if implicit_write_mode(&old) == implicit_write_mode(&new) {
        return Ok(());
    }
    let global_set = stored(ctx)?
        .and_then(|d| d.get_document("defaultWriteConcern").ok().cloned())
        .is_some_and(|d| !d.is_empty());
    if global_set {
        return Ok(());
    }
    Err(Error::new(
        (103, "NewReplicaSetConfigurationIncompatible"),
        "Reconfig attempted to install a config that would change the implicit default write concern. Use the \
         setDefaultRWConcern command to set a cluster-wide write concern and try the reconfig again.",
    ))
}

/// `getDefaultRWConcern`.
pub fn get(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    reply(ctx, stored(ctx)?)
}

/// `setDefaultRWConcern`: validates, stores the new defaults (a replicated write), waits for a majority.
pub async fn set(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let write = args::opt_doc(ctx.body, "defaultWriteConcern")?;
    let read = args::opt_doc(ctx.body, "defaultReadConcern")?;
    if write.is_none() && read.is_none() {
        return Err(Error::bad_value(
            "At least one of the \"defaultReadConcern\" or \"defaultWriteConcern\" fields must be present",
        ));
    }
    if let Some(write) = write {
        validate_write(write)?;
    }
    if let Some(read) = read {
        validate_read(read)?;
    }
    ctx.node.member.check_writable("config")?;
    let previous = stored(ctx)?;
    if let Some(write) = write
        && write.is_empty()
        && previous
            .as_ref()
            .and_then(|d| d.get_document("defaultWriteConcern").ok())
            .is_some_and(|d| !d.is_empty())
    {
        return Err(Error::bad_value(
            "The global default write concern cannot be unset once it is set",
        ));
    }
    let mut next = previous.clone().unwrap_or_else(|| doc! {"_id": DEFAULTS_ID});
    if let Some(write) = write {
        next.insert("defaultWriteConcern", normalized_write(write)?);
    }
    if let Some(read) = read {
        if read.is_empty() {
            next.remove("defaultReadConcern");
        } else {
            next.insert("defaultReadConcern", read.clone());
        }
    }
    let wall = ctx.node.clock().now();
    next.insert("updateWallClockTime", wall);
    let ns = settings_ns();
    let written = next.clone();
    ctx.node
        .storage
        .write(true, move |w| -> Result<()> {
            let meta = w.ensure_collection(&ns)?;
            let id = Bson::String(DEFAULTS_ID.into());
            match w.get_by_id(&meta, &id)? {
                Some(before) => w.replace(&meta, &before, written, None),
                None => w.insert(&meta, written, None),
            }
        })
        .await??;
    let optime = ctx.node.storage.positions().last_written;
    let wc = WriteConcern::parse(args::opt_doc(ctx.body, "writeConcern")?)?;
    if let Some(err) = ctx.node.member.wait_for_write_concern(optime, &wc).await {
        return Err(Error::new(
            (err.get_i32("code").unwrap_or(64), code::WRITE_CONCERN_TIMEOUT.1),
            err.get_str("errmsg")
                .unwrap_or("waiting for replication timed out")
                .to_string(),
        ));
    }
    tracing::info!(defaults = %next, "cluster-wide read/write concern defaults set");
    let mut stored_doc = next;
    stored_doc.insert("updateOpTime", optime.ts);
    reply(ctx, Some(stored_doc))
}

fn validate_write(write: &Document) -> Result<()> {
    if write.is_empty() {
        return Ok(());
    }
    let wc = WriteConcern::parse(Some(write))?;
    if !write.contains_key("w") {
        return Err(Error::bad_value("Default write concern must have 'w' field."));
    }
    if wc.w == WriteMode::Nodes(0) {
        return Err(Error::bad_value(
            "Default write concern cannot be unacknowledged (w: 0)",
        ));
    }
    Ok(())
}

fn normalized_write(write: &Document) -> Result<Document> {
    if write.is_empty() {
        return Ok(Document::new());
    }
    let wc = WriteConcern::parse(Some(write))?;
    let mut out = wc.to_document();
    if !out.contains_key("wtimeout") {
        out.insert("wtimeout", 0);
    }
    Ok(out)
}

fn validate_read(read: &Document) -> Result<()> {
    for (key, value) in read {
        match key.as_str() {
            "level" => match value.as_str() {
                Some("local" | "available" | "majority") => {}
                _ => {
                    return Err(Error::bad_value(
                        "Default read concern level must be either 'local', 'available', or 'majority'",
                    ));
                }
            },
            other => {
                return Err(Error::bad_value(format!(
                    "Default read concern may only have a 'level', found '{other}'"
                )));
            }
        }
    }
    Ok(())
}

/// The reply of both commands, in mongod's shape.
fn reply(ctx: &Context<'_>, stored: Option<Document>) -> Result<Document> {
    let stored = stored.unwrap_or_default();
    let mut out = Document::new();
    let read = stored.get_document("defaultReadConcern").ok().filter(|d| !d.is_empty());
    out.insert(
        "defaultReadConcern",
        read.cloned().unwrap_or_else(|| doc! {"level": "local"}),
    );
    let write = stored
        .get_document("defaultWriteConcern")
        .ok()
        .filter(|d| !d.is_empty());
    let write_source = if write.is_some() { "global" } else { "implicit" };
    let write = match write {
        Some(w) => w.clone(),
        None => {
            let mode = ctx
                .node
                .member
                .role()
                .config
                .as_ref()
                .map(|config| implicit_write_mode(config))
                .unwrap_or(WriteMode::Majority);
            let mut d = WriteConcern {
                w: mode,
                j: false,
                wtimeout: None,
            }
            .to_document();
            d.insert("wtimeout", 0);
            d
        }
    };
    out.insert("defaultWriteConcern", write);
    if let Ok(ts) = stored.get_timestamp("updateOpTime") {
        out.insert("updateOpTime", ts);
    }
    if let Ok(date) = stored.get_datetime("updateWallClockTime") {
        out.insert("updateWallClockTime", *date);
    }
    out.insert("defaultWriteConcernSource", write_source);
    out.insert(
        "defaultReadConcernSource",
        if read.is_some() { "global" } else { "implicit" },
    );
    out.insert("localUpdateWallClockTime", ctx.node.clock().now());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::MemberConfig;

    fn set_of(data: i32, arbiters: i32) -> ReplSetConfig {
        let mut members: Vec<MemberConfig> = (0..data).map(|i| MemberConfig::new(i, format!("h:{i}"))).collect();
        members.extend((data..data + arbiters).map(|i| MemberConfig::arbiter(i, format!("h:{i}"))));
        ReplSetConfig::new("rs", members)
    }

    #[test]
    fn implicit_default_is_w1_only_for_arbiter_sets_without_a_data_majority() {
        assert_eq!(implicit_write_mode(&set_of(1, 0)), WriteMode::Majority);
        assert_eq!(implicit_write_mode(&set_of(3, 0)), WriteMode::Majority);
        assert_eq!(implicit_write_mode(&set_of(2, 1)), WriteMode::Nodes(1), "PSA");
        assert_eq!(implicit_write_mode(&set_of(3, 1)), WriteMode::Nodes(1), "PSSA");
        assert_eq!(implicit_write_mode(&set_of(4, 1)), WriteMode::Majority, "PSSSA");
        assert_eq!(implicit_write_mode(&set_of(3, 2)), WriteMode::Nodes(1), "PSSAA");
    }

    #[test]
    fn default_write_concern_validation() {
        assert!(validate_write(&doc! {"w": 1}).is_ok());
        assert!(validate_write(&doc! {"w": "majority", "wtimeout": 100}).is_ok());
        assert!(validate_write(&doc! {}).is_ok());
        assert!(validate_write(&doc! {"w": 0}).is_err());
        assert!(validate_write(&doc! {"j": true}).is_err());
        assert!(validate_read(&doc! {"level": "majority"}).is_ok());
        assert!(validate_read(&doc! {"level": "snapshot"}).is_err());
        assert!(validate_read(&doc! {"level": "local", "afterClusterTime": 1}).is_err());
    }
}
