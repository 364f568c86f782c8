//! Fail points: named switches that make the engine misbehave on purpose, as MongoDB's own tests do.
//!
//! Set at start-up (`--setParameter failpoint.NAME={mode: ...}` or `failpoint.NAME=alwaysOn`) or at run time
//! with `configureFailPoint`. A fail point is off unless named. Modes: `alwaysOn`, `off`, `{times: n}` (fires n
//! times, then off), `{skip: n}` (lets n chances pass, then fires every time), with optional `data`. Every hit
//! is logged. Start-up parameters are checked ([`FailPoints::check_parameter`]) before the member starts, so
//! an unknown name or a bad mode stops it at once.
//!
//! Two kinds: the historic bugs and faults below, read where the engine would misbehave, and MongoDB's test
//! fail points for drivers' tests (`failCommand` and its companions), applied around each client command by
//! [`fail_command`].

pub mod fail_command;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bson::{Bson, Document, doc};

use crate::clock::Clock;
use crate::error::{Error, Result};

/// Acknowledge journaled writes (`j:true`, or `w:"majority"` with `writeConcernMajorityJournalDefault`)
/// without waiting for the fsync'd commit, their oplog entries kept out of the journal until the next
/// checkpoint (`WriteCtx::withhold_from_journal`), so that a SIGKILL can lose them.
pub const SKIP_JOURNAL_FSYNC: &str = "skipJournalFsync";
/// Voters compare only the timestamps of last-applied optimes, ignoring terms (protocol version 0's flaw).
pub const ELECT_BY_TIMESTAMP: &str = "electByTimestamp";
/// A member that was primary keeps serving reads as if it still were (no primary check, no linearizable
/// no-op, no majority wait).
pub const DEPOSED_PRIMARY_SERVES_READS: &str = "deposedPrimaryServesReads";
/// Acknowledge `w:"majority"` writes as soon as they are written locally.
pub const ACK_MAJORITY_BEFORE_REPLICATION: &str = "ackMajorityBeforeReplication";
/// A member whose oplog diverged from its sync source keeps its unreplicated writes and carries on.
pub const SKIP_ROLLBACK: &str = "skipRollback";
/// A secondary applies oplog entries out of order: each batch is applied backwards, two batches late (the
/// oplog itself keeps its order).
pub const APPLY_OPLOG_OUT_OF_ORDER: &str = "applyOplogOutOfOrder";

/// A test aid, not a bug (mongod's name): initial sync pauses after cloning the data, before it notes the
/// source's newest oplog entry and applies the oplog, until the fail point is turned off.
pub const INITIAL_SYNC_HANG_AFTER_DATA_CLONING: &str = "initialSyncHangAfterDataCloning";

/// Not a bug but a fault: this member's wall clock runs `data.offsetMillis` ahead (negative: behind) while
/// on. Oplog timestamps follow it; the safe configuration must tolerate it (see [`crate::clock`]). Only this
/// member's clock moves, even when several members share a process.
pub const SKEW_CLOCK: &str = "skewClock";

/// MongoDB's test fail point: commands named in `data.failCommands` fail, close the connection, block, or get
/// a write concern error ([`fail_command`]).
pub const FAIL_COMMAND: &str = "failCommand";
/// MongoDB's test fail point: a `getMore` fails with `data.errorCode` once its cursor is checked out.
pub const FAIL_GET_MORE_AFTER_CURSOR_CHECKOUT: &str = "failGetMoreAfterCursorCheckout";
/// MongoDB's test fail point: every command sent with `maxTimeMS` fails with MaxTimeMSExpired.
pub const MAX_TIME_ALWAYS_TIME_OUT: &str = "maxTimeAlwaysTimeOut";
/// MongoDB's test fail point: a retryable write (`lsid` + `txnNumber`) fails with
/// `data.failBeforeCommitExceptionCode` without being applied, or (`data.closeConnection`, default true) is
/// applied and its connection closed before the reply.
pub const ON_PRIMARY_TRANSACTIONAL_WRITE: &str = "onPrimaryTransactionalWrite";

/// A test aid, not a bug (mongod's names): a migration's donor pauses after step N (1 persisted, 2 cloned,
/// 3 caught up, 4 in the critical section before the commit, 5 committed, 6 finished before range
/// deletion) until the fail point is turned off.
pub const MOVE_CHUNK_HANG_AT_STEP: [&str; 6] = [
    "moveChunkHangAtStep1",
    "moveChunkHangAtStep2",
    "moveChunkHangAtStep3",
    "moveChunkHangAtStep4",
    "moveChunkHangAtStep5",
    "moveChunkHangAtStep6",
];
/// A donor does not refresh after a migration commits: it keeps accepting versioned writes to the moved range
/// from routers that have not seen the commit (they are lost: orphans, then deleted).
pub const MIGRATION_DONOR_ACCEPTS_WRITES_AFTER_COMMIT: &str = "migrationDonorAcceptsWritesAfterCommit";
/// The donor's `_transferMods` sends nothing: a migration commits without the writes made during the clone.
pub const MIGRATION_COMMIT_BEFORE_CATCH_UP: &str = "migrationCommitBeforeCatchUp";
/// On a router: an insert a shard refuses with StaleConfig is sent again to the same shard without a
/// version, instead of being routed again from fresh metadata (it lands on a shard that does not own it).
pub const ROUTER_IGNORES_STALE_CONFIG: &str = "routerIgnoresStaleConfig";
/// The range deleter deletes from the range's lower bound to the top of the key space, without checking
/// what the shard owns.
pub const RANGE_DELETER_DELETES_OWNED: &str = "rangeDeleterDeletesOwned";

/// The fail points [`fail_command::around_command`] applies around each command.
pub const COMMAND_FAIL_POINTS: &[&str] = &[
    FAIL_COMMAND,
    FAIL_GET_MORE_AFTER_CURSOR_CHECKOUT,
    MAX_TIME_ALWAYS_TIME_OUT,
    ON_PRIMARY_TRANSACTIONAL_WRITE,
];

/// The fail points this engine knows, with what each does when on.
pub const KNOWN: &[(&str, &str)] = &[
    (
        MIGRATION_DONOR_ACCEPTS_WRITES_AFTER_COMMIT,
        "a migration's donor keeps accepting writes to the moved range after the commit (they are lost)",
    ),
    (
        MIGRATION_COMMIT_BEFORE_CATCH_UP,
        "a migration commits without the writes made to the range during the clone (they are lost)",
    ),
    (
        ROUTER_IGNORES_STALE_CONFIG,
        "a router re-sends an insert refused with StaleConfig to the same shard unversioned (wrong shard)",
    ),
    (
        RANGE_DELETER_DELETES_OWNED,
        "orphan cleanup deletes from the range's lower bound to MaxKey without checking ownership",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[0],
        "a migration's donor pauses after persisting it; a test aid",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[1],
        "a migration's donor pauses after the clone; a test aid",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[2],
        "a migration's donor pauses after the catch-up; a test aid",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[3],
        "a migration's donor pauses in the critical section before the commit; a test aid",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[4],
        "a migration's donor pauses after the commit; a test aid",
    ),
    (
        MOVE_CHUNK_HANG_AT_STEP[5],
        "a migration's donor pauses before range deletion; a test aid",
    ),
    (
        SKIP_JOURNAL_FSYNC,
        "acknowledge j:true (and journaled w:majority) writes without waiting for the fsync'd commit",
    ),
    (
        ELECT_BY_TIMESTAMP,
        "optimes compare by timestamp alone, ignoring terms, when granting votes and choosing sync sources",
    ),
    (
        DEPOSED_PRIMARY_SERVES_READS,
        "a member that was primary serves local, majority and linearizable reads as if it still were",
    ),
    (
        ACK_MAJORITY_BEFORE_REPLICATION,
        "acknowledge w:majority writes before a majority has them",
    ),
    (
        SKIP_ROLLBACK,
        "a member whose oplog diverged keeps its unreplicated writes and continues from the sync source",
    ),
    (
        APPLY_OPLOG_OUT_OF_ORDER,
        "a secondary applies each oplog batch backwards and two batches late",
    ),
    (
        SKEW_CLOCK,
        "the member's wall clock runs data.offsetMillis ahead (negative: behind); a fault, not a bug",
    ),
    (
        INITIAL_SYNC_HANG_AFTER_DATA_CLONING,
        "initial sync pauses after cloning the data until the fail point is turned off; a test aid, not a bug",
    ),
    (
        FAIL_COMMAND,
        "commands in data.failCommands fail with data.errorCode, close the connection, block or get a write concern error",
    ),
    (
        FAIL_GET_MORE_AFTER_CURSOR_CHECKOUT,
        "getMore fails with data.errorCode after checking out its cursor",
    ),
    (
        MAX_TIME_ALWAYS_TIME_OUT,
        "every command with maxTimeMS fails with MaxTimeMSExpired",
    ),
    (
        ON_PRIMARY_TRANSACTIONAL_WRITE,
        "a retryable write fails before commit (data.failBeforeCommitExceptionCode) or closes its connection after it",
    ),
];

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Off,
    AlwaysOn,
    Times(u64),
    /// Lets this many chances pass, then fires every time.
    Skip(u64),
}

#[derive(Debug, Clone)]
struct State {
    mode: Mode,
    data: Document,
    hits: u64,
}

/// The member's fail points.
#[derive(Default)]
pub struct FailPoints {
    points: Mutex<HashMap<String, State>>,
    /// The member's wall clock, which `skewClock` sets (a fresh one in `default()`, for tests).
    clock: Clock,
    /// Some command fail point ([`COMMAND_FAIL_POINTS`]) is configured other than off: until then every command
    /// passes [`fail_command::around_command`] without taking the registry's lock.
    commands_armed: AtomicBool,
}

impl FailPoints {
    /// No fail point on; `skewClock` will set `clock`.
    pub fn new(clock: Clock) -> FailPoints {
        FailPoints {
            points: Mutex::default(),
            clock,
            commands_armed: AtomicBool::new(false),
        }
    }

    /// Reads `failpoint.NAME` entries of `--setParameter`; `skewClock` sets `clock`.
    pub fn from_parameters(params: &BTreeMap<String, String>, clock: Clock) -> Result<FailPoints> {
        let points = FailPoints::new(clock);
        for (key, value) in params {
            let Some(name) = key.strip_prefix("failpoint.") else {
                continue;
            };
            points.configure(name, &parameter_spec(name, value)?)?;
        }
        Ok(points)
    }

    /// Checks a `failpoint.NAME=VALUE` start-up parameter without configuring anything: the name must be a
    /// known fail point and the value a valid mode (as [`FailPoints::configure`] would take it).
    pub fn check_parameter(name: &str, value: &str) -> Result<()> {
        parse_spec(name, &parameter_spec(name, value)?).map(|_| ())
    }

    /// Whether `name` is a fail point this engine knows.
    pub fn is_known(name: &str) -> bool {
        KNOWN.iter().any(|(n, _)| *n == name)
    }

    /// `configureFailPoint`: returns the previous `{mode, data}`.
    pub fn configure(&self, name: &str, spec: &Document) -> Result<Document> {
        let (mode, data, clock_offset) = parse_spec(name, spec)?;
        if let Some(offset) = clock_offset {
            self.clock.set_offset_millis(offset);
            tracing::warn!(offset_ms = offset, "wall clock skewed");
        }
        let mut points = self
            .points
            .lock()
            .map_err(|_| Error::internal("fail point registry poisoned"))?;
        let previous = points.insert(
            name.to_string(),
            State {
                mode: mode.clone(),
                data,
                hits: 0,
            },
        );
        let armed = points
            .iter()
            .any(|(name, state)| COMMAND_FAIL_POINTS.contains(&name.as_str()) && state.mode != Mode::Off);
        self.commands_armed.store(armed, Ordering::Relaxed);
        tracing::warn!(failpoint = name, mode = ?mode, "fail point configured");
        Ok(match previous {
            Some(s) => doc! {"mode": mode_code(&s.mode), "data": s.data},
            None => doc! {"mode": 0, "data": {}},
        })
    }

    /// Whether a fail point that acts around commands ([`COMMAND_FAIL_POINTS`]) may be on.
    pub fn commands_armed(&self) -> bool {
        self.commands_armed.load(Ordering::Relaxed)
    }

    /// Whether the fail point fires now (counts down `times`, `skip`). Logged when it does.
    pub fn hit(&self, name: &str) -> Option<Document> {
        self.hit_if(name, |_| true)
    }

    /// Like [`FailPoints::hit`], for a fail point that applies only where `applies(data)` holds (a command it
    /// names, a client it names): a chance that does not apply neither fires nor counts down `times`/`skip`.
    pub fn hit_if(&self, name: &str, applies: impl FnOnce(&Document) -> bool) -> Option<Document> {
        let mut points = self.points.lock().ok()?;
        let state = points.get_mut(name)?;
        if matches!(state.mode, Mode::Off | Mode::Times(0)) || !applies(&state.data) {
            return None;
        }
        let fires = match &mut state.mode {
            Mode::Off | Mode::Times(0) => false,
            Mode::AlwaysOn | Mode::Skip(0) => true,
            Mode::Times(n) => {
                *n -= 1;
                true
            }
            Mode::Skip(n) => {
                *n -= 1;
                false
            }
        };
        if fires {
            state.hits += 1;
            tracing::warn!(failpoint = name, hits = state.hits, "fail point hit");
            Some(state.data.clone())
        } else {
            None
        }
    }

    /// Whether the fail point is on now, without counting a hit (for switches read outside a code path).
    pub fn is_on(&self, name: &str) -> bool {
        let Ok(points) = self.points.lock() else {
            return false;
        };
        points.get(name).is_some_and(|s| {
            matches!(s.mode, Mode::AlwaysOn | Mode::Skip(_)) || matches!(s.mode, Mode::Times(n) if n > 0)
        })
    }

    /// Every known fail point with its mode and hit count (for `listFailPoints`... and getParameter).
    pub fn list(&self) -> Vec<Document> {
        let points = self.points.lock().map(|p| p.clone()).unwrap_or_default();
        KNOWN
            .iter()
            .map(|(name, what)| {
                let state = points.get(*name);
                doc! {
                    "name": *name, "description": *what,
                    "mode": state.map(|s| mode_code(&s.mode)).unwrap_or(0),
                    "timesEntered": state.map(|s| s.hits as i64).unwrap_or(0),
                }
            })
            .collect()
    }
}

/// A start-up parameter's value as a `configureFailPoint` spec: `alwaysOn`, `off` or a JSON document.
fn parameter_spec(name: &str, value: &str) -> Result<Document> {
    match value.trim() {
        "alwaysOn" | "off" => Ok(doc! {"mode": value.trim()}),
        text => {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                Error::bad_value(format!(
                    "failpoint.{name}: expected alwaysOn, off or a JSON document: {e}"
                ))
            })?;
            match Bson::try_from(json) {
                Ok(Bson::Document(d)) => Ok(d),
                _ => Err(Error::bad_value(format!("failpoint.{name}: expected a document"))),
            }
        }
    }
}

/// Validates a spec: the mode, the data, and for `skewClock` the clock offset to apply (`Some(0)` when off).
fn parse_spec(name: &str, spec: &Document) -> Result<(Mode, Document, Option<i64>)> {
    if !FailPoints::is_known(name) {
        return Err(Error::bad_value(format!("unknown fail point: {name}")));
    }
    let mode = match spec.get("mode") {
        Some(Bson::String(s)) if s == "alwaysOn" => Mode::AlwaysOn,
        Some(Bson::String(s)) if s == "off" => Mode::Off,
        Some(Bson::Document(d)) => match (d.len(), d.iter().next()) {
            (1, Some((key, value))) if key == "times" || key == "skip" => match crate::bsonx::as_i64(value) {
                Some(n) if n >= 0 && key == "times" => Mode::Times(n as u64),
                Some(n) if n >= 0 => Mode::Skip(n as u64),
                _ => {
                    return Err(Error::bad_value(format!(
                        "fail point mode {key} must be a non-negative number"
                    )));
                }
            },
            _ => {
                return Err(Error::bad_value(
                    "fail point mode document must be {times: n} or {skip: n}",
                ));
            }
        },
        _ => {
            return Err(Error::bad_value(
                "fail point mode must be alwaysOn, off, {times: n} or {skip: n}",
            ));
        }
    };
    let data = match spec.get("data") {
        None => Document::new(),
        Some(Bson::Document(data)) => data.clone(),
        Some(_) => return Err(Error::type_mismatch("fail point data must be a document")),
    };
    if name == FAIL_COMMAND && mode != Mode::Off {
        fail_command::check_data(&data)?;
    }
    let mut clock_offset = None;
    if name == SKEW_CLOCK {
        clock_offset = Some(match (&mode, data.get("offsetMillis").and_then(crate::bsonx::as_i64)) {
            (Mode::Off, _) => 0,
            (Mode::AlwaysOn, Some(offset)) => offset,
            (Mode::AlwaysOn, None) => {
                return Err(Error::bad_value("skewClock needs data: {offsetMillis: <milliseconds>}"));
            }
            (Mode::Times(_) | Mode::Skip(_), _) => return Err(Error::bad_value("skewClock is alwaysOn or off")),
        });
    }
    Ok((mode, data, clock_offset))
}

fn mode_code(mode: &Mode) -> i32 {
    match mode {
        Mode::Off => 0,
        Mode::AlwaysOn => 1,
        Mode::Times(_) => 2,
        Mode::Skip(_) => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn fail_points_are_off_unless_named() {
        let points =
            FailPoints::from_parameters(&params(&[("failpoint.skipRollback", "alwaysOn")]), Clock::new()).expect("ok");
        assert!(points.hit(SKIP_ROLLBACK).is_some());
        for (name, _) in KNOWN.iter().filter(|(n, _)| *n != SKIP_ROLLBACK) {
            assert!(points.hit(name).is_none(), "{name} fired without being named");
            assert!(!points.is_on(name));
        }
    }

    #[test]
    fn times_counts_down_and_hits_are_listed() {
        let points = FailPoints::default();
        points
            .configure(
                ACK_MAJORITY_BEFORE_REPLICATION,
                &doc! {"mode": {"times": 2}, "data": {"x": 1}},
            )
            .expect("configure");
        assert!(points.is_on(ACK_MAJORITY_BEFORE_REPLICATION));
        assert_eq!(points.hit(ACK_MAJORITY_BEFORE_REPLICATION), Some(doc! {"x": 1}));
        assert!(points.hit(ACK_MAJORITY_BEFORE_REPLICATION).is_some());
        assert!(points.hit(ACK_MAJORITY_BEFORE_REPLICATION).is_none());
        assert!(!points.is_on(ACK_MAJORITY_BEFORE_REPLICATION));
        let listed = points.list();
        assert_eq!(listed.len(), KNOWN.len());
        let entry = listed
            .iter()
            .find(|d| d.get_str("name").ok() == Some(ACK_MAJORITY_BEFORE_REPLICATION))
            .expect("listed");
        assert_eq!(entry.get_i64("timesEntered").ok(), Some(2));
    }

    #[test]
    fn start_up_parameters_are_checked_like_configure() {
        assert!(FailPoints::check_parameter(SKIP_ROLLBACK, "alwaysOn").is_ok());
        assert!(FailPoints::check_parameter(SKIP_ROLLBACK, r#"{"mode": {"times": 3}}"#).is_ok());
        let unknown = FailPoints::check_parameter("noSuchPoint", "alwaysOn").expect_err("unknown name");
        assert!(unknown.message.contains("noSuchPoint"), "{}", unknown.message);
        assert!(FailPoints::check_parameter(SKIP_ROLLBACK, "sometimes").is_err());
        assert!(
            FailPoints::check_parameter(SKEW_CLOCK, "alwaysOn").is_err(),
            "skewClock needs an offset"
        );
        assert!(
            FailPoints::check_parameter(SKEW_CLOCK, r#"{"mode": "alwaysOn", "data": {"offsetMillis": 5}}"#).is_ok()
        );
    }

    #[test]
    fn skew_clock_sets_its_own_members_clock_only() {
        let (mine, other) = (Clock::new(), Clock::new());
        let points = FailPoints::new(mine.clone());
        let _other_points = FailPoints::new(other.clone());
        points
            .configure(SKEW_CLOCK, &doc! {"mode": "alwaysOn", "data": {"offsetMillis": -5_000}})
            .expect("configure");
        assert_eq!((mine.offset_millis(), other.offset_millis()), (-5_000, 0));
        points.configure(SKEW_CLOCK, &doc! {"mode": "off"}).expect("off");
        assert_eq!(mine.offset_millis(), 0);
        let at_start = params(&[(
            "failpoint.skewClock",
            r#"{"mode": "alwaysOn", "data": {"offsetMillis": 7}}"#,
        )]);
        FailPoints::from_parameters(&at_start, other.clone()).expect("ok");
        assert_eq!((mine.offset_millis(), other.offset_millis()), (0, 7));
    }

    #[test]
    fn unknown_names_and_bad_modes_are_refused() {
        let points = FailPoints::default();
        assert!(points.configure("noSuchPoint", &doc! {"mode": "alwaysOn"}).is_err());
        assert!(points.configure(SKIP_ROLLBACK, &doc! {"mode": "sometimes"}).is_err());
        assert!(FailPoints::from_parameters(&params(&[("failpoint.skipRollback", "{bad")]), Clock::new()).is_err());
        let json = params(&[("failpoint.electByTimestamp", r#"{"mode": {"times": 1}}"#)]);
        assert!(
            FailPoints::from_parameters(&json, Clock::new())
                .expect("ok")
                .is_on(ELECT_BY_TIMESTAMP)
        );
    }
}
