//! In-process replica-set simulation: several **real** members in one process, a faulty network between
//! them, kills and restarts, a client workload, and the safety properties checked at every step, all on
//! simulated time and replayed exactly from one seed.
//!
//! ```text
//!   seed ─► SplitMix64 ─┬─► faults: partitions (one member cut off, or one link), message loss and delay,
//!                       │   kill a member (its process dies), restart it on what its disk held, move a
//!                       │   member's wall clock
//!                       └─► workload: inserts with w:1 and w:majority to any live member
//!   member i = crate::node::Node::open_simulated(dbpath_i, SimNetwork{i}, disk_i, Clock::simulated)
//!   SimNetwork: member i's PeerNetwork; a command to member j runs crate::command::run on j's Node
//!               unless the link is cut, j is dead or the message is lost (then it times out), after a
//!               seeded delay
//!   every step: election safety (one primary per term), no fatal member, no message storm; after healing
//!               and restarting everyone: convergence (same newest optime and same documents everywhere) and every
//!               w:majority-acknowledged write present on every member
//! ```
//!
//! What runs is the product's code: `member` (driver, fetcher, initial sync, rollback, RPCs, write
//! concern), `repl` (the machine), `command` (find/getMore on the oplog, replSet* RPCs, inserts) and
//! `storage` (redb, with the writer's group-commit code). Replaced are only the TCP transport (by
//! [`network`]), the disk (by [`MemoryDisk`], whose crash image is what a killed process leaves), the
//! wall clock (by [`Clock::simulated`]) and the writer's thread (the writer runs inline).
//!
//! **Determinism.** A seed runs on a current-thread tokio runtime with paused time: tasks interleave in the
//! same order every time, and time moves only when every task waits, to the next timer. Nothing reads the
//! system clock or a thread-local random source on the paths the simulation runs, so the same seed
//! gives the same run; [`SimOutcome::trace`] is a digest of every step's observations that a replay must
//! reproduce.

mod network;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document, doc};
use tracing::Instrument;

use crate::clock::Clock;
use crate::command::ConnectionInfo;
use crate::node::Node;
use crate::options::NodeOptions;
use crate::repl::OpTime;
use crate::repl::rng::SplitMix64;
use crate::storage::MemoryDisk;
pub use network::{Fabric, SimNetwork};

/// One simulation run's parameters.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    /// Members in the set.
    pub members: usize,
    /// Steps of faults and writes (each [`SimOptions::step_ms`] of simulated time) before the network heals.
    pub steps: u32,
    pub step_ms: u64,
    /// Whether the fault schedule kills and restarts members (besides network faults).
    pub kills: bool,
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
            kills: true,
            planted: None,
            dir: std::env::temp_dir(),
        }
    }

    /// The command line that runs this seed again.
    pub fn reproduce_line(&self) -> String {
        let mut line = format!("faultline sim --seeds 1 --seed {} --steps {}", self.seed, self.steps);
        if self.members != 3 {
            line.push_str(&format!(" --members {}", self.members));
        }
        if !self.kills {
            line.push_str(" --no-kills");
        }
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
    /// Members killed (and restarted).
    pub kills: usize,
    /// A digest of every step's observations (roles, terms, optimes, write replies): the same seed gives
    /// the same digest, which is how exact replay is checked.
    pub trace: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// The observations the digest was made of, one line each (`faultline sim --trace`).
    pub events: Vec<String>,
}

const BASE_PORT: u16 = 47_000;
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
/// The simulated wall clock starts here (2026-01-01T00:00:00Z), whatever the real date.
const SIM_EPOCH_MILLIS: i64 = 1_767_225_600_000;

fn host(index: usize) -> String {
    format!("127.0.0.1:{}", BASE_PORT + index as u16)
}

/// The span a member's work runs in, so that the log (`faultline sim --log`) names the member.
pub(crate) fn member_span(host: &str) -> tracing::Span {
    tracing::info_span!("member", host)
}

/// Runs one seed on a runtime of its own: one thread, paused time (so the run is deterministic and does not
/// wait for real time), shut down afterwards so the members' tasks end with the seed.
pub fn run_isolated(options: &SimOptions) -> crate::error::Result<SimOutcome> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    // tokio's own random draws (which watch waiter wakes first, which select! branch goes first) come
    // from the seed too. Without `--cfg tokio_unstable` (set in .cargo/config.toml) they stay random and
    // a seed replays its faults and writes but not always its interleaving.
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&options.seed.to_le_bytes()));
    let runtime = builder
        .build()
        .map_err(|e| crate::error::Error::internal(format!("simulation runtime: {e}")))?;
    let outcome = runtime.block_on(run(options));
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}

/// Runs one seed to the end (or to its first violation) on the current runtime, which must be a
/// current-thread runtime with paused time for the run to be deterministic.
pub async fn run(options: &SimOptions) -> crate::error::Result<SimOutcome> {
    let root = options.dir.join(format!(
        "faultline-sim-{}-{}-{}",
        std::process::id(),
        options.seed,
        bson::oid::ObjectId::new().to_hex()
    ));
    let result = Simulation::start(options, &root).await;
    let result = match result {
        Ok(mut simulation) => {
            let outcome = simulation.run().await;
            simulation.kill_all();
            outcome
        }
        Err(err) => Err(err),
    };
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// One member's slot: its disk and clock outlive its processes.
struct Slot {
    options: NodeOptions,
    disk: MemoryDisk,
    clock: Clock,
    /// The running process, or None while it is dead.
    node: Option<Arc<Node>>,
}

struct Simulation<'a> {
    options: &'a SimOptions,
    rng: SplitMix64,
    fabric: Arc<Fabric>,
    slots: Vec<Slot>,
    client: ConnectionInfo,
    checker: Checker,
    trace: Trace,
    started: tokio::time::Instant,
}

impl<'a> Simulation<'a> {
    async fn start(options: &'a SimOptions, root: &Path) -> crate::error::Result<Simulation<'a>> {
        let mut simulation = Simulation {
            options,
            rng: SplitMix64::new(options.seed),
            fabric: Fabric::new(options.seed ^ 0x5eed),
            slots: Vec::new(),
            client: ConnectionInfo::new(0, std::net::SocketAddr::from(([127, 0, 0, 1], 1))),
            checker: Checker::default(),
            trace: Trace::default(),
            started: tokio::time::Instant::now(),
        };
        for index in 0..options.members {
            simulation.slots.push(Slot {
                options: NodeOptions {
                    port: BASE_PORT + index as u16,
                    dbpath: root.join(format!("m{index}")),
                    oplog_size_mb: Some(1),
                    ..NodeOptions::default()
                },
                disk: MemoryDisk::new(),
                clock: Clock::simulated(SIM_EPOCH_MILLIS),
                node: None,
            });
            simulation.boot(index).await?;
        }
        let members: Vec<Bson> = (0..options.members)
            .map(|i| Bson::Document(doc! {"_id": i as i32, "host": host(i)}))
            .collect();
        let config = doc! {"_id": "rs0", "members": members,
        "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}};
        let first = simulation.slots[0]
            .node
            .clone()
            .ok_or_else(|| crate::error::Error::internal("no member 0"))?;
        let reply = call(
            &first,
            &simulation.client,
            doc! {"replSetInitiate": config, "$db": "admin"},
        )
        .await;
        if !is_ok(&reply) {
            return Err(crate::error::Error::bad_value(format!("replSetInitiate: {reply}")));
        }
        Ok(simulation)
    }

    /// Starts member `index`'s process on what its disk holds, with the planted fail point switched on.
    async fn boot(&mut self, index: usize) -> crate::error::Result<()> {
        let slot = &self.slots[index];
        let network = Arc::new(SimNetwork::new(host(index), self.fabric.clone()));
        let node = Node::open_simulated(slot.options.clone(), network, &slot.disk, slot.clock.clone())
            .instrument(member_span(&host(index)))
            .await?;
        if let Some(planted) = &self.options.planted {
            let reply = call(
                &node,
                &self.client,
                doc! {"configureFailPoint": planted.as_str(), "mode": "alwaysOn", "$db": "admin"},
            )
            .await;
            if !is_ok(&reply) {
                return Err(crate::error::Error::bad_value(format!("fail point {planted}: {reply}")));
            }
        }
        self.fabric.attach(host(index), &node);
        self.slots[index].node = Some(node);
        Ok(())
    }

    /// Kills member `index`'s process: it stops at once, the network no longer reaches it, and its disk
    /// keeps what the process had handed to it.
    fn kill(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(node) = slot.node.take() {
            self.fabric.detach(&host(index));
            node.kill();
            slot.disk = slot.disk.crash_image();
        }
    }

    fn kill_all(&mut self) {
        for index in 0..self.slots.len() {
            self.kill(index);
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].node.is_some())
            .collect()
    }

    async fn run(&mut self) -> crate::error::Result<SimOutcome> {
        let mut next_key = 0i64;
        // Let the set elect its first primary and the others sync before faults begin.
        let settle = self.options.steps / 4;
        for step in 0..self.options.steps + settle {
            if step >= settle {
                self.fabric.apply_random_fault(&mut self.rng, self.options.members);
                if self.options.kills {
                    self.kill_or_restart().await?;
                }
                self.maybe_skew_a_clock();
            }
            for _ in 0..self.rng.below(3) {
                let live = self.live();
                if live.is_empty() {
                    break;
                }
                let target = live[self.rng.below(live.len() as i64) as usize];
                let majority = self.rng.below(2) == 0;
                next_key += 1;
                self.write(target, next_key, majority).await;
            }
            tokio::time::sleep(Duration::from_millis(self.options.step_ms)).await;
            self.observe().await;
            if self.checker.violation.is_some() {
                return Ok(self.outcome(None));
            }
        }
        for index in 0..self.slots.len() {
            if self.slots[index].node.is_none() {
                self.boot(index).await?;
                self.trace.add(&format!("restart {index} for healing"));
            }
        }
        self.fabric.heal();
        let violation = self.converge().await;
        Ok(self.outcome(violation))
    }

    /// Now and then kills a live member (never more than a minority at once) or restarts a dead one.
    async fn kill_or_restart(&mut self) -> crate::error::Result<()> {
        let draw = self.rng.below(20);
        let dead: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].node.is_none())
            .collect();
        if draw == 0 && dead.len() < (self.slots.len() - 1) / 2 {
            let live = self.live();
            let victim = live[self.rng.below(live.len() as i64) as usize];
            self.kill(victim);
            self.checker.kills += 1;
            self.trace.add(&format!("kill {victim}"));
        } else if draw < 3
            && let Some(&index) = dead.first()
        {
            self.boot(index).await?;
            self.trace.add(&format!("restart {index}"));
        }
        Ok(())
    }

    /// Now and then moves one member's wall clock (as Jepsen bumps a host's clock); timers are unaffected.
    fn maybe_skew_a_clock(&mut self) {
        if self.rng.below(15) != 0 {
            return;
        }
        let index = self.rng.below(self.slots.len() as i64) as usize;
        let offset = [-3_000, 0, 3_000, 30_000][self.rng.below(4) as usize];
        self.slots[index].clock.set_offset_millis(offset);
        self.trace.add(&format!("clock {index} offset {offset} ms"));
    }

    async fn write(&mut self, target: usize, key: i64, majority: bool) {
        let Some(node) = self.slots[target].node.clone() else {
            return;
        };
        let wc = if majority {
            doc! {"w": "majority", "wtimeout": 2000}
        } else {
            doc! {"w": 1}
        };
        let reply = call(
            &node,
            &self.client,
            doc! {"insert": "c", "documents": [{"_id": key, "by": target as i32}], "writeConcern": wc, "$db": "sim"},
        )
        .await;
        let acknowledged =
            is_ok(&reply) && !reply.contains_key("writeErrors") && !reply.contains_key("writeConcernError");
        self.trace.add(&format!(
            "write {key} to {target} majority={majority} acknowledged={acknowledged}"
        ));
        if majority && acknowledged {
            self.checker.majority_acked.insert(key);
        }
    }

    async fn observe(&mut self) {
        let nodes: Vec<(usize, Arc<Node>)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.node.clone().map(|n| (i, n)))
            .collect();
        for (index, node) in &nodes {
            let role = node.member.role();
            let written = node.storage.positions().last_written;
            let documents = match documents(node, &self.client).await {
                Ok(documents) => documents.len().to_string(),
                Err(refusal) => format!("unreadable ({refusal})"),
            };
            self.trace.add(&format!(
                "{index} {} term {} written {:?} documents {documents}",
                role.state.as_str(),
                role.term,
                written
            ));
        }
        self.checker.observe(&nodes);
        if let Some(storm) = self.fabric.storm()
            && self.checker.violation.is_none()
        {
            self.checker.violation = Some(storm);
        }
    }

    fn outcome(&self, violation: Option<String>) -> SimOutcome {
        SimOutcome {
            seed: self.options.seed,
            violation: violation.or(self.checker.violation.clone()),
            majority_acked: self.checker.majority_acked.len(),
            primaries_seen: self.checker.primaries.len(),
            kills: self.checker.kills,
            trace: self.trace.digest,
            simulated: self.started.elapsed(),
            events: self.trace.events.clone(),
        }
    }

    /// After healing: every member reaches the same newest optime with the same documents, and every
    /// w:majority-acknowledged write is among them.
    async fn converge(&mut self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + CONVERGE_WITHIN;
        let nodes: Vec<Arc<Node>> = self.slots.iter().filter_map(|s| s.node.clone()).collect();
        loop {
            self.observe().await;
            if let Some(violation) = self.checker.violation.clone() {
                return Some(violation);
            }
            let optimes: Vec<OpTime> = nodes.iter().map(|n| n.storage.positions().last_written).collect();
            let has_primary = nodes.iter().any(|n| n.member.role().writable);
            if has_primary && optimes.windows(2).all(|w| w[0] == w[1]) {
                let mut contents = Vec::new();
                for (index, node) in nodes.iter().enumerate() {
                    match documents(node, &self.client).await {
                        Ok(documents) => contents.push(documents),
                        Err(refusal) => {
                            return Some(format!(
                                "convergence: {} reached the newest optime {:?} but refuses reads: {refusal}",
                                host(index),
                                optimes[0]
                            ));
                        }
                    }
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
                let lost: Vec<i64> = self
                    .checker
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
}

/// What the simulation observed, and a running digest (FNV-1a) of it.
struct Trace {
    digest: u64,
    events: Vec<String>,
    started: tokio::time::Instant,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace {
            digest: 0xcbf2_9ce4_8422_2325,
            events: Vec::new(),
            started: tokio::time::Instant::now(),
        }
    }
}

impl Trace {
    fn add(&mut self, event: &str) {
        let event = format!("{:>8} ms  {event}", self.started.elapsed().as_millis());
        for byte in event.bytes().chain(std::iter::once(b'\n')) {
            self.digest ^= u64::from(byte);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
        self.events.push(event);
    }
}

/// What the checks have seen so far.
#[derive(Default)]
struct Checker {
    /// term → the member that was primary in it.
    primaries: BTreeMap<i64, String>,
    majority_acked: BTreeSet<i64>,
    kills: usize,
    violation: Option<String>,
}

impl Checker {
    /// Election safety and fatal conditions, from every live member's role right now.
    fn observe(&mut self, nodes: &[(usize, Arc<Node>)]) {
        for (index, node) in nodes {
            let role = node.member.role();
            if role.state.is_primary() {
                let me = host(*index);
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
                self.violation = Some(format!("{} stopped fatally: {message}", host(*index)));
            }
        }
    }
}

/// Every document of the workload's collection on `node`, by `_id`; the reply's error when the member refuses
/// the read (in ROLLBACK or RECOVERING, say), so that a refusal is never mistaken for an empty collection.
async fn documents(node: &Node, client: &ConnectionInfo) -> Result<BTreeMap<i64, Document>, String> {
    let reply = call_as(
        node,
        client,
        doc! {"find": "c", "batchSize": 1_000_000, "singleBatch": true, "$db": "sim"},
        Some(true),
    )
    .await;
    if !is_ok(&reply) {
        return Err(format!(
            "{} ({})",
            reply.get_str("errmsg").unwrap_or("the find failed"),
            reply.get_i32("code").unwrap_or(0)
        ));
    }
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| format!("a find reply without cursor.firstBatch: {e}"))?;
    Ok(batch
        .iter()
        .filter_map(|d| d.as_document())
        .filter_map(|d| d.get_i64("_id").ok().map(|id| (id, d.clone())))
        .collect())
}

/// Runs `body` on `node` as a client would (inside the member's log span).
async fn call(node: &Node, client: &ConnectionInfo, body: Document) -> Document {
    call_as(node, client, body, None).await
}

async fn call_as(node: &Node, client: &ConnectionInfo, body: Document, secondary_ok: Option<bool>) -> Document {
    let span = member_span(&format!("127.0.0.1:{}", node.member.options().port));
    crate::command::run(
        node,
        crate::command::Invocation {
            body,
            secondary_ok,
            conn: client,
            legacy: false,
        },
    )
    .instrument(span)
    .await
    .into_document()
}

fn is_ok(reply: &Document) -> bool {
    reply.get_f64("ok").ok() == Some(1.0) || reply.get_i32("ok").ok() == Some(1)
}

#[cfg(test)]
mod scripted_tests;
#[cfg(test)]
mod tests;
