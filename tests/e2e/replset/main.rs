//! End-to-end tests of replica sets: several `faultline node` processes, the official Rust driver with the
//! tutorials' seed-list URI, real SIGKILL/SIGSTOP, and TCP proxies on member-to-member links.

mod t10_election_and_replication;
mod t20_failover;
mod t30_rollback;
mod t40_membership;
mod t50_rename_and_metrics;
mod t50_tutorial_membership;
mod t60_heavy_queries;
mod t60_large_documents;
mod t70_oplog_cap;
mod t75_deep_documents;
mod t80_causal_consistency;
mod t80_crash_all_members;
mod t85_change_streams;
mod t85_fail_point_scope;
mod t85_write_stages_on_secondary;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use bson::{Bson, Document, doc};
use faultline_tests::{NodeProcess, raw_command, wait_until};

pub const ELECTION: Duration = Duration::from_secs(30);

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

pub fn host(node: &NodeProcess) -> String {
    format!("127.0.0.1:{}", node.port)
}

/// A replica-set config with fast timeouts (elections in about a second).
pub fn config(members: Vec<Document>) -> Document {
    doc! {"_id": "rs0", "version": 1, "members": members,
    "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}}
}

pub fn member(id: i32, node: &NodeProcess) -> Document {
    doc! {"_id": id, "host": host(node)}
}

/// Starts `n` uninitialised members (with extra flags per member).
pub async fn start_members(n: usize, extra: impl Fn(usize) -> Vec<String>) -> anyhow::Result<Vec<NodeProcess>> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let args = extra(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(NodeProcess::start(bin(), &args).await?);
    }
    Ok(nodes)
}

/// Initiates the set on the first member and waits for a primary and for every other data member to be
/// SECONDARY. Returns the primary's index.
pub async fn initiate(nodes: &[NodeProcess], config: Document) -> anyhow::Result<usize> {
    let reply = raw_command(nodes[0].port, doc! {"replSetInitiate": config, "$db": "admin"}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "replSetInitiate: {reply}");
    let primary = wait_for_primary(nodes, &[]).await?;
    let expected = nodes.len();
    let port = nodes[primary].port;
    wait_until(
        ELECTION,
        "every member to be PRIMARY, SECONDARY or ARBITER",
        || async move {
            let status = raw_command(port, doc! {"replSetGetStatus": 1, "$db": "admin"})
                .await
                .ok()?;
            let members = status.get_array("members").ok()?;
            let settled = members.iter().filter(|m| {
                let state = m.as_document().and_then(|d| d.get_i32("state").ok()).unwrap_or(0);
                matches!(state, 1 | 2 | 7)
            });
            (settled.count() == expected).then_some(())
        },
    )
    .await?;
    Ok(primary)
}

/// Waits until one of `nodes` (skipping `except`) says it is a writable primary.
pub async fn wait_for_primary(nodes: &[NodeProcess], except: &[usize]) -> anyhow::Result<usize> {
    let ports: Vec<(usize, u16)> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !except.contains(i))
        .map(|(i, n)| (i, n.port))
        .collect();
    wait_until(ELECTION, "a writable primary", || {
        let ports = ports.clone();
        async move {
            for (i, port) in ports {
                if let Ok(hello) = raw_command(port, doc! {"hello": 1, "$db": "admin"}).await
                    && hello.get_bool("isWritablePrimary").unwrap_or(false)
                {
                    return Some(i);
                }
            }
            None
        }
    })
    .await
}

/// The member's state code from its own `hello`/status.
pub async fn state_of(node: &NodeProcess) -> Option<i32> {
    let status = raw_command(node.port, doc! {"replSetGetStatus": 1, "$db": "admin"})
        .await
        .ok()?;
    status.get_i32("myState").ok()
}

/// `dbHash` of a database on a member.
pub async fn db_hash(node: &NodeProcess, db: &str) -> Option<String> {
    let reply = raw_command(
        node.port,
        doc! {"dbHash": 1, "$db": db, "$readPreference": {"mode": "secondaryPreferred"}},
    )
    .await
    .ok()?;
    reply.get_str("md5").ok().map(String::from)
}

/// Waits until every listed member has the same `dbHash` for `db`.
pub async fn wait_same_data(nodes: &[&NodeProcess], db: &str) -> anyhow::Result<String> {
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let db = db.to_string();
    let agreed = wait_until(ELECTION, "every member to hold the same data (dbHash)", || {
        let (ports, db) = (ports.clone(), db.clone());
        async move {
            let mut hashes = Vec::new();
            for port in ports {
                let reply = raw_command(
                    port,
                    doc! {"dbHash": 1, "$db": &db, "$readPreference": {"mode": "secondaryPreferred"}},
                )
                .await
                .ok()?;
                hashes.push(reply.get_str("md5").ok()?.to_string());
            }
            hashes.windows(2).all(|w| w[0] == w[1]).then(|| hashes[0].clone())
        }
    })
    .await;
    if agreed.is_err() {
        let mut last = Vec::new();
        for node in nodes {
            last.push(format!("{}={:?}", node.port, db_hash(node, &db).await));
        }
        return agreed.with_context(|| format!("dbHash per member: {}", last.join(", ")));
    }
    agreed
}

/// The replica-set URI listing the given members, as the tutorials write it.
pub fn set_uri(nodes: &[&NodeProcess]) -> String {
    let hosts: Vec<String> = nodes.iter().map(|n| host(n)).collect();
    format!(
        "mongodb://{}/?replicaSet=rs0&serverSelectionTimeoutMS=30000&wtimeoutMS=30000",
        hosts.join(",")
    )
}

pub fn ids(docs: &[Document]) -> Vec<Bson> {
    docs.iter().filter_map(|d| d.get("_id").cloned()).collect()
}
