//! The nemesis of a sharded cluster (`faultline test --shards N`): the replica-set faults aimed at one part of
//! the cluster — a shard, the config servers, a router — or at all of it, partitions that cut links between
//! parts (a shard from the config servers and routers, a router from everything), and chunk operations
//! (`move-chunk`, `split`) on their own timer through a router. Every action is recorded as a nemesis
//! operation as [`super::Nemesis`] records its own, with members named after their set (`shard2-n1`,
//! `cfg-n1`, `mongos1`).
//!
//! Faults on a replica set reuse [`super::Nemesis`] (one per set); this module picks the set, adds the
//! routers, and owns the cross-part partitions on the one proxy network of the cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{Bson, Document, doc};
use faultline_checker::history::{OpType, Process};
use faultline_workloads::rng::Rng;
use serde_json::json;
use tokio::sync::watch;

use super::{Effect, Fault, Nemesis, Outcome, PlannedStep, Step, Target, record_completion};
use crate::cluster::{Cluster, wire};
use crate::proxy::{Action, Grudge, ProxyNet};
use crate::recorder::Recorder;
use crate::sharded::{RouterProcess, ShardedCluster};

/// A chunk operation of the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOp {
    /// `moveChunk` of a random chunk to a random other shard.
    MoveChunk,
    /// `split` of a random chunk at its middle.
    Split,
    /// The balancer switched on (`balancerStart`) and off (`balancerStop`) in turn; it moves chunks while on.
    Balancer,
}

impl ChunkOp {
    pub const NAMES: [&'static str; 3] = ["move-chunk", "split", "balancer"];

    pub fn from_name(name: &str) -> Option<ChunkOp> {
        match name {
            "move-chunk" => Some(ChunkOp::MoveChunk),
            "split" => Some(ChunkOp::Split),
            "balancer" => Some(ChunkOp::Balancer),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChunkOp::MoveChunk => "move-chunk",
            ChunkOp::Split => "split",
            ChunkOp::Balancer => "balancer",
        }
    }
}

/// Which part of a sharded cluster process faults and partitions hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardTarget {
    /// The primary of a random shard.
    ShardPrimary,
    /// The config servers' primary.
    ConfigPrimary,
    /// A random router.
    Mongos,
    /// Every replica set and every router at once.
    All,
}

impl ShardTarget {
    pub const NAMES: [&'static str; 4] = ["shard-primary", "config-primary", "mongos", "all"];

    pub fn from_name(name: &str) -> Option<ShardTarget> {
        match name {
            "shard-primary" => Some(ShardTarget::ShardPrimary),
            "config-primary" => Some(ShardTarget::ConfigPrimary),
            "mongos" => Some(ShardTarget::Mongos),
            "all" => Some(ShardTarget::All),
            _ => None,
        }
    }
}

/// A running sharded cluster shared by the nemesis and the runner: each replica set behind its own lock.
pub struct ShardedTopology {
    pub config: Arc<tokio::sync::Mutex<Cluster>>,
    pub shards: Vec<Arc<tokio::sync::Mutex<Cluster>>>,
    pub routers: tokio::sync::Mutex<Vec<RouterProcess>>,
    pub net: Option<Arc<ProxyNet>>,
    /// Proxy ids: routers first, then the config servers, then each shard's members.
    router_count: usize,
    config_count: usize,
    shard_nodes: usize,
}

/// One part of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Config,
    Shard(usize),
    Router(usize),
}

impl ShardedTopology {
    pub fn new(cluster: ShardedCluster) -> ShardedTopology {
        let ShardedCluster {
            config,
            shards,
            routers,
            net,
        } = cluster;
        let shard_nodes = shards.first().map_or(0, |s| s.members.len());
        ShardedTopology {
            config_count: config.members.len(),
            router_count: routers.len(),
            shard_nodes,
            config: Arc::new(tokio::sync::Mutex::new(config)),
            shards: shards
                .into_iter()
                .map(|s| Arc::new(tokio::sync::Mutex::new(s)))
                .collect(),
            routers: tokio::sync::Mutex::new(routers),
            net,
        }
    }

    /// The config servers then every shard.
    pub fn sets(&self) -> Vec<Arc<tokio::sync::Mutex<Cluster>>> {
        std::iter::once(self.config.clone())
            .chain(self.shards.iter().cloned())
            .collect()
    }

    /// The proxy ids of a part's processes.
    fn ids(&self, part: Part) -> std::ops::Range<usize> {
        let first_shard = self.router_count + self.config_count;
        match part {
            Part::Router(i) => i..i + 1,
            Part::Config => self.router_count..first_shard,
            Part::Shard(i) => {
                let start = first_shard + i * self.shard_nodes;
                start..start + self.shard_nodes
            }
        }
    }

    fn process_count(&self) -> usize {
        self.router_count + self.config_count + self.shards.len() * self.shard_nodes
    }

    /// The router ports, in order.
    pub async fn router_ports(&self) -> Vec<(String, u16)> {
        self.routers
            .lock()
            .await
            .iter()
            .map(|r| (r.name.clone(), r.port))
            .collect()
    }

    /// Heals the network, resumes and restarts every process.
    pub async fn heal_all(&self) -> anyhow::Result<()> {
        if let Some(net) = &self.net {
            net.heal();
        }
        for set in self.sets() {
            set.lock().await.heal_all().await?;
        }
        let mut routers = self.routers.lock().await;
        for router in routers.iter_mut() {
            router.resume();
            router.spawn()?;
        }
        Ok(())
    }

    /// Stops the routers, the shards, then the config servers.
    pub async fn shutdown(&self, grace: Duration) {
        for router in self.routers.lock().await.iter_mut() {
            router.kill();
        }
        for set in self.shards.iter().chain(std::iter::once(&self.config)) {
            set.lock().await.shutdown(grace).await;
        }
    }
}

/// Applies faults to a sharded cluster and records them.
pub struct ShardedNemesis {
    topology: Arc<ShardedTopology>,
    /// One replica-set nemesis per set: the config servers, then each shard.
    sets: Vec<Nemesis>,
    recorder: Arc<Recorder>,
    rng: Rng,
    target: Option<ShardTarget>,
    /// Descriptions of the faults in force (for the progress line).
    pub active: Arc<Mutex<Vec<String>>>,
}

impl ShardedNemesis {
    pub fn new(
        topology: Arc<ShardedTopology>,
        recorder: Arc<Recorder>,
        seed: u64,
        target: Option<ShardTarget>,
    ) -> ShardedNemesis {
        let sets = topology
            .sets()
            .into_iter()
            .enumerate()
            .map(|(i, set)| Nemesis::new(set, recorder.clone(), seed ^ (i as u64 + 1).wrapping_mul(0x9E37)))
            .collect();
        ShardedNemesis {
            topology,
            sets,
            recorder,
            rng: Rng::seed_from_u64(seed ^ 0x0073_6861_7264_6564),
            target,
            active: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs the plan until its end or until `stop` turns true.
    pub async fn run_plan(&mut self, plan: &[PlannedStep], stop: watch::Receiver<bool>) {
        let started = self.recorder.started();
        super::run_steps(started, plan, stop, async |step| self.apply(step).await).await;
    }

    /// The parts a start hits.
    fn parts(&mut self, fault: Fault) -> Vec<Part> {
        let shards = self.topology.shards.len();
        let routers = self.topology.router_count;
        let router_fault = matches!(fault, Fault::Kill | Fault::Pause | Fault::Stop | Fault::Partition(_));
        match self.target {
            Some(ShardTarget::ShardPrimary) => vec![Part::Shard(self.rng.index(shards))],
            Some(ShardTarget::ConfigPrimary) => vec![Part::Config],
            Some(ShardTarget::Mongos) if router_fault => vec![Part::Router(self.rng.index(routers))],
            Some(ShardTarget::Mongos) => vec![],
            Some(ShardTarget::All) => {
                let mut all = vec![Part::Config];
                all.extend((0..shards).map(Part::Shard));
                if router_fault && !matches!(fault, Fault::Partition(_)) {
                    all.extend((0..routers).map(Part::Router));
                }
                all
            }
            None => {
                let mut choices = vec![Part::Config];
                choices.extend((0..shards).map(Part::Shard));
                if router_fault {
                    choices.push(Part::Router(self.rng.index(routers)));
                }
                vec![choices[self.rng.index(choices.len())]]
            }
        }
    }

    /// Applies one step and records it.
    pub async fn apply(&mut self, step: Step) {
        let (f, value) = match step {
            Step::Start(fault, target) => (
                fault.start_f(),
                json!({"fault": fault.describe(), "target": target.name()}),
            ),
            Step::Heal(fault) => (fault.heal_f(), json!({"fault": fault.describe()})),
        };
        self.recorder
            .record(OpType::Invoke, Process::nemesis(), f, value.clone(), None, None);
        let (outcome, names, details) = match step {
            Step::Start(fault, target) => self.start(fault, target).await,
            Step::Heal(fault) => self.heal(fault).await,
        };
        if let Ok(mut active) = self.active.lock() {
            match step {
                Step::Start(fault, _) if outcome != Outcome::Skipped => active.push(fault.describe()),
                Step::Heal(fault) => active.retain(|a| *a != fault.describe()),
                Step::Start(..) => {}
            }
        }
        record_completion(&self.recorder, f, value, outcome, names, details.join("; "));
    }

    async fn start(&mut self, fault: Fault, target: Target) -> (Outcome, Vec<String>, Vec<String>) {
        let mut outcome = Outcome::Skipped;
        let mut names = Vec::new();
        let mut details = Vec::new();
        for part in self.parts(fault) {
            let (hit, hit_names, detail) = match (part, fault) {
                (Part::Router(i), Fault::Partition(_)) => self.cut_part(Part::Router(i)).await,
                (Part::Router(i), _) => self.router_fault(i, fault).await,
                (set_part, Fault::Partition(_)) if self.rng.below(2) == 0 => self.cut_part(set_part).await,
                (Part::Config | Part::Shard(_), _) => {
                    let index = match part {
                        Part::Shard(i) => i + 1,
                        _ => 0,
                    };
                    let effect: Effect = self.sets[index].start(fault, target).await;
                    let names = member_names(&self.sets[index], &effect.members).await;
                    (effect.outcome, names, effect.detail)
                }
            };
            if hit != Outcome::Skipped {
                outcome = if outcome == Outcome::Indeterminate {
                    outcome
                } else {
                    hit
                };
            }
            names.extend(hit_names);
            if !detail.is_empty() {
                details.push(detail);
            }
        }
        (outcome, names, details)
    }

    /// Cuts every link between a part's processes and the rest of the cluster.
    async fn cut_part(&mut self, part: Part) -> (Outcome, Vec<String>, String) {
        let Some(net) = &self.topology.net else {
            return (Outcome::Skipped, vec![], "no proxies".into());
        };
        let inside: Vec<usize> = self.topology.ids(part).collect();
        let outside: Vec<usize> = (0..self.topology.process_count())
            .filter(|id| !inside.contains(id))
            .collect();
        let mut grudge = Grudge::new();
        grudge.cut(&inside, &outside);
        net.set_partition(&grudge, Action::Drop);
        let names = match part {
            Part::Router(i) => vec![self.topology.routers.lock().await[i].name.clone()],
            Part::Config => all_names(&self.topology.config).await,
            Part::Shard(i) => all_names(&self.topology.shards[i]).await,
        };
        let detail = format!("{} cut from the rest of the cluster", names.join(","));
        (Outcome::Installed, names, detail)
    }

    async fn router_fault(&mut self, index: usize, fault: Fault) -> (Outcome, Vec<String>, String) {
        let mut routers = self.topology.routers.lock().await;
        let router = &mut routers[index];
        let hit = match fault {
            Fault::Kill | Fault::Stop => router.kill(),
            Fault::Pause => router.pause(),
            _ => false,
        };
        if hit {
            (Outcome::Installed, vec![router.name.clone()], String::new())
        } else {
            (Outcome::Skipped, vec![], format!("{} not running", router.name))
        }
    }

    async fn heal(&mut self, fault: Fault) -> (Outcome, Vec<String>, Vec<String>) {
        let mut names = Vec::new();
        let mut details = Vec::new();
        let mut outcome = Outcome::Installed;
        for set in &mut self.sets {
            let effect = set.heal(fault).await;
            if effect.outcome == Outcome::Indeterminate {
                outcome = Outcome::Indeterminate;
                details.push(effect.detail.clone());
            }
            names.extend(member_names(set, &effect.members).await);
        }
        if let (Fault::Partition(_), Some(net)) = (fault, &self.topology.net) {
            net.heal();
        }
        let mut routers = self.topology.routers.lock().await;
        for router in routers.iter_mut() {
            let healed = match fault {
                Fault::Pause => router.resume(),
                Fault::Kill | Fault::Stop if !router.is_running() => match router.spawn() {
                    Ok(()) => true,
                    Err(e) => {
                        outcome = Outcome::Indeterminate;
                        details.push(format!("{}: {e:#}", router.name));
                        false
                    }
                },
                _ => false,
            };
            if healed {
                names.push(router.name.clone());
            }
        }
        (outcome, names, details)
    }

    /// Heals every fault (the final phase's first step).
    pub async fn heal_everything(&mut self) -> anyhow::Result<()> {
        let value = json!({"fault": "all"});
        self.recorder
            .record(OpType::Invoke, Process::nemesis(), "heal", value.clone(), None, None);
        let result = self.topology.heal_all().await;
        for set in &mut self.sets {
            set.diverged = None;
            let mut cluster = set.cluster.lock().await;
            let all = (0..cluster.members.len()).collect();
            super::reset_clocks(&mut cluster, all).await;
        }
        if let Ok(mut active) = self.active.lock() {
            active.clear();
        }
        let (outcome, detail) = match &result {
            Ok(()) => (
                Outcome::Installed,
                "network healed, every process resumed and restarted".to_string(),
            ),
            Err(e) => (Outcome::Indeterminate, format!("{e:#}")),
        };
        record_completion(&self.recorder, "heal", value, outcome, vec![], detail);
        result
    }
}

async fn member_names(nemesis: &Nemesis, members: &[usize]) -> Vec<String> {
    let cluster = nemesis.cluster.lock().await;
    members
        .iter()
        .filter_map(|i| cluster.members.get(*i).map(|m| m.name.clone()))
        .collect()
}

async fn all_names(set: &Arc<tokio::sync::Mutex<Cluster>>) -> Vec<String> {
    set.lock().await.members.iter().map(|m| m.name.clone()).collect()
}

/// The deadline of one chunk command (a migration waits for its critical section and commit).
const CHUNK_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs chunk operations (`ops`) every `interval` until `stop`, each recorded as a nemesis operation whose
/// `f` is the op's name (`move-chunk`, `split`) and whose value names the chunk, the shards and the outcome.
pub async fn chunk_loop(
    topology: Arc<ShardedTopology>,
    recorder: Arc<Recorder>,
    ops: Vec<ChunkOp>,
    ns: String,
    seed: u64,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if ops.is_empty() {
        return;
    }
    let mut rng = Rng::seed_from_u64(seed ^ 0x6368_756E_6B73);
    let mut balancing = false;
    loop {
        let stopped = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            if balancing {
                switch_balancer(&topology, &recorder, false).await;
                settle(&topology, &ns).await;
            }
            return;
        }
        let op = ops[rng.index(ops.len())];
        if op == ChunkOp::Balancer {
            balancing = !balancing;
            switch_balancer(&topology, &recorder, balancing).await;
            continue;
        }
        let routers = topology.router_ports().await;
        let value = json!({"fault": op.name(), "ns": ns});
        recorder.record(OpType::Invoke, Process::nemesis(), op.name(), value.clone(), None, None);
        let (outcome, detail) = match chunk_op(&routers, op, &ns, &mut rng).await {
            Ok(Some(detail)) => (Outcome::Installed, detail),
            Ok(None) => (Outcome::Skipped, "no chunk to act on".to_string()),
            // A router without the command (CommandNotFound): nothing happened.
            Err(e) if format!("{e:#}").contains("(code 59)") => (Outcome::Skipped, format!("{e:#}")),
            Err(e) => (Outcome::Indeterminate, format!("{e:#}")),
        };
        record_completion(&recorder, op.name(), value, outcome, vec![], detail);
    }
}

/// `balancerStart` (`on`, after setting the chunk size to 1 MB) or `balancerStop` through the first router that
/// answers, recorded as
/// `start-balancer` / `stop-balancer` (an interval on the report's timelines).
async fn switch_balancer(topology: &ShardedTopology, recorder: &Recorder, on: bool) {
    let (f, command) = if on {
        ("start-balancer", "balancerStart")
    } else {
        ("stop-balancer", "balancerStop")
    };
    let value = json!({"fault": "balancer"});
    recorder.record(OpType::Invoke, Process::nemesis(), f, value.clone(), None, None);
    let mut result: anyhow::Result<()> = Err(anyhow::anyhow!("no router answered"));
    for (_, port) in topology.router_ports().await {
        if on {
            // The smallest chunk size MongoDB accepts (1 MB), so the balancer splits whatever grows and has
            // the most chunks to move (`config.settings`, written through the router as `sh` helpers do).
            let chunk_size = doc! {"update": "settings", "updates": [{"q": {"_id": "chunksize"},
            "u": {"$set": {"value": 1}}, "upsert": true}], "writeConcern": {"w": "majority"}, "$db": "config"};
            if let Err(e) = wire::command_ok(port, chunk_size, CHUNK_COMMAND_TIMEOUT).await {
                result = Err(anyhow::Error::from(e));
                continue;
            }
        }
        result = wire::command_ok(port, doc! {command: 1, "$db": "admin"}, CHUNK_COMMAND_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from);
        if result.is_ok() {
            break;
        }
    }
    let (outcome, detail) = match result {
        Ok(()) => (Outcome::Installed, String::new()),
        Err(e) => (Outcome::Indeterminate, format!("{e:#}")),
    };
    record_completion(recorder, f, value, outcome, vec![], detail);
}

/// How long the end of a run waits for the balancer's last migration to end.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until the collection's chunks stay where they are for two seconds (the balancer's last migration
/// ended), at most [`SETTLE_LIMIT`].
async fn settle(topology: &ShardedTopology, ns: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    let mut last: Option<Vec<Document>> = None;
    while tokio::time::Instant::now() < deadline {
        let mut now = None;
        for (_, port) in topology.router_ports().await {
            if let Ok(chunks) = read_chunks(port, ns).await {
                now = Some(chunks);
                break;
            }
        }
        if now.is_some() && now == last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How often the chunk distribution is sampled.
const CHUNK_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Samples how many chunks of `ns` each shard owns, through the first router that answers, into
/// `chunks.jsonl` at `path` until `stop` (the report's chunk-distribution plot).
pub async fn sample_chunks(
    topology: Arc<ShardedTopology>,
    ns: String,
    path: std::path::PathBuf,
    started: std::time::Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut writer = match faultline_reports::ChunkWriter::create(&path) {
        Ok(writer) => writer,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    let shards: Vec<String> = (1..=topology.shards.len()).map(|i| format!("shard{i}")).collect();
    loop {
        for (_, port) in topology.router_ports().await {
            let Ok(chunks) = read_chunks(port, &ns).await else {
                continue;
            };
            let time = started.elapsed().as_nanos() as u64;
            let samples: Vec<faultline_reports::ChunkSample> = shards
                .iter()
                .map(|shard| faultline_reports::ChunkSample {
                    time,
                    shard: shard.clone(),
                    chunks: chunks.iter().filter(|c| c.get_str("shard").ok() == Some(shard)).count() as u64,
                })
                .collect();
            if let Err(e) = writer.write(&samples) {
                tracing::warn!("{e}");
                return;
            }
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(CHUNK_SAMPLE_PERIOD) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One chunk operation through the first router that answers; `Ok(Some(what was done))`.
async fn chunk_op(routers: &[(String, u16)], op: ChunkOp, ns: &str, rng: &mut Rng) -> anyhow::Result<Option<String>> {
    let mut last_error = None;
    for (_, port) in routers {
        let chunks = match read_chunks(*port, ns).await {
            Ok(chunks) => chunks,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        let Some(chunk) = rng.choose(&chunks).cloned() else {
            return Ok(None);
        };
        let (min, max) = (chunk.get_document("min")?.clone(), chunk.get_document("max")?.clone());
        let owner = chunk.get_str("shard")?.to_string();
        let command = match op {
            ChunkOp::MoveChunk => {
                let shards = list_shards(*port).await?;
                let others: Vec<&String> = shards.iter().filter(|s| **s != owner).collect();
                let Some(to) = rng.choose(&others) else { return Ok(None) };
                doc! {"moveChunk": ns, "bounds": [min.clone(), max.clone()], "to": to.as_str(), "$db": "admin"}
            }
            ChunkOp::Split => match middle(&min, &max) {
                Some(middle) => doc! {"split": ns, "middle": middle, "$db": "admin"},
                None => return Ok(None),
            },
            ChunkOp::Balancer => return Ok(None),
        };
        let summary = match op {
            ChunkOp::MoveChunk => format!("[{min}, {max}) {owner} → {}", command.get_str("to").unwrap_or("?")),
            ChunkOp::Split | ChunkOp::Balancer => format!(
                "[{min}, {max}) on {owner} at {}",
                command
                    .get_document("middle")
                    .map(|m| m.to_string())
                    .unwrap_or_default()
            ),
        };
        return match wire::command_ok(*port, command, CHUNK_COMMAND_TIMEOUT).await {
            Ok(_) => Ok(Some(summary)),
            Err(e) => Err(anyhow::anyhow!("{summary}: {e:#}")),
        };
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no router answered")))
}

/// The collection's chunks from `config.chunks`, through the router at `port`.
pub async fn read_chunks(port: u16, ns: &str) -> anyhow::Result<Vec<Document>> {
    let timeout = Duration::from_secs(5);
    let collection = wire::command_ok(
        port,
        doc! {"find": "collections", "filter": {"_id": ns}, "$db": "config"},
        timeout,
    )
    .await?;
    let entry = first_batch(&collection)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{ns} is not in config.collections"))?;
    let uuid = entry.get("uuid").cloned().unwrap_or(Bson::Null);
    let reply = wire::command_ok(
        port,
        doc! {"find": "chunks", "filter": {"uuid": uuid}, "sort": {"min": 1}, "batchSize": 100_000, "$db": "config"},
        timeout,
    )
    .await?;
    Ok(first_batch(&reply))
}

async fn list_shards(port: u16) -> anyhow::Result<Vec<String>> {
    let reply = wire::command_ok(port, doc! {"listShards": 1, "$db": "admin"}, Duration::from_secs(5)).await?;
    Ok(reply
        .get_array("shards")?
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|s| s.get_str("_id").ok().map(String::from))
        .collect())
}

/// The documents of a `find` reply's first batch.
pub fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|batch| batch.iter().filter_map(Bson::as_document).cloned().collect())
        .unwrap_or_default()
}

/// A split point strictly inside `[min, max)` of an `_id` chunk (hashed values or integer keys); an open end
/// stands 64 keys (or 2^40 hashed values) beyond the other.
pub fn middle(min: &Document, max: &Document) -> Option<Document> {
    let number = |bound: &Document| match bound.get("_id") {
        Some(Bson::Int64(v)) => Some(i128::from(*v)),
        Some(Bson::Int32(v)) => Some(i128::from(*v)),
        _ => None,
    };
    let hashed = matches!(min.get("_id"), Some(Bson::Int64(_))) || matches!(max.get("_id"), Some(Bson::Int64(_)));
    let reach: i128 = if hashed { 1 << 40 } else { 64 };
    let (low, high) = match (number(min), number(max)) {
        (Some(low), Some(high)) => (low, high),
        (Some(low), None) => (low, low + reach),
        (None, Some(high)) => (high - reach, high),
        (None, None) => (0, reach),
    };
    let mid = low + (high - low) / 2;
    if mid <= low || mid >= high {
        return None;
    }
    Some(if hashed {
        doc! {"_id": mid as i64}
    } else if let Ok(value) = i32::try_from(mid) {
        doc! {"_id": value}
    } else {
        doc! {"_id": mid as i64}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_lie_strictly_inside_the_chunk() {
        assert_eq!(middle(&doc! {"_id": 0}, &doc! {"_id": 10}), Some(doc! {"_id": 5}));
        assert_eq!(
            middle(&doc! {"_id": 4}, &doc! {"_id": 5}),
            None,
            "nothing strictly between"
        );
        assert_eq!(
            middle(&doc! {"_id": Bson::MinKey}, &doc! {"_id": Bson::MaxKey}),
            Some(doc! {"_id": 32})
        );
        assert_eq!(
            middle(&doc! {"_id": 100}, &doc! {"_id": Bson::MaxKey}),
            Some(doc! {"_id": 132})
        );
        let hashed = middle(&doc! {"_id": Bson::MinKey}, &doc! {"_id": 0_i64}).expect("a point");
        assert!(matches!(hashed.get("_id"), Some(Bson::Int64(v)) if *v < 0));
    }

    #[test]
    fn names_parse() {
        for name in ChunkOp::NAMES {
            assert_eq!(ChunkOp::from_name(name).map(ChunkOp::name), Some(name));
        }
        for name in ShardTarget::NAMES {
            assert!(ShardTarget::from_name(name).is_some(), "{name}");
        }
        assert_eq!(ShardTarget::from_name("n1"), None);
    }
}
