//! Read concern: which data a read may return and what it waits for.
//!
//! ```text
//! local / available   the newest data on this member; may roll back
//! majority            served speculatively: read the newest data, then wait until the point read is
//!                     majority-committed (so what was returned can never roll back)
//! linearizable        primary only; after reading, write a no-op and wait until it is majority-committed,
//!                     which proves this member was still primary when it answered
//! afterClusterTime    (local and majority only; not null; not past this member's cluster time) wait
//!                     until this member has applied (local) or majority-committed (majority) that
//!                     timestamp before reading, within the command's `maxTimeMS`; a primary behind it
//!                     writes a no-op to get there
//! ```
//!
//! Every read records the optime it read at as the command's `operationTime` (`cluster_time.rs`).

use bson::{Bson, Document, doc};

use super::Context;
use super::args;
use crate::error::{Error, Result, code};
use crate::member::{WriteConcern, WriteMode};
use crate::repl::OpTime;
use crate::storage::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Local,
    Available,
    Majority,
    Linearizable,
    Snapshot,
}

#[derive(Debug, Clone)]
pub struct ReadConcern {
    pub level: Level,
    pub after_cluster_time: Option<bson::Timestamp>,
    /// `atClusterTime` (snapshot level only): the past time a snapshot read reads at.
    pub at_cluster_time: Option<bson::Timestamp>,
}

impl ReadConcern {
    /// The command's read concern; without a level, the cluster-wide default level (`setDefaultRWConcern`)
    /// or `local`.
    pub fn for_command(ctx: &Context<'_>) -> Result<ReadConcern> {
        let mut rc = ReadConcern::parse(ctx.body)?;
        let explicit = args::opt_doc(ctx.body, "readConcern")?.is_some_and(|rc| rc.contains_key("level"));
        if !explicit && let Some(level) = super::rw_defaults::default_read_level(ctx)? {
            rc.level = match level.as_str() {
                "majority" => Level::Majority,
                "available" => Level::Available,
                _ => Level::Local,
            };
        }
        Ok(rc)
    }

    pub fn parse(body: &Document) -> Result<ReadConcern> {
        let Some(rc) = args::opt_doc(body, "readConcern")? else {
            return Ok(ReadConcern {
                level: Level::Local,
                after_cluster_time: None,
                at_cluster_time: None,
            });
        };
        let level = match rc.get("level") {
            None | Some(Bson::Null) => Level::Local,
            Some(Bson::String(s)) => match s.as_str() {
                "local" => Level::Local,
                "available" => Level::Available,
                "majority" => Level::Majority,
                "linearizable" => Level::Linearizable,
                "snapshot" => Level::Snapshot,
                other => return Err(Error::failed_to_parse(format!("invalid read concern level: {other}"))),
            },
            Some(_) => return Err(Error::type_mismatch("readConcern.level must be a string")),
        };
        let after_cluster_time = cluster_time_field(rc, "afterClusterTime")?;
        if after_cluster_time.is_some() && !matches!(level, Level::Local | Level::Majority | Level::Snapshot) {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                "afterClusterTime field can be set only if level is local, majority or snapshot",
            ));
        }
        let at_cluster_time = cluster_time_field(rc, "atClusterTime")?;
        if at_cluster_time.is_some() && level != Level::Snapshot {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                "readConcern atClusterTime value must only be set for read concern level snapshot",
            ));
        }
        if at_cluster_time.is_some() && after_cluster_time.is_some() {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                "Can not specify both afterClusterTime and atClusterTime",
            ));
        }
        Ok(ReadConcern {
            level,
            after_cluster_time,
            at_cluster_time,
        })
    }
}

/// `afterClusterTime` or `atClusterTime`: a timestamp, not the null one (72).
fn cluster_time_field(rc: &Document, name: &str) -> Result<Option<bson::Timestamp>> {
    match rc.get(name) {
        None => Ok(None),
        Some(Bson::Timestamp(ts)) if ts.time == 0 && ts.increment == 0 => Err(Error::new(
            code::INVALID_OPTIONS,
            format!("{name} cannot be a null timestamp"),
        )),
        Some(Bson::Timestamp(ts)) => Ok(Some(*ts)),
        Some(_) => Err(Error::type_mismatch(format!("{name} must be a timestamp"))),
    }
}

/// The commands that take `readConcern: {level: "snapshot"}` outside a transaction (MongoDB 5.0): the reads
/// `find`, `aggregate` and `distinct`. Every other command refuses it with InvalidOptions (72), as mongod
/// does — the writes and catalog reads a driver sends in a snapshot session among them.
pub fn check_snapshot_support(name: &str, body: &Document) -> Result<()> {
    let snapshot = matches!(
        body.get("readConcern"),
        Some(Bson::Document(rc)) if rc.get_str("level").is_ok_and(|l| l == "snapshot")
    );
    if !snapshot || matches!(name, "find" | "aggregate" | "distinct") {
        return Ok(());
    }
    Err(Error::new(
        code::INVALID_OPTIONS,
        format!(
            "Command {name} does not support {{ readConcern: {{ level: \"snapshot\" }} }} outside a multi-document transaction"
        ),
    ))
}

/// The view a read reads: for a snapshot read, the one at its `atClusterTime` (or now, kept for later reads
/// at its time) with that time, which the reply reports as `atClusterTime`; for any other read, the newest
/// commit and no time.
pub fn read_view(ctx: &Context<'_>, rc: &ReadConcern) -> Result<(ReadView, Option<bson::Timestamp>)> {
    if rc.level != Level::Snapshot {
        return Ok((ReadView::Current(ctx.node.storage.snapshot()?), None));
    }
    if let Some(at) = rc.at_cluster_time {
        let current = super::cluster_time::current(ctx.node);
        if at > current {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                format!(
                    "readConcern atClusterTime value must not be greater than the current clusterTime. Requested clusterTime: {}; current clusterTime: {}",
                    show(at),
                    show(current)
                ),
            ));
        }
    }
    let (view, at) = ctx.node.storage.snapshot_at(rc.at_cluster_time)?;
    Ok((ReadView::Retained(view), Some(at)))
}

/// A read's view of the data: the newest commit, or one retained for snapshot reads.
pub enum ReadView {
    Current(Snapshot),
    Retained(std::sync::Arc<Snapshot>),
}

impl ReadView {
    /// Whether this is a snapshot read's view: the whole result must come from it (no later re-reads).
    pub fn is_retained(&self) -> bool {
        matches!(self, ReadView::Retained(_))
    }
}

impl std::ops::Deref for ReadView {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        match self {
            ReadView::Current(snapshot) => snapshot,
            ReadView::Retained(snapshot) => snapshot,
        }
    }
}

/// Checks and waits before a read: readability of this member, linearizable-on-primary, afterClusterTime.
pub async fn before_read(ctx: &Context<'_>, rc: &ReadConcern) -> Result<()> {
    let member = &ctx.node.member;
    if serves_as_deposed_primary(ctx) {
        // Fail point: read as if still primary (no primary check).
    } else if rc.level == Level::Linearizable {
        if !member.role().state.is_primary() {
            return Err(Error::new(
                code::NOT_WRITABLE_PRIMARY,
                "cannot satisfy linearizable read concern on non-primary node",
            ));
        }
    } else {
        member.check_readable(ctx.secondary_ok)?;
    }
    if let Some(ts) = rc.after_cluster_time {
        let current = super::cluster_time::current(ctx.node);
        if ts > current {
            return Err(Error::new(
                code::INVALID_OPTIONS,
                format!(
                    "readConcern afterClusterTime value must not be greater than the current clusterTime. Requested clusterTime: {}; current clusterTime: {}",
                    show(ts),
                    show(current)
                ),
            ));
        }
        let wait = wait_for_cluster_time(ctx, rc.level, ts);
        match args::opt_i64(ctx.body, "maxTimeMS")? {
            Some(ms) if ms > 0 => tokio::time::timeout(std::time::Duration::from_millis(ms as u64), wait)
                .await
                .map_err(|_| Error::new(code::MAX_TIME_MS_EXPIRED, "operation exceeded time limit"))??,
            _ => wait.await?,
        }
    }
    Ok(())
}

/// Waits until this member has applied (or, for majority, majority-committed) `ts`. A primary that has
/// not reached it (a time gossiped from a member whose oplog ran ahead) writes a no-op to move on, as
/// mongod does.
async fn wait_for_cluster_time(ctx: &Context<'_>, level: Level, ts: bson::Timestamp) -> Result<()> {
    let member = &ctx.node.member;
    if member.role().writable && ctx.node.storage.positions().last_written.ts < ts {
        ctx.node
            .storage
            .write(false, move |w| w.noop_after(ts, doc! {"msg": "afterClusterTime"}))
            .await??;
    }
    if level == Level::Majority {
        return member.wait_committed(|committed| committed.ts >= ts).await;
    }
    let mut positions = ctx.node.storage.watch_positions();
    positions
        .wait_for(|p| p.last_written.ts >= ts)
        .await
        .map(|_| ())
        .map_err(|_| Error::new(code::SHUTDOWN_IN_PROGRESS, "shutting down"))
}

/// A timestamp as mongod prints it: `Timestamp(time, increment)`.
fn show(ts: bson::Timestamp) -> String {
    format!("Timestamp({}, {})", ts.time, ts.increment)
}

/// Waits after a read: majority reads until what was read is majority-committed, linearizable reads until
/// a no-op written after the read is majority-committed.
pub async fn after_read(ctx: &Context<'_>, rc: &ReadConcern, read_at: OpTime) -> Result<()> {
    ctx.operation_time.note(read_at.ts);
    let member = &ctx.node.member;
    if serves_as_deposed_primary(ctx) {
        // Fail point: no majority wait, no linearizable no-op.
        return Ok(());
    }
    match rc.level {
        // On any member: what was read must be majority-committed before it is returned (a snapshot read
        // too: MongoDB's snapshot reads return majority-committed data).
        Level::Majority | Level::Snapshot => member.wait_committed(|committed| committed >= read_at).await,
        Level::Linearizable => {
            member.check_writable(&ctx.db)?;
            let optime = ctx
                .node
                .storage
                .write(false, |w| w.noop(doc! {"msg": "linearizable read"}))
                .await??;
            let wc = WriteConcern {
                w: WriteMode::Majority,
                j: false,
                wtimeout: None,
            };
            match member.wait_for_write_concern(optime, &wc).await {
                None => Ok(()),
                Some(err) => Err(wc_error(err)),
            }
        }
        _ => Ok(()),
    }
}

/// Fail point `deposedPrimaryServesReads`: a member that was primary and no longer is answers reads as if it
/// still were.
fn serves_as_deposed_primary(ctx: &Context<'_>) -> bool {
    let member = &ctx.node.member;
    !member.role().state.is_primary()
        && member.has_been_primary()
        && ctx
            .node
            .failpoints
            .hit(crate::failpoint::DEPOSED_PRIMARY_SERVES_READS)
            .is_some()
}

/// A failed wait as a command error, keeping the code and its name.
fn wc_error(err: Document) -> Error {
    let code = err.get_i32("code").unwrap_or(1);
    let message = err.get_str("errmsg").unwrap_or("write concern failed").to_string();
    let name = match code {
        64 => "WriteConcernTimeout",
        91 => "ShutdownInProgress",
        11602 => "InterruptedDueToReplStateChange",
        _ => "UnknownError",
    };
    Error::new((code, name), message)
}
