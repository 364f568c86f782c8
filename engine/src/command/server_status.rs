//! `serverStatus`: mongod's common sections with its field names, built from the node's counters, the
//! process (`/proc/self/status`), the storage positions and the replication machine; sections can be left
//! out with `{section: 0}` (nested: `{opLatencies: {reads: 0}}`).

use std::sync::atomic::Ordering;

use bson::{Bson, Document, doc};

use super::Context;
use super::handshake::VERSION;
use crate::bsonx;
use crate::node::OpClass;

pub fn server_status(ctx: &Context<'_>) -> Document {
    let node = ctx.node;
    let c = &node.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
    let current = c.connections_current.load(Ordering::Relaxed);
    let hostname = crate::host::name();
    let mut repl = node.member.hello_fields(false);
    repl.remove("topologyVersion");
    let uptime = node.member.uptime();
    let latency = |class: OpClass| {
        let slot = &c.latency[class as usize];
        doc! {"latency": load(&slot.micros), "ops": load(&slot.ops)}
    };
    let applied = &node.member.applied_ops();
    let mut reply = doc! {
        "host": format!("{hostname}:{}", node.options().port),
        "version": VERSION,
        "process": "mongod",
        "pid": std::process::id() as i64,
        "uptime": uptime.as_secs_f64(),
        "uptimeMillis": uptime.as_millis() as i64,
        "uptimeEstimate": uptime.as_secs() as i64,
        "localTime": ctx.node.clock().now(),
        "asserts": asserts(load(&c.asserts_regular), load(&c.asserts_user)),
        "connections": {"current": current as i32, "available": (10_000 - current) as i32,
                        "totalCreated": c.connections_total.load(Ordering::Relaxed)},
        "electionMetrics": election_metrics(ctx),
        "mem": memory(),
        "network": {
            "bytesIn": load(&c.bytes_in), "bytesOut": load(&c.bytes_out),
            "physicalBytesIn": load(&c.bytes_in), "physicalBytesOut": load(&c.bytes_out),
            "numSlowDNSOperations": 0i64, "numSlowSSLOperations": 0i64, "numRequests": load(&c.requests),
        },
        "opLatencies": {
            "reads": latency(OpClass::Reads), "writes": latency(OpClass::Writes),
            "commands": latency(OpClass::Commands), "transactions": {"latency": 0i64, "ops": 0i64},
        },
        "opcounters": {
            "insert": load(&c.inserts), "query": load(&c.queries), "update": load(&c.updates),
            "delete": load(&c.deletes), "getmore": load(&c.getmores), "command": load(&c.commands),
        },
        "opcountersRepl": {
            "insert": load(&applied.insert), "query": 0i64, "update": load(&applied.update),
            "delete": load(&applied.delete), "getmore": 0i64, "command": load(&applied.command),
        },
        "metrics": {"cursor": {"open": {"total": node.cursors.open_count() as i64}}},
        "repl": repl,
        "storageEngine": {"name": "redb", "persistent": true},
        // The engine runs no multi-document transactions (they are refused), so these stay at zero.
        "transactions": {
            "retriedCommandsCount": 0i64, "retriedStatementsCount": 0i64, "transactionsCollectionWriteCount": 0i64,
            "currentActive": 0i64, "currentInactive": 0i64, "currentOpen": 0i64, "totalAborted": 0i64,
            "totalCommitted": 0i64, "totalStarted": 0i64, "totalPrepared": 0i64, "totalPreparedThenCommitted": 0i64,
            "totalPreparedThenAborted": 0i64, "currentPrepared": 0i64,
        },
    };
    exclude(&mut reply, ctx.body, true);
    reply
}

/// `asserts`: ints that roll over at 2^30, as mongod's do (`rollovers` counts how often). `regular` counts
/// internal errors, `user` every other failed command; the engine raises no `warning` or `msg` asserts.
fn asserts(regular: i64, user: i64) -> Document {
    const ROLLOVER: i64 = 1 << 30;
    let rollovers = (regular.max(user) / ROLLOVER) as i32;
    doc! {"regular": (regular % ROLLOVER) as i32, "warning": 0, "msg": 0, "user": (user % ROLLOVER) as i32,
    "tripwire": 0, "rollovers": rollovers}
}

/// `electionMetrics`, as mongod lays it out (counters are longs).
fn election_metrics(ctx: &Context<'_>) -> Document {
    let m = ctx.node.member.election_metrics();
    let counter =
        |r: crate::repl::machine::ReasonCounter| doc! {"called": r.called as i64, "successful": r.successful as i64};
    doc! {
        "stepUpCmd": counter(m.step_up_cmd),
        "priorityTakeover": counter(m.priority_takeover),
        "catchUpTakeover": counter(m.catch_up_takeover),
        "electionTimeout": counter(m.election_timeout),
        "freezeTimeout": counter(m.freeze_timeout),
        "numStepDownsCausedByHigherTerm": m.step_downs_caused_by_higher_term as i64,
        "numCatchUps": m.catch_ups as i64,
        "numCatchUpsSucceeded": m.catch_ups_succeeded as i64,
        "numCatchUpsAlreadyCaughtUp": m.catch_ups_already_caught_up as i64,
        "numCatchUpsSkipped": m.catch_ups_skipped as i64,
        "numCatchUpsTimedOut": m.catch_ups_timed_out as i64,
        "numCatchUpsFailedWithError": m.catch_ups_failed_with_error as i64,
        "numCatchUpsFailedWithNewTerm": m.catch_ups_failed_with_new_term as i64,
        "numCatchUpsFailedWithReplSetAbortPrimaryCatchUpCmd": 0i64,
        "averageCatchUpOps": if m.catch_ups == 0 {
            0.0
        } else {
            ctx.node.member.applied_ops().during_catch_up.load(Ordering::Relaxed) as f64 / m.catch_ups as f64
        },
    }
}

/// `mem`: resident and virtual size in MiB, from `/proc/self/status` (`supported: false` where it cannot
/// be read).
fn memory() -> Document {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field_kib = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<i64>().ok()
        })
    };
    match (field_kib("VmRSS"), field_kib("VmSize")) {
        (Some(rss), Some(size)) => doc! {"bits": 64, "resident": (rss / 1024) as i32, "virtual": (size / 1024) as i32,
        "supported": true},
        _ => doc! {"bits": 64, "supported": false},
    }
}

/// Removes the sections (or nested fields) the command turns off: `{repl: 0}`, `{mem: false}`,
/// `{opLatencies: {reads: 0}}`. Arguments that are not sections (`$db`, `lsid`, ...) are ignored.
fn exclude(reply: &mut Document, spec: &Document, top: bool) {
    for (key, value) in spec.iter().skip(usize::from(top)) {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Bson::Document(nested) => {
                if let Some(Bson::Document(section)) = reply.get_mut(key) {
                    exclude(section, nested, false);
                }
            }
            other if !bsonx::truthy(other) => {
                reply.remove(key);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_left_out_as_asked() {
        let mut reply = doc! {"repl": {"a": 1}, "mem": {"bits": 64}, "opLatencies": {"reads": {}, "writes": {}},
        "asserts": {}};
        let spec = doc! {"serverStatus": 1, "repl": 0, "mem": false, "opLatencies": {"reads": 0}, "asserts": 1,
        "$db": "admin", "lsid": {"id": 1}, "nope": 0};
        exclude(&mut reply, &spec, true);
        assert_eq!(reply, doc! {"opLatencies": {"writes": {}}, "asserts": {}});
    }

    #[test]
    fn asserts_roll_over_at_two_to_the_thirty() {
        let a = asserts((1 << 30) + 5, 7);
        assert_eq!(a.get_i32("regular").ok(), Some(5));
        assert_eq!(a.get_i32("rollovers").ok(), Some(1));
        assert_eq!(a.get_i32("user").ok(), Some(7));
    }
}
