//! The simulation over a few seeds, and a planted bug it must find.

use super::*;

fn quick(seed: u64) -> SimOptions {
    SimOptions {
        steps: 40,
        ..SimOptions::new(seed)
    }
}

/// The soak `cargo test` runs: a few hundred seeds of partitions, loss, delay, kills, restarts and clock
/// jumps, each checked at every step and after healing.
#[test]
fn three_hundred_seeds_keep_every_safety_property() {
    let mut failures = Vec::new();
    let mut primaries = 0;
    let mut kills = 0;
    for seed in 1..=300 {
        let options = quick(seed);
        let outcome = run_isolated(&options).expect("the simulation runs");
        if let Some(violation) = outcome.violation {
            failures.push(format!(
                "seed {seed}: {violation}\n  reproduce: {}",
                options.reproduce_line()
            ));
        }
        primaries += outcome.primaries_seen;
        kills += outcome.kills;
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        primaries >= 300,
        "every seed elected a primary ({primaries} primaries in all)"
    );
    assert!(kills >= 100, "the schedule kills members ({kills} kills in all)");
}

/// Seeds that once found bugs: 138 (a rollback that failed before changing anything left its member in
/// ROLLBACK while it applied from another source), 55 (rollback from a secondary source was refused with 13435
/// NotPrimaryNoSecondaryOk, forever), both with 60 steps, and 172 with 40 (two members behind a new primary
/// tailed each other for ever).
#[test]
fn the_seeds_that_found_replication_bugs_pass() {
    for (seed, steps) in [(55, 60), (138, 60), (172, 40)] {
        let options = SimOptions {
            steps,
            ..SimOptions::new(seed)
        };
        let outcome = run_isolated(&options).expect("the simulation runs");
        assert!(
            outcome.violation.is_none(),
            "seed {seed}: {:?}; reproduce: {}",
            outcome.violation,
            options.reproduce_line()
        );
    }
}

/// A seed replays exactly: the same faults, kills, elections, optimes and write replies, step by step.
#[test]
fn a_seed_replays_exactly() {
    let options = quick(11);
    let first = run_isolated(&options).expect("the simulation runs");
    let second = run_isolated(&options).expect("the simulation runs again");
    if first.trace != second.trace {
        let diverged = first
            .events
            .iter()
            .zip(&second.events)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "seed 11 does not replay: the runs diverge at event {diverged}:\n{}\nvs\n{}",
            first.events[diverged.saturating_sub(3)..(diverged + 3).min(first.events.len())].join("\n"),
            second.events[diverged.saturating_sub(3)..(diverged + 3).min(second.events.len())].join("\n")
        );
    }
    assert_eq!(first.simulated, second.simulated);
    let other = run_isolated(&quick(12)).expect("another seed runs");
    assert_ne!(first.trace, other.trace, "another seed is another run");
}

/// The checks are worth something only if they catch a bug: with `skipRollback` a deposed primary keeps its
/// unreplicated writes, and the members never agree again.
#[test]
fn the_planted_skip_rollback_bug_is_found_within_a_few_seeds() {
    let mut found = None;
    for seed in 1..=8 {
        let options = SimOptions {
            planted: Some(crate::failpoint::SKIP_ROLLBACK.to_string()),
            ..quick(seed)
        };
        let outcome = run_isolated(&options).expect("the simulation runs");
        if let Some(violation) = outcome.violation {
            found = Some((options, violation));
            break;
        }
    }
    let (options, violation) = found.expect("skipRollback is caught within 8 seeds");
    assert!(
        options.reproduce_line().contains("--planted skipRollback"),
        "{}",
        options.reproduce_line()
    );
    assert!(violation.starts_with("convergence"), "{violation}");
    let replay = run_isolated(&options).expect("the failing seed runs again");
    assert_eq!(
        replay.violation.as_deref(),
        Some(violation.as_str()),
        "the failing seed fails the same way again"
    );
}

/// The newest oplog entry's timestamp (in milliseconds) and `wall` time, after a no-op written through the
/// storage writer just now.
async fn write_and_read_newest_entry(node: &Node) -> (i64, i64) {
    node.storage
        .write(false, |w| w.noop(doc! {"msg": "clock"}))
        .await
        .expect("the writer runs")
        .expect("the no-op is logged");
    let mut newest = None;
    node.storage
        .snapshot()
        .expect("snapshot")
        .scan_oplog(None, true, |_, entry| {
            newest = Some(entry);
            std::ops::ControlFlow::Break(())
        })
        .expect("scan");
    let entry = newest.expect("an oplog entry");
    let ts = entry.get_timestamp("ts").expect("ts");
    let wall = entry.get_datetime("wall").expect("wall");
    (i64::from(ts.time) * 1000, wall.timestamp_millis())
}

/// `hello`'s `localTime` on `node`, in milliseconds.
async fn local_time(node: &Node, client: &ConnectionInfo) -> i64 {
    let reply = call(node, client, doc! {"hello": 1, "$db": "admin"}).await;
    reply.get_datetime("localTime").expect("localTime").timestamp_millis()
}

/// Members in one process keep separate wall clocks: `skewClock` on one moves its oplog timestamps, `wall`
/// times and command dates an hour ahead and leaves the other member's clock alone; turned off, it is true
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_in_one_process_have_independent_clocks() {
    let root = tempfile::tempdir().expect("temp dir");
    let fabric = Fabric::new(7);
    let mut nodes = Vec::new();
    for index in 0..2 {
        let options = NodeOptions {
            port: BASE_PORT + index as u16,
            dbpath: root.path().join(format!("m{index}")),
            oplog_size_mb: Some(1),
            ..NodeOptions::default()
        };
        let network = Arc::new(SimNetwork::new(host(index), fabric.clone()));
        nodes.push(Node::open_on(options, network).await.expect("the member opens"));
    }
    let (skewed, true_clock) = (&nodes[0], &nodes[1]);
    let client = ConnectionInfo::new(0, "127.0.0.1:1".parse().expect("address"));
    let hour_ms: i64 = 3_600_000;
    let slack_ms: i64 = 60_000;
    let reply = call(
        skewed,
        &client,
        doc! {"configureFailPoint": "skewClock", "mode": "alwaysOn", "data": {"offsetMillis": hour_ms}, "$db": "admin"},
    )
    .await;
    assert!(is_ok(&reply), "{reply}");

    let now_ms = bson::DateTime::now().timestamp_millis();
    let near = |millis: i64, expected: i64| (expected - slack_ms..expected + slack_ms).contains(&millis);
    let (ts_ms, wall_ms) = write_and_read_newest_entry(skewed).await;
    let hello_ms = local_time(skewed, &client).await;
    for (what, millis) in [("timestamp", ts_ms), ("wall", wall_ms), ("localTime", hello_ms)] {
        assert!(
            near(millis, now_ms + hour_ms),
            "the skewed member's {what} is an hour ahead: {millis} vs {now_ms}"
        );
    }
    let (ts_ms, wall_ms) = write_and_read_newest_entry(true_clock).await;
    let hello_ms = local_time(true_clock, &client).await;
    for (what, millis) in [("timestamp", ts_ms), ("wall", wall_ms), ("localTime", hello_ms)] {
        assert!(
            near(millis, now_ms),
            "the other member's {what} is true: {millis} vs {now_ms}"
        );
    }

    let reply = call(
        skewed,
        &client,
        doc! {"configureFailPoint": "skewClock", "mode": "off", "$db": "admin"},
    )
    .await;
    assert!(is_ok(&reply), "{reply}");
    let (_, wall_ms) = write_and_read_newest_entry(skewed).await;
    assert!(
        near(wall_ms, now_ms),
        "the skewed member's clock is true again: {wall_ms} vs {now_ms}"
    );
}
