//! End-to-end tests of sharded clusters: a config replica set (`--configsvr`), shard replica sets
//! (`--shardsvr`) and `faultline mongos` routers as real processes, driven with the Rust driver through the
//! routers and checked with direct connections to each shard.

mod t100_migration;
mod t10_cluster;
mod t110_balancer;
mod t120_autosplit;
mod t130_move_primary;
mod t20_stale_routing;
mod t30_cluster_command;
mod t40_writes;
mod t50_split;
mod t60_drop;
mod t70_ten_thousand;
mod t80_failover;
mod t90_orphans;
mod t95_cluster_time;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use bson::{Document, doc};
pub use faultline_tests::raw_command;
use faultline_tests::{NodeProcess, START_TIMEOUT, free_port, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

/// A one-member replica set named `name`, started with `role` (`--configsvr` or `--shardsvr`), initiated.
pub async fn start_set(name: &str, role: &str) -> anyhow::Result<NodeProcess> {
    let port = free_port();
    let port_text = port.to_string();
    let node = NodeProcess::start_with_port(bin(), port, &[role, "--replSet", name, "--port", &port_text]).await?;
    node.initiate().await?;
    Ok(node)
}

/// An `n`-member replica set named `name`, started with `role`, initiated with fast elections; waits for a
/// primary.
pub async fn start_set_of(name: &str, role: &str, n: usize) -> anyhow::Result<Vec<NodeProcess>> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let port = free_port();
        let port_text = port.to_string();
        nodes.push(NodeProcess::start_with_port(bin(), port, &[role, "--replSet", name, "--port", &port_text]).await?);
    }
    let members: Vec<Document> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| doc! {"_id": i as i32, "host": format!("127.0.0.1:{}", node.port)})
        .collect();
    let config = doc! {"_id": name, "version": 1, "members": members,
    "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}};
    let reply = raw_command(nodes[0].port, doc! {"replSetInitiate": config, "$db": "admin"}).await?;
    anyhow::ensure!(reply.get_f64("ok")? == 1.0, "replSetInitiate: {reply}");
    primary_of(&nodes).await?;
    Ok(nodes)
}

/// The index of the member that says it is the writable primary, waiting for one.
pub async fn primary_of(nodes: &[NodeProcess]) -> anyhow::Result<usize> {
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    wait_until(std::time::Duration::from_secs(60), "a writable primary", || {
        let ports = ports.clone();
        async move {
            for (i, port) in ports.into_iter().enumerate() {
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

/// `name/host1,host2,...` of a replica set.
pub fn seeds(name: &str, nodes: &[NodeProcess]) -> String {
    let hosts: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    format!("{name}/{}", hosts.join(","))
}

/// `name/127.0.0.1:port`.
pub fn seed(name: &str, node: &NodeProcess) -> String {
    format!("{name}/127.0.0.1:{}", node.port)
}

/// One `faultline mongos` child process.
pub struct MongosProcess {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl MongosProcess {
    /// Starts a router for the config replica set `config_db` and waits until it answers `hello`.
    pub async fn start(config_db: &str) -> anyhow::Result<MongosProcess> {
        let dir = tempfile::Builder::new().prefix("faultline-mongos-").tempdir()?;
        let port = free_port();
        let child = Command::new(bin())
            .arg("mongos")
            .arg("--configdb")
            .arg(config_db)
            .arg("--port")
            .arg(port.to_string())
            .arg("--logpath")
            .arg(dir.path().join("mongos.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start faultline mongos")?;
        let router = MongosProcess {
            child: Some(child),
            port,
            dir,
        };
        wait_until(START_TIMEOUT, "faultline mongos to answer hello", || async move {
            raw_command(port, doc! {"hello": 1, "$db": "admin"}).await.ok()
        })
        .await
        .with_context(|| format!("mongos log:\n{}", router.log()))?;
        Ok(router)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logpath()).unwrap_or_default()
    }

    fn logpath(&self) -> PathBuf {
        self.dir.path().join("mongos.log")
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    pub async fn client(&self) -> anyhow::Result<mongodb::Client> {
        Ok(mongodb::Client::with_uri_str(self.uri()).await?)
    }

    /// A command on `admin` through this router; the reply whatever its `ok`.
    pub async fn admin(&self, body: Document) -> anyhow::Result<Document> {
        let mut body = body;
        body.insert("$db", "admin");
        raw_command(self.port, body).await
    }
}

impl Drop for MongosProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// A config server, `shards` one-member shards (`shA`, `shB`, ...) and one router with the shards added.
pub struct Cluster {
    pub config: NodeProcess,
    pub shards: Vec<(String, NodeProcess)>,
    pub router: MongosProcess,
}

impl Cluster {
    pub async fn start(shards: usize) -> anyhow::Result<Cluster> {
        let config = start_set("cfg", "--configsvr").await?;
        let mut members = Vec::new();
        for i in 0..shards {
            let name = format!("sh{}", (b'A' + i as u8) as char);
            let node = start_set(&name, "--shardsvr").await?;
            members.push((name, node));
        }
        let router = MongosProcess::start(&seed("cfg", &config)).await?;
        for (name, node) in &members {
            // The first router writes config.version a moment after it starts: retry until it has.
            let seed = seed(name, node);
            let router = &router;
            let reply = wait_until(START_TIMEOUT, "addShard to succeed", || {
                let seed = seed.clone();
                async move {
                    let reply = router.admin(doc! {"addShard": seed}).await.ok()?;
                    (reply.get_f64("ok").ok() == Some(1.0)).then_some(reply)
                }
            })
            .await
            .with_context(|| format!("mongos log:\n{}", router.log()))?;
            anyhow::ensure!(reply.get_str("shardAdded")? == name, "{reply}");
        }
        Ok(Cluster {
            config,
            shards: members,
            router,
        })
    }

    pub fn config_seed(&self) -> String {
        seed("cfg", &self.config)
    }

    /// The member of shard `name`.
    pub fn shard(&self, name: &str) -> &NodeProcess {
        &self
            .shards
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no shard {name}"))
            .1
    }
}

/// Every document of `db.coll` on one member, read directly.
pub async fn documents_on(node: &NodeProcess, db: &str, coll: &str) -> anyhow::Result<Vec<Document>> {
    use futures_util::TryStreamExt as _;
    let client = node.client().await?;
    let cursor = client.database(db).collection::<Document>(coll).find(doc! {}).await?;
    Ok(cursor.try_collect().await?)
}

/// Adds each shard (`name/host:port,...`) through `router`, retrying until `addShard` succeeds.
pub async fn add_shards(router: &MongosProcess, shards: &[String]) -> anyhow::Result<()> {
    for shard in shards {
        wait_until(std::time::Duration::from_secs(30), "addShard", || async move {
            let reply = router.admin(doc! {"addShard": shard}).await.ok()?;
            (reply.get_f64("ok").ok() == Some(1.0)).then_some(())
        })
        .await?;
    }
    Ok(())
}

/// The `config.chunks` documents of the sharded collection `ns`, read from the config server.
pub async fn chunks_of(cluster: &Cluster, ns: &str) -> anyhow::Result<Vec<Document>> {
    use futures_util::TryStreamExt as _;
    let config = cluster.config.client().await?.database("config");
    let uuid = config
        .collection::<Document>("collections")
        .find_one(doc! {"_id": ns})
        .await?
        .and_then(|c| c.get("uuid").cloned())
        .with_context(|| format!("{ns} is not sharded"))?;
    Ok(config
        .collection::<Document>("chunks")
        .find(doc! {"uuid": uuid})
        .await?
        .try_collect()
        .await?)
}
