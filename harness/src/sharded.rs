//! `faultline cluster --shards N`: a local sharded cluster as the sharding tutorial builds it — a config
//! server replica set (`--configsvr`, 1 or 3 members), N shard replica sets (`--shardsvr`, `--nodes` members
//! each) and M routers (`faultline mongos`), the shards added through the first router. Each replica set is
//! a [`Cluster`] of its own (its directory under `<dir>/`); the routers are [`RouterProcess`]es. Everything
//! dies with the harness, as the members of `faultline cluster` do.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bson::doc;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cluster::{Cluster, ClusterSpec, registry, wire};

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
}

/// One `faultline mongos` process.
pub struct RouterProcess {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl RouterProcess {
    fn spawn(bin: &PathBuf, name: String, port: u16, dir: PathBuf, config_db: &str) -> anyhow::Result<RouterProcess> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .with_context(|| format!("cannot open {}/stderr.log", dir.display()))?;
        let child = Command::new(bin)
            .arg("mongos")
            .args([
                "--configdb",
                config_db,
                "--port",
                &port.to_string(),
                "--bind_ip",
                "127.0.0.1",
            ])
            .arg("--logpath")
            .arg(dir.join("mongos.log"))
            .arg("--logappend")
            .args(["--die-with-parent", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        registry::register(child.id());
        Ok(RouterProcess {
            name,
            port,
            dir,
            child: Some(child),
        })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                registry::unregister(child.id());
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
        registry::unregister(child.id());
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            registry::unregister(child.id());
        }
    }
}

/// A running sharded cluster.
pub struct ShardedCluster {
    pub config: Cluster,
    pub shards: Vec<Cluster>,
    pub routers: Vec<RouterProcess>,
}

impl ShardedCluster {
    /// Starts and initiates every replica set, starts the routers and adds the shards.
    pub async fn start(spec: &ShardedSpec, wait: Duration) -> anyhow::Result<ShardedCluster> {
        let mut port = spec.base_port;
        let router_ports: Vec<u16> = (0..spec.routers as u16).map(|i| port + i).collect();
        port += spec.routers as u16;
        let config = start_set(spec, "cfg", "config", "--configsvr", spec.config_servers, port, wait).await?;
        port += spec.config_servers as u16;
        let mut shards = Vec::with_capacity(spec.shards);
        for i in 1..=spec.shards {
            let name = format!("shard{i}");
            shards.push(start_set(spec, &name, &name, "--shardsvr", spec.nodes, port, wait).await?);
            port += spec.nodes as u16;
        }
        let config_db = seed_list(&config);
        let mut routers = Vec::with_capacity(spec.routers);
        for (i, router_port) in router_ports.iter().enumerate() {
            let name = format!("mongos{}", i + 1);
            let dir = spec.dir.join("mongos").join(&name);
            routers.push(RouterProcess::spawn(&spec.bin, name, *router_port, dir, &config_db)?);
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

/// The first of `count` consecutive ports that are free now.
fn free_port_run(count: usize) -> Option<u16> {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let fits = usize::from(first) + count <= 65536
            && (0..count as u16).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if fits {
            return Some(first);
        }
    }
    None
}

/// Starts, initiates and waits for the primary of one replica set of the cluster.
async fn start_set(
    spec: &ShardedSpec,
    name: &str,
    dir: &str,
    role: &str,
    nodes: usize,
    base_port: u16,
    wait: Duration,
) -> anyhow::Result<Cluster> {
    let mut set = ClusterSpec::new(spec.bin.clone(), spec.dir.join(dir), nodes);
    set.repl_set = name.to_string();
    set.base_port = Some(base_port);
    set.proxies = false;
    set.node_flags = vec![role.to_string()];
    let cluster = Cluster::start(set).await?;
    if !cluster.is_initiated().await {
        cluster.initiate().await?;
    }
    cluster.wait_primary(wait).await?;
    Ok(cluster)
}

/// `name/h1:p1,h2:p2,...`.
fn seed_list(set: &Cluster) -> String {
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
