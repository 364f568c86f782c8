//! Replica-set administration commands, `configureFailPoint`, and the replication metadata that oplog
//! reads carry.

use bson::{Bson, Document, doc};

use super::Context;
use crate::error::{Error, Result};

/// Replication's hook on `find` and `getMore`: a request that asks for `$replData` (a member's oplog
/// fetcher) gets the member's term, commit point, newest entry, rollback id and primary with a successful
/// reply, taken after the read.
pub(super) fn with_repl_data(ctx: &Context<'_>, reply: Result<Document>) -> Result<Document> {
    let mut reply = reply?;
    if ctx.body.contains_key("$replData") {
        reply.insert("$replData", ctx.node.member.repl_data());
    }
    Ok(reply)
}

pub async fn initiate(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let config = match ctx.body.get("replSetInitiate") {
        Some(Bson::Document(d)) if !d.is_empty() => Some(d),
        Some(Bson::Document(_)) | Some(Bson::Null) | None => None,
        Some(other) if crate::bsonx::as_i64(other).is_some() || matches!(other, Bson::Boolean(_)) => None,
        Some(_) => {
            return Err(Error::type_mismatch(
                "replSetInitiate takes a config document or nothing",
            ));
        }
    };
    ctx.node.member.initiate(config).await?;
    if config.is_some() {
        return Ok(Document::new());
    }
    Ok(
        doc! {"info2": "no configuration specified. Using a default configuration for the set", "me": ctx.node.options().self_host()},
    )
}

pub fn get_status(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    ctx.node.member.status()
}

/// `replSetGetConfig`: the installed config, without the server-managed `newlyAdded` flags unless
/// `includeNewlyAdded: true` (as mongod does, so `rs.conf()` → `rs.reconfig()` round-trips).
pub fn get_config(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let mut config = ctx.node.member.config_document()?;
    let include_newly_added = super::args::opt_bool(ctx.body, "includeNewlyAdded")?.unwrap_or(false);
    if !include_newly_added && let Ok(members) = config.get_array_mut("members") {
        for member in members.iter_mut() {
            if let Bson::Document(member) = member {
                member.remove("newlyAdded");
            }
        }
    }
    Ok(doc! {"config": config})
}

/// `replSetResizeOplog {size: <MB>}`: the oplog's new maximum size (990 MB to 1 PB). `minRetentionHours` is
/// not supported (only 0, mongod's default, is accepted).
pub async fn resize_oplog(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let size = match ctx.body.get("size") {
        None => None,
        Some(value) => Some(
            number(value)
                .ok_or_else(|| Error::type_mismatch("BSON field 'replSetResizeOplog.size' is the wrong type"))?,
        ),
    };
    let retention = match ctx.body.get("minRetentionHours") {
        None => None,
        Some(value) => Some(number(value).ok_or_else(|| {
            Error::type_mismatch("BSON field 'replSetResizeOplog.minRetentionHours' is the wrong type")
        })?),
    };
    if let Some(hours) = retention {
        if hours < 0.0 {
            return Err(Error::bad_value(format!(
                "BSON field 'replSetResizeOplog.minRetentionHours' value must be >= 0, actual value '{hours}'"
            )));
        }
        if hours > 0.0 {
            return Err(Error::new(
                crate::error::code::ILLEGAL_OPERATION,
                "minRetentionHours is not supported by this engine's oplog",
            ));
        }
    }
    if let Some(size) = size {
        ctx.node.member.resize_oplog(size).await?;
    }
    Ok(Document::new())
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Double(v) => Some(*v),
        Bson::Int32(v) => Some(f64::from(*v)),
        Bson::Int64(v) => Some(*v as f64),
        _ => None,
    }
}

pub fn configure_fail_point(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let name = ctx
        .body
        .get_str("configureFailPoint")
        .map_err(|_| Error::type_mismatch("configureFailPoint takes the fail point's name"))?;
    let previous = ctx.node.failpoints.configure(name, ctx.body)?;
    Ok(
        doc! {"count": 0, "mode": previous.get("mode").cloned().unwrap_or(Bson::Int32(0)), "data": previous.get_document("data").cloned().unwrap_or_default()},
    )
}

pub async fn reconfig(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let config = ctx
        .body
        .get_document("replSetReconfig")
        .map_err(|_| Error::type_mismatch("replSetReconfig takes the new config document"))?;
    let force = super::args::opt_bool(ctx.body, "force")?.unwrap_or(false);
    let sets_newly_added = config.get_array("members").is_ok_and(|members| {
        members
            .iter()
            .any(|m| m.as_document().is_some_and(|m| m.contains_key("newlyAdded")))
    });
    if sets_newly_added {
        return Err(Error::new(
            crate::error::code::INVALID_REPLICA_SET_CONFIG,
            "the newlyAdded field is managed by the server and may not be given in replSetReconfig",
        ));
    }
    super::rw_defaults::check_reconfig(ctx, config)?;
    ctx.node.member.reconfig(config, force).await?;
    Ok(Document::new())
}

pub async fn step_down(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let secs = match ctx.body.get("replSetStepDown") {
        Some(v) => crate::bsonx::as_i64(v)
            .or_else(|| v.as_f64().map(|f| f as i64))
            .unwrap_or(60),
        None => 60,
    };
    let catch_up = super::args::opt_i64(ctx.body, "secondaryCatchUpPeriodSecs")?.unwrap_or(10);
    let force = super::args::opt_bool(ctx.body, "force")?.unwrap_or(false);
    ctx.node.member.step_down(secs, catch_up, force).await?;
    Ok(Document::new())
}

pub async fn freeze(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let secs = ctx
        .body
        .get("replSetFreeze")
        .and_then(crate::bsonx::as_i64)
        .ok_or_else(|| Error::type_mismatch("replSetFreeze takes a number of seconds"))?;
    ctx.node.member.freeze(secs).await?;
    Ok(Document::new())
}

pub async fn sync_from(ctx: &Context<'_>) -> Result<Document> {
    ctx.require_admin()?;
    let host = ctx
        .body
        .get_str("replSetSyncFrom")
        .map_err(|_| Error::type_mismatch("replSetSyncFrom takes a host:port"))?;
    ctx.node.member.sync_from(host).await
}
