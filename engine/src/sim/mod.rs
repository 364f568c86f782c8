//! In-process replica-set simulation: several **real** members in one process, a faulty network between
//! them, a client workload, and the safety properties checked as it runs.
//!
//! ```text
//!   seed ─► SplitMix64 ─┬─► fault schedule: partitions (one member cut off, or one link), message loss, delay
//!                       └─► workload: inserts with w:1 and w:majority to any member
//!   member i = crate::node::Node::open_on(dbpath_i, SimNetwork{i})      (storage, member, command layer)
//!   SimNetwork: member i's PeerNetwork; a command to member j runs crate::command::run on j's Node
//!               unless the link is cut or the message is lost (then it times out), after a seeded delay
//!   every step: election safety (one primary per term), no fatal member; after healing: convergence
//!               (same newest optime and same documents everywhere) and every w:majority-acknowledged
//!               write present on every member
//! ```
//!
//! What runs is the product's code: `member` (driver, fetcher, initial sync, rollback, RPCs, write
//! concern), `repl` (the machine), `command` (find/getMore on the oplog, replSet* RPCs, inserts) and
//! `storage` (redb on a temporary dbpath). Only the TCP transport is replaced. Each member keeps its own
//! wall clock ([`crate::clock::Clock`]), so a `skewClock` fail point moves that member's clock only. The
//! fault schedule and the workload are drawn from the seed, but the members run on real time and the
//! storage writer on its own thread, so a seed replays the same faults and writes, not the same thread
//! interleaving.

mod network;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, doc};

use crate::command::ConnectionInfo;
use crate::node::Node;
use crate::options::NodeOptions;
use crate::repl::OpTime;
use crate::repl::rng::SplitMix64;
pub use network::{Fabric, SimNetwork};

/// One simulation run's parameters.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    /// Members in the set.
    pub members: usize,
    /// Steps of faults and writes (each [`SimOptions::step_ms`] long) before the network heals.
    pub steps: u32,
    pub step_ms: u64,
    /// A fail point switched on in every member (a planted bug the checks must find), e.g. `skipRollback`.
    pub planted: Option<String>,
    /// Where the members' dbpaths go (a fresh directory per run, removed afterwards).
    pub dir: PathBuf,
}

impl SimOptions {
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            members: 3,
            steps: 60,
            step_ms: 100,
            planted: None,
            dir: std::env::temp_dir(),
        }
    }

    /// The command line that runs this seed again.
    pub fn reproduce_line(&self) -> String {
        let mut line = format!("faultline sim --seeds 1 --seed {} --steps {}", self.seed, self.steps);
        if let Some(planted) = &self.planted {
            line.push_str(&format!(" --planted {planted}"));
        }
        line
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub seed: u64,
    /// The first safety violation, if any.
    pub violation: Option<String>,
    /// Writes acknowledged with w:majority.
    pub majority_acked: usize,
    /// Distinct (term, primary) pairs seen.
    pub primaries_seen: usize,
}

const BASE_PORT: u16 = 47_000;
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

fn host(index: usize) -> String {
    format!("127.0.0.1:{}", BASE_PORT + index as u16)
}

/// Runs one seed on a runtime of its own, shut down afterwards: the members' tasks (tick loops, fetchers)
/// end with the seed instead of running on beside the next one.
pub fn run_isolated(options: &SimOptions) -> crate::error::Result<SimOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::internal(format!("simulation runtime: {e}")))?;
    let outcome = runtime.block_on(run(options));
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}

/// Runs one seed to the end (or to its first violation) on the current runtime.
pub async fn run(options: &SimOptions) -> crate::error::Result<SimOutcome> {
    let root = options.dir.join(format!(
        "faultline-sim-{}-{}-{}",
        std::process::id(),
        options.seed,
        bson::oid::ObjectId::new().to_hex()
    ));
    let result = run_in(options, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn run_in(options: &SimOptions, root: &std::path::Path) -> crate::error::Result<SimOutcome> {
    let mut rng = SplitMix64::new(options.seed);
    let fabric = Fabric::new(options.seed ^ 0x5eed);
    let mut nodes = Vec::new();
    for index in 0..options.members {
        let node_options = NodeOptions {
            port: BASE_PORT + index as u16,
            dbpath: root.join(format!("m{index}")),
            oplog_size_mb: Some(1),
            ..NodeOptions::default()
        };
        let network = Arc::new(SimNetwork::new(host(index), fabric.clone()));
        let node = Node::open_on(node_options, network).await?;
        fabric.attach(host(index), &node);
        nodes.push(node);
    }
    let client = ConnectionInfo::new(
        0,
        "127.0.0.1:1"
            .parse()
            .map_err(|_| crate::error::Error::internal("addr"))?,
    );
    if let Some(planted) = &options.planted {
        for node in &nodes {
            let reply = call(
                node,
                &client,
                doc! {"configureFailPoint": planted.as_str(), "mode": "alwaysOn", "$db": "admin"},
            )
            .await;
            if !is_ok(&reply) {
                return Err(crate::error::Error::bad_value(format!("fail point {planted}: {reply}")));
            }
        }
    }
    let members: Vec<Bson> = (0..options.members)
        .map(|i| Bson::Document(doc! {"_id": i as i32, "host": host(i)}))
        .collect();
    let config = doc! {"_id": "rs0", "members": members,
    "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}};
    let reply = call(&nodes[0], &client, doc! {"replSetInitiate": config, "$db": "admin"}).await;
    if !is_ok(&reply) {
        return Err(crate::error::Error::bad_value(format!("replSetInitiate: {reply}")));
    }
    let mut checker = Checker::default();
    let mut next_key = 0i64;
    // Let the set elect its first primary and the others sync before faults begin.
    let settle = options.steps / 4;
    for step in 0..options.steps + settle {
        if step >= settle {
            fabric.apply_random_fault(&mut rng, options.members);
        }
        for _ in 0..rng.below(3) {
            let target = rng.below(options.members as i64) as usize;
            let majority = rng.below(2) == 0;
            next_key += 1;
            let wc = if majority {
                doc! {"w": "majority", "wtimeout": 2000}
            } else {
                doc! {"w": 1}
            };
            let reply = call(
                &nodes[target],
                &client,
                doc! {"insert": "c", "documents": [{"_id": next_key, "by": target as i32}], "writeConcern": wc, "$db": "sim"},
            )
            .await;
            if majority
                && is_ok(&reply)
                && !reply.contains_key("writeErrors")
                && !reply.contains_key("writeConcernError")
            {
                checker.majority_acked.insert(next_key);
            }
        }
        tokio::time::sleep(Duration::from_millis(options.step_ms)).await;
        checker.observe(&nodes);
        if let Some(violation) = checker.violation.clone() {
            return Ok(checker.outcome(options.seed, Some(violation)));
        }
    }
    fabric.heal();
    let violation = converge(&nodes, &client, &mut checker).await;
    Ok(checker.outcome(options.seed, violation.or(checker.violation.clone())))
}

/// What the checks have seen so far.
#[derive(Default)]
struct Checker {
    /// term → the member that was primary in it.
    primaries: BTreeMap<i64, String>,
    majority_acked: BTreeSet<i64>,
    violation: Option<String>,
}

impl Checker {
    /// Election safety and fatal conditions, from every member's role right now.
    fn observe(&mut self, nodes: &[Arc<Node>]) {
        for (index, node) in nodes.iter().enumerate() {
            let role = node.member.role();
            if role.state.is_primary() {
                let me = host(index);
                let first = self.primaries.entry(role.term).or_insert_with(|| me.clone());
                if *first != me && self.violation.is_none() {
                    self.violation = Some(format!(
                        "election safety: {first} and {me} were both primary in term {}",
                        role.term
                    ));
                }
            }
            if let Some(message) = node.member.fatal_message()
                && self.violation.is_none()
            {
                self.violation = Some(format!("{} stopped fatally: {message}", host(index)));
            }
        }
    }

    fn outcome(&self, seed: u64, violation: Option<String>) -> SimOutcome {
        SimOutcome {
            seed,
            violation,
            majority_acked: self.majority_acked.len(),
            primaries_seen: self.primaries.len(),
        }
    }
}

/// After healing: every member reaches the same newest optime with the same documents, and every
/// w:majority-acknowledged write is among them.
async fn converge(nodes: &[Arc<Node>], client: &ConnectionInfo, checker: &mut Checker) -> Option<String> {
    let deadline = tokio::time::Instant::now() + CONVERGE_WITHIN;
    loop {
        checker.observe(nodes);
        if let Some(violation) = checker.violation.clone() {
            return Some(violation);
        }
        let optimes: Vec<OpTime> = nodes.iter().map(|n| n.storage.positions().last_written).collect();
        let has_primary = nodes.iter().any(|n| n.member.role().writable);
        if has_primary && optimes.windows(2).all(|w| w[0] == w[1]) {
            let mut contents = Vec::new();
            for node in nodes {
                contents.push(documents(node, client).await);
            }
            if let Some(difference) = (1..contents.len()).find(|&i| contents[i] != contents[0]) {
                return Some(format!(
                    "convergence: {} and {} reached the same optime {:?} with different documents ({} vs {})",
                    host(0),
                    host(difference),
                    optimes[0],
                    contents[0].len(),
                    contents[difference].len()
                ));
            }
            let lost: Vec<i64> = checker
                .majority_acked
                .iter()
                .filter(|key| !contents[0].contains_key(key))
                .copied()
                .collect();
            if !lost.is_empty() {
                return Some(format!(
                    "durability: {} w:majority-acknowledged writes lost, e.g. _id {}",
                    lost.len(),
                    lost[0]
                ));
            }
            return None;
        }
        if tokio::time::Instant::now() >= deadline {
            return Some(format!(
                "convergence: the members did not converge within {CONVERGE_WITHIN:?} of healing (optimes \
                 {optimes:?}, writable primary: {has_primary})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every document of the workload's collection on `node`, by `_id`.
async fn documents(node: &Node, client: &ConnectionInfo) -> BTreeMap<i64, Document> {
    let reply = call_secondary_ok(
        node,
        client,
        doc! {"find": "c", "batchSize": 1_000_000, "singleBatch": true, "$db": "sim"},
    )
    .await;
    reply
        .get_document("cursor")
        .ok()
        .and_then(|c| c.get_array("firstBatch").ok())
        .map(|batch| {
            batch
                .iter()
                .filter_map(|d| d.as_document())
                .filter_map(|d| d.get_i64("_id").ok().map(|id| (id, d.clone())))
                .collect()
        })
        .unwrap_or_default()
}

async fn call(node: &Node, client: &ConnectionInfo, body: Document) -> Document {
    crate::command::run(
        node,
        crate::command::Invocation {
            body,
            secondary_ok: None,
            conn: client,
            legacy: false,
        },
    )
    .await
}

async fn call_secondary_ok(node: &Node, client: &ConnectionInfo, body: Document) -> Document {
    crate::command::run(
        node,
        crate::command::Invocation {
            body,
            secondary_ok: Some(true),
            conn: client,
            legacy: false,
        },
    )
    .await
}

fn is_ok(reply: &Document) -> bool {
    reply.get_f64("ok").ok() == Some(1.0) || reply.get_i32("ok").ok() == Some(1)
}

#[cfg(test)]
mod tests;
