//! `faultline cluster --shards N`: a local sharded cluster as the sharding tutorial builds it — a config
//! server replica set (`--configsvr`, 1 or 3 members), N shard replica sets (`--shardsvr`, `--nodes` members
//! each) and M routers (`faultline mongos`), the shards added through the first router. Each replica set is
//! a [`Cluster`] of its own (its directory under `<dir>/`); the routers are [`RouterProcess`]es. Everything
//! dies with the harness, as the members of `faultline cluster` do.
//!
//! With [`ShardedSpec::proxied`] (`faultline test --shards`) one [`ProxyNet`] spans every process — routers,
//! then config servers, then each shard's members, in that order of ids — and every process is told, with
//! `--peer-route`, to dial every other through its proxy: links within each replica set, shard ↔ config,
//! router ↔ shards and router ↔ config all cross a proxy the nemesis can cut. Members are then named after
//! their set (`cfg-n1`, `shard2-n3`).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bson::doc;

use crate::cluster::process::ProcessGroup;
use crate::cluster::{Cluster, ClusterSpec, RunState, SharedNet, wire};
use crate::proxy::ProxyNet;

/// How long the routers may take to start, and adding the shards to take.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// What sharded cluster to build.
#[derive(Debug, Clone)]
pub struct ShardedSpec {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub shards: usize,
    /// Members per shard.
    pub nodes: usize,
    pub config_servers: usize,
    pub routers: usize,
    /// The first router's port; the other routers, the config servers and the shards follow.
    pub base_port: u16,
    /// Put a fault proxy on every link between the cluster's processes (see the module's header).
    pub proxied: bool,
    /// `--setParameter` values of every shard member and config server.
    pub set_parameters: Vec<String>,
}

impl ShardedSpec {
    /// Each process's `--worker-threads`: the host's cores shared among the shards' members, the config
    /// servers and the routers.
    fn worker_threads(&self) -> u16 {
        crate::cluster::worker_share(self.shards * self.nodes + self.config_servers + self.routers)
    }
}

/// One `faultline mongos` process.
pub struct RouterProcess {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    config_db: String,
    peer_routes: Vec<String>,
    /// `--worker-threads`.
    worker_threads: u16,
    process: ProcessGroup,
}

impl RouterProcess {
    fn new(spec: &ShardedSpec, name: String, port: u16, dir: PathBuf, config_db: &str) -> RouterProcess {
        RouterProcess {
            worker_threads: spec.worker_threads(),
            name,
            port,
            dir,
            bin: spec.bin.clone(),
            config_db: config_db.to_string(),
            peer_routes: Vec::new(),
            process: ProcessGroup::default(),
        }
    }

    /// Starts the process (no-op when it runs).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let dir = &self.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .with_context(|| format!("cannot open {}/stderr.log", dir.display()))?;
        let mut command = Command::new(&self.bin);
        command
            .arg("mongos")
            .args([
                "--configdb",
                &self.config_db,
                "--port",
                &self.port.to_string(),
                "--bind_ip",
                "127.0.0.1",
            ])
            .arg("--logpath")
            .arg(dir.join("mongos.log"))
            .arg("--logappend")
            .args(["--die-with-parent", &std::process::id().to_string()]);
        for route in &self.peer_routes {
            command.args(["--peer-route", route]);
        }
        command.args(["--worker-threads", &self.worker_threads.to_string()]);
        command.stderr(Stdio::from(stderr));
        self.process.spawn(&mut command, &self.bin)
    }

    /// Whether the process is up (paused or not); reaps it when it exited.
    pub fn is_running(&mut self) -> bool {
        self.process.run_state() != RunState::Down
    }

    /// SIGKILL and reap; whether a process was running.
    pub fn kill(&mut self) -> bool {
        self.process.kill()
    }

    /// SIGSTOP; whether it was running and is now paused.
    pub fn pause(&mut self) -> bool {
        self.process.pause()
    }

    /// SIGCONT; whether it was paused.
    pub fn resume(&mut self) -> bool {
        self.process.resume()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&mut self, grace: Duration) {
        self.process.stop(grace).await;
    }
}

/// A running sharded cluster.
pub struct ShardedCluster {
    pub config: Cluster,
    pub shards: Vec<Cluster>,
    pub routers: Vec<RouterProcess>,
    /// The proxies on every link, when [`ShardedSpec::proxied`].
    pub net: Option<Arc<ProxyNet>>,
}

impl ShardedCluster {
    /// Starts and initiates every replica set, starts the routers and adds the shards.
    pub async fn start(spec: &ShardedSpec, wait: Duration) -> anyhow::Result<ShardedCluster> {
        let total = spec.routers + spec.config_servers + spec.shards * spec.nodes;
        let all_ports: Vec<u16> = (0..total)
            .map(|i| u16::try_from(usize::from(spec.base_port) + i))
            .collect::<Result<_, _>>()
            .with_context(|| format!("base port {} leaves no room for {total} processes", spec.base_port))?;
        let net = if spec.proxied {
            // A proxy's ephemeral port may be one chosen for a process: draw the proxies again.
            let mut attempts = 0;
            loop {
                let net = ProxyNet::start(&all_ports)
                    .await
                    .context("cannot start the fault proxies")?;
                attempts += 1;
                if !net.listens_on_any(&all_ports) || attempts >= 20 {
                    break Some(Arc::new(net));
                }
            }
        } else {
            None
        };
        let shared = |first_id: usize, count: usize| {
            net.as_ref().map(|net| SharedNet {
                net: net.clone(),
                first_id,
                ports: all_ports[first_id..first_id + count].to_vec(),
            })
        };
        let mut id = spec.routers;
        let config = start_set(
            spec,
            "cfg",
            "config",
            "--configsvr",
            spec.config_servers,
            all_ports[id],
            shared(id, spec.config_servers),
            wait,
        )
        .await?;
        id += spec.config_servers;
        let mut shards = Vec::with_capacity(spec.shards);
        for i in 1..=spec.shards {
            let name = format!("shard{i}");
            shards.push(
                start_set(
                    spec,
                    &name,
                    &name,
                    "--shardsvr",
                    spec.nodes,
                    all_ports[id],
                    shared(id, spec.nodes),
                    wait,
                )
                .await?,
            );
            id += spec.nodes;
        }
        let config_db = seed_list(&config);
        let mut routers = Vec::with_capacity(spec.routers);
        for (i, router_port) in all_ports[..spec.routers].iter().enumerate() {
            let name = format!("mongos{}", i + 1);
            let dir = spec.dir.join("mongos").join(&name);
            let mut router = RouterProcess::new(spec, name, *router_port, dir, &config_db);
            if let Some(net) = &net {
                router.peer_routes = net.routes_for(i);
            }
            router.spawn()?;
            routers.push(router);
        }
        for router in &routers {
            wait_answering(router).await?;
        }
        let first = routers.first().context("a sharded cluster needs a router")?;
        for shard in &shards {
            add_shard(first, &seed_list(shard)).await?;
        }
        Ok(ShardedCluster {
            config,
            shards,
            routers,
            net,
        })
    }

    /// [`ShardedCluster::start`] with one config server and one router on a run of free ports (benchmarks).
    pub async fn start_on_free_ports(
        dir: &std::path::Path,
        shards: usize,
        nodes: usize,
        wait: Duration,
    ) -> anyhow::Result<ShardedCluster> {
        let count = 2 + shards * nodes;
        let base_port = free_port_run(count).context("no run of free ports for the sharded cluster")?;
        let spec = ShardedSpec {
            bin: std::env::current_exe().context("cannot find the faultline binary")?,
            dir: dir.to_path_buf(),
            shards,
            nodes,
            config_servers: 1,
            routers: 1,
            base_port,
            proxied: false,
            set_parameters: Vec::new(),
        };
        ShardedCluster::start(&spec, wait).await
    }

    /// The URI applications use: every router.
    pub fn uri(&self) -> String {
        let hosts: Vec<String> = self.routers.iter().map(RouterProcess::host).collect();
        format!("mongodb://{}/", hosts.join(","))
    }

    /// One line per component: each router, then each replica set's members.
    pub async fn status_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for router in &self.routers {
            let state = match wire::hello(router.port, Duration::from_millis(500)).await {
                Ok(hello) if hello.get_str("msg").ok() == Some("isdbgrid") => "up (mongos)",
                Ok(_) => "answering, but not as mongos",
                Err(_) => "unreachable",
            };
            let pid = router.pid().map_or("-".to_string(), |p| p.to_string());
            lines.push(format!(
                "{:<8} {:<16} pid {:<8} {state}",
                router.name,
                router.host(),
                pid
            ));
        }
        for set in std::iter::once(&mut self.config).chain(self.shards.iter_mut()) {
            let name = set.spec.repl_set.clone();
            for line in set.status_lines().await {
                lines.push(format!("{name:<8} {line}"));
            }
        }
        lines
    }

    /// Stops the routers, then the shards, then the config servers.
    pub async fn shutdown(&mut self, grace: Duration) {
        for router in &mut self.routers {
            router.stop(grace).await;
        }
        for shard in &mut self.shards {
            shard.shutdown(grace).await;
        }
        self.config.shutdown(grace).await;
    }
}

/// Where [`free_port_run`] looks: below Linux's default ephemeral range (32768-60999), so that no outgoing
/// connection's local port takes a port chosen for a process that has not started listening yet.
const PORT_RUNS: std::ops::Range<u16> = 20_000..32_000;

/// The first of `count` consecutive ports that are free now, below the ephemeral range (from a point drawn
/// from the clock and the process id, so concurrent harnesses start apart).
pub fn free_port_run(count: usize) -> Option<u16> {
    let span = usize::from(PORT_RUNS.end - PORT_RUNS.start);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    let mut offset = (nanos ^ (std::process::id() as usize).wrapping_mul(7919)) % span;
    for _ in 0..200 {
        let first = PORT_RUNS.start + offset as u16;
        let fits = usize::from(first) + count <= usize::from(PORT_RUNS.end)
            && (0..count as u16).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if fits {
            return Some(first);
        }
        offset = (offset + count + 97) % span;
    }
    None
}

/// Starts, initiates and waits for the primary of one replica set of the cluster.
#[allow(clippy::too_many_arguments)]
async fn start_set(
    spec: &ShardedSpec,
    name: &str,
    dir: &str,
    role: &str,
    nodes: usize,
    base_port: u16,
    shared_net: Option<SharedNet>,
    wait: Duration,
) -> anyhow::Result<Cluster> {
    let mut set = ClusterSpec::new(spec.bin.clone(), spec.dir.join(dir), nodes);
    set.repl_set = name.to_string();
    set.base_port = Some(base_port);
    set.proxies = false;
    set.node_flags = vec![role.to_string()];
    set.set_parameters = spec.set_parameters.clone();
    set.worker_threads = Some(spec.worker_threads());
    let named = shared_net.is_some();
    set.shared_net = shared_net;
    let mut cluster = Cluster::start(set).await?;
    if named {
        for member in &mut cluster.members {
            member.name = format!("{name}-{}", member.name);
        }
    }
    if !cluster.is_initiated().await {
        cluster.initiate().await?;
    }
    cluster.wait_primary(wait).await?;
    Ok(cluster)
}

/// `name/h1:p1,h2:p2,...`.
pub fn seed_list(set: &Cluster) -> String {
    let hosts: Vec<String> = set.members.iter().map(|m| m.host()).collect();
    format!("{}/{}", set.spec.repl_set, hosts.join(","))
}

async fn wait_answering(router: &RouterProcess) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ROUTER_TIMEOUT;
    loop {
        if wire::hello(router.port, Duration::from_millis(500)).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(router.dir.join("stderr.log")).unwrap_or_default();
            bail!(
                "{} did not answer within {ROUTER_TIMEOUT:?}; its stderr:\n{log}",
                router.name
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `addShard` through `router`, retried until the first router has written `config.version`.
async fn add_shard(router: &RouterProcess, seed: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ROUTER_TIMEOUT;
    loop {
        match wire::command_ok(router.port, doc! {"addShard": seed}, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err(err) if tokio::time::Instant::now() >= deadline => bail!("addShard {seed} failed: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
