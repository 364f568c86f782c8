//! Cluster control: a local replica set of `faultline node` child processes (ARCHITECTURE §5).
//!
//! [`Cluster::start`] lays out `<dir>/nodes/<n>/`, starts the fault proxies (one per directed member link,
//! multi-member sets only), spawns every member in its own process group, and waits until each answers
//! `hello`; [`Cluster::initiate`] sends `replSetInitiate` with the full member list; [`Cluster::wait_primary`]
//! and [`Cluster::wait_healthy`] poll `hello`. Faults act on single members (kill, stop, pause, resume,
//! restart, wipe) or on the proxies ([`Cluster::net`]). Every child is killed when the cluster is dropped, by
//! the panic hook and by [`registry::kill_all`].
//!
//! - [`member`]: one member process.
//! - [`registry`]: the pids of every live child.
//! - [`wire`]: a tiny admin client with deadlines, for health checks.

pub mod member;
pub mod process;
pub mod registry;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bson::{Bson, Document, doc};
use futures_util::future::join_all;
pub use member::{LaunchArgs, Member, RunState};

use crate::proxy::ProxyNet;

/// How long a member may take to answer its first `hello`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of one health-check command.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What cluster to build.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `faultline` binary that runs members.
    pub bin: PathBuf,
    /// Root directory; members live in `<dir>/nodes/<n>/`.
    pub dir: PathBuf,
    /// Data-bearing members.
    pub nodes: usize,
    /// Arbiters (after the data members).
    pub arbiters: usize,
    /// First port (members use consecutive ports); `None` picks free ports.
    pub base_port: Option<u16>,
    pub repl_set: String,
    /// `--setParameter` values passed to every member.
    pub set_parameters: Vec<String>,
    /// `settings.heartbeatIntervalMillis` for the set (multi-member sets).
    pub heartbeat_ms: u64,
    /// `settings.electionTimeoutMillis` for the set (multi-member sets).
    pub election_timeout_ms: u64,
    /// Give this member index `secondaryDelaySecs` (it also gets priority 0 and hidden false).
    pub delayed_member: Option<(usize, u64)>,
    /// Route member-to-member links through fault proxies (multi-member sets only).
    pub proxies: bool,
    /// Extra `faultline node` flags of every member (a sharded cluster's `--shardsvr` / `--configsvr`).
    pub node_flags: Vec<String>,
    /// Join a proxy network built for a larger deployment (a sharded cluster's) instead of starting one:
    /// members listen on its ports from `first_id` on and are routed through it to every process of it.
    pub shared_net: Option<SharedNet>,
    /// Members die with the harness whatever kills it (`--die-with-parent`, see [`crate::parent_watch`]).
    /// Off only for members meant to outlive it ([`Cluster::detach`]).
    pub die_with_harness: bool,
    /// Each member's `--worker-threads`; `None` shares the host's cores among this set's members
    /// ([`worker_share`]). A sharded cluster shares them among all its processes.
    pub worker_threads: Option<u16>,
}

/// The `--worker-threads` of each of `processes` processes that share this host: its cores divided among
/// them, at least 1. A member's threads sleep between messages, and on a host with fewer cores than threads
/// every message wakes threads that find nothing to do: each of those wake-ups is a context switch (about
/// 20 µs of CPU on the 2-core development VM), which is most of a lone client's write path there.
pub fn worker_share(processes: usize) -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u16::try_from((cores / processes.max(1)).max(1)).unwrap_or(u16::MAX)
}

impl ClusterSpec {
    /// Defaults for `nodes` members under `dir`, with fast failure detection.
    pub fn new(bin: PathBuf, dir: PathBuf, nodes: usize) -> ClusterSpec {
        ClusterSpec {
            bin,
            dir,
            nodes,
            arbiters: 0,
            base_port: None,
            repl_set: "rs0".into(),
            set_parameters: Vec::new(),
            heartbeat_ms: 200,
            election_timeout_ms: 1000,
            delayed_member: None,
            proxies: true,
            node_flags: Vec::new(),
            die_with_harness: true,
            shared_net: None,
            worker_threads: None,
        }
    }

    /// Data members plus arbiters.
    pub fn member_count(&self) -> usize {
        self.nodes + self.arbiters
    }

    /// Whether member links go through fault proxies (which live in the harness's process).
    pub fn uses_proxies(&self) -> bool {
        self.shared_net.is_some() || (self.proxies && self.member_count() > 1)
    }
}

/// A proxy network shared by several replica sets and routers, and where one set's members are in it.
#[derive(Clone)]
pub struct SharedNet {
    pub net: Arc<ProxyNet>,
    /// The proxy network's id of the set's first member (the others follow).
    pub first_id: usize,
    /// The set's member ports, in member order.
    pub ports: Vec<u16>,
}

impl std::fmt::Debug for SharedNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedNet {{ first_id: {}, ports: {:?} }}",
            self.first_id, self.ports
        )
    }
}

/// A running local replica set.
pub struct Cluster {
    pub spec: ClusterSpec,
    pub members: Vec<Member>,
    net: Option<Arc<ProxyNet>>,
    /// The proxy network's id of member 0 (non-zero in a shared network).
    net_offset: usize,
}

impl Cluster {
    /// Starts the proxies and every member and waits until each answers `hello` (not yet initiated).
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        registry::install_panic_hook();
        let count = spec.member_count();
        anyhow::ensure!(count >= 1, "a cluster needs at least one member");
        anyhow::ensure!(spec.nodes >= 1, "a cluster needs at least one data-bearing member");
        let (ports, net, net_offset) = match &spec.shared_net {
            Some(shared) => {
                anyhow::ensure!(
                    shared.ports.len() == count,
                    "the shared network has the wrong number of ports"
                );
                (shared.ports.clone(), Some(shared.net.clone()), shared.first_id)
            }
            None => {
                let ports = member_ports(spec.base_port, count)?;
                let net = if spec.uses_proxies() {
                    Some(Arc::new(
                        ProxyNet::start(&ports)
                            .await
                            .context("cannot start the fault proxies")?,
                    ))
                } else {
                    None
                };
                (ports, net, 0)
            }
        };
        let mut members = Vec::with_capacity(count);
        for (index, port) in ports.iter().enumerate() {
            let launch = LaunchArgs {
                bin: spec.bin.clone(),
                repl_set: spec.repl_set.clone(),
                set_parameters: spec.set_parameters.clone(),
                peer_routes: net
                    .as_ref()
                    .map(|n| n.routes_for(net_offset + index))
                    .unwrap_or_default(),
                die_with_harness: spec.die_with_harness,
                node_flags: spec.node_flags.clone(),
                worker_threads: spec.worker_threads.unwrap_or_else(|| worker_share(count)),
            };
            let dir = spec.dir.join("nodes").join(format!("n{}", index + 1));
            members.push(Member::new(index, *port, dir, index >= spec.nodes, launch));
        }
        let mut cluster = Cluster {
            spec,
            members,
            net,
            net_offset,
        };
        for member in &mut cluster.members {
            member.spawn()?;
        }
        for index in 0..cluster.members.len() {
            cluster.wait_answering(index, START_TIMEOUT).await?;
        }
        Ok(cluster)
    }

    /// The fault proxies, if the set has more than one member.
    pub fn net(&self) -> Option<&ProxyNet> {
        self.net.as_deref()
    }

    /// Installs a partition among this set's members (`grudge` in member indices) on its proxies.
    pub fn set_partition(&self, grudge: &crate::proxy::Grudge, action: crate::proxy::Action) -> bool {
        match &self.net {
            Some(net) => {
                net.set_partition(&grudge.shifted(self.net_offset), action);
                true
            }
            None => false,
        }
    }

    /// The replica-set URI applications use.
    pub fn uri(&self) -> String {
        let hosts: Vec<String> = self.members.iter().map(Member::host).collect();
        format!("mongodb://{}/?replicaSet={}", hosts.join(","), self.spec.repl_set)
    }

    /// The config document `replSetInitiate` gets.
    pub fn initial_config(&self) -> Document {
        let members: Vec<Bson> = self
            .members
            .iter()
            .map(|m| {
                let mut entry = doc! {"_id": m.index as i32, "host": m.host()};
                if m.arbiter {
                    entry.insert("arbiterOnly", true);
                }
                if let Some((_, secs)) = self.spec.delayed_member.filter(|(i, _)| *i == m.index) {
                    entry.insert("priority", 0);
                    entry.insert("secondaryDelaySecs", secs as i64);
                }
                Bson::Document(entry)
            })
            .collect();
        let mut config = doc! {"_id": &self.spec.repl_set, "version": 1, "members": members};
        if self.members.len() > 1 {
            config.insert(
                "settings",
                doc! {
                    "heartbeatIntervalMillis": self.spec.heartbeat_ms as i64,
                    "electionTimeoutMillis": self.spec.election_timeout_ms as i64,
                    // Notice a silent member within about two election timeouts (MongoDB's default is 10 s).
                    "heartbeatTimeoutSecs": (self.spec.election_timeout_ms as i64 * 2 / 1000).max(1),
                },
            );
        }
        config
    }

    /// `replSetInitiate` on the first member with every member in the config.
    pub async fn initiate(&self) -> anyhow::Result<()> {
        let first = self.members.first().context("no members")?;
        let config = self.initial_config();
        wire::command_ok(first.port, doc! {"replSetInitiate": config}, Duration::from_secs(30))
            .await
            .with_context(|| format!("replSetInitiate on {} failed", first.name))?;
        Ok(())
    }

    /// Whether the first member already has a replica-set config (a re-used data directory).
    pub async fn is_initiated(&self) -> bool {
        match self.members.first() {
            Some(first) => wire::command_ok(first.port, doc! {"replSetGetConfig": 1}, PROBE_TIMEOUT * 4)
                .await
                .is_ok(),
            None => false,
        }
    }

    /// The index of the member that says it is the writable primary, if any answers so now.
    pub async fn primary(&self) -> Option<usize> {
        self.writable_primaries().await.into_iter().next()
    }

    /// The first member other than `except` that answers as the writable primary (a deposed primary may still
    /// claim to be one for a moment).
    pub async fn primary_other_than(&self, except: usize) -> Option<usize> {
        self.writable_primaries().await.into_iter().find(|i| *i != except)
    }

    async fn writable_primaries(&self) -> Vec<usize> {
        let probes = self.members.iter().map(|m| wire::hello(m.port, PROBE_TIMEOUT));
        let replies = join_all(probes).await;
        (0..replies.len())
            .filter(|i| {
                replies[*i]
                    .as_ref()
                    .is_ok_and(|h| h.get_bool("isWritablePrimary").unwrap_or(false))
            })
            .collect()
    }

    /// Waits until some member is the writable primary.
    pub async fn wait_primary(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(primary) = self.primary().await {
                return Ok(primary);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no primary after {timeout:?}; {}", self.describe_logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until there is a primary and every running data member is PRIMARY or SECONDARY.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let states = self.member_states().await;
            let primary = states.iter().position(|s| s == "PRIMARY");
            let settled = states.iter().zip(&self.members).all(|(state, member)| {
                member.arbiter || matches!(state.as_str(), "PRIMARY" | "SECONDARY" | "down" | "paused")
            });
            if let (Some(primary), true) = (primary, settled) {
                return Ok(primary);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("cluster not healthy after {timeout:?}: states {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each member's state as `hello` reports it (`PRIMARY`, `SECONDARY`, `ARBITER`, `OTHER`), or `down`,
    /// `paused`, `unreachable`.
    pub async fn member_states(&mut self) -> Vec<String> {
        let mut states = Vec::with_capacity(self.members.len());
        for member in &mut self.members {
            let state = match member.run_state() {
                RunState::Down => "down".to_string(),
                RunState::Paused => "paused".to_string(),
                RunState::Running => match wire::hello(member.port, PROBE_TIMEOUT).await {
                    Ok(hello) => hello_state(&hello).to_string(),
                    Err(_) => "unreachable".to_string(),
                },
            };
            states.push(state);
        }
        states
    }

    /// One status line per member: name, address, pid, state.
    pub async fn status_lines(&mut self) -> Vec<String> {
        let states = self.member_states().await;
        self.members
            .iter()
            .zip(states)
            .map(|(m, state)| {
                let pid = m.pid().map_or("-".to_string(), |p| p.to_string());
                let role = if m.arbiter { " (arbiter)" } else { "" };
                format!("{:<4} {:<16} pid {:<8} {state}{role}", m.name, m.host(), pid)
            })
            .collect()
    }

    /// Waits until member `index` answers `hello` (fails at once if its process exits).
    pub async fn wait_answering(&mut self, index: usize, timeout: Duration) -> anyhow::Result<()> {
        let member = self.members.get_mut(index).context("no such member")?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if wire::hello(member.port, PROBE_TIMEOUT).await.is_ok() {
                return Ok(());
            }
            if member.run_state() == RunState::Down {
                bail!(
                    "{} exited during start-up; its log ends:\n{}",
                    member.name,
                    member.log_tail(20)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not answer hello within {timeout:?}; its log ends:\n{}",
                    member.name,
                    member.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Member by index, or an error.
    pub fn member_mut(&mut self, index: usize) -> anyhow::Result<&mut Member> {
        self.members
            .get_mut(index)
            .with_context(|| format!("no member {index}"))
    }

    /// Starts a member that is down and waits until it answers.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        let member = self.member_mut(index)?;
        member.resume();
        member.spawn()?;
        self.wait_answering(index, START_TIMEOUT).await
    }

    /// Kills a member, deletes its data and starts it empty (it must initial-sync).
    pub async fn wipe_and_restart(&mut self, index: usize) -> anyhow::Result<()> {
        let member = self.member_mut(index)?;
        member.kill();
        member.wipe_data()?;
        self.restart(index).await
    }

    /// Resumes paused members, restarts down ones and heals the network.
    pub async fn heal_all(&mut self) -> anyhow::Result<()> {
        if let Some(net) = &self.net {
            net.heal();
        }
        for index in 0..self.members.len() {
            let member = &mut self.members[index];
            match member.run_state() {
                RunState::Paused => {
                    member.resume();
                }
                RunState::Down => self.restart(index).await?,
                RunState::Running => {}
            }
        }
        Ok(())
    }

    /// Gracefully stops every member (SIGTERM, then SIGKILL after the grace period).
    pub async fn shutdown(&mut self, grace: Duration) {
        let stops = self.members.iter_mut().map(|m| m.stop(grace));
        join_all(stops).await;
    }

    /// Lets every member outlive the harness; returns their pids. The cluster must have been started without
    /// [`ClusterSpec::die_with_harness`], or the members die when the harness exits.
    pub fn detach(&mut self) -> Vec<u32> {
        self.members.iter_mut().filter_map(Member::detach).collect()
    }

    /// SIGKILLs every member at once.
    pub fn kill_all(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }

    fn describe_logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{} log ends:\n{}", m.name, m.log_tail(8)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A member's state name from a `replSetGetStatus` entry: mongod's `stateStr`, except that an unreachable
/// member (state 8, shown as "(not reachable/healthy)") is named DOWN.
pub fn status_state(member: &Document) -> &str {
    match member.get_i32("state") {
        Ok(8) => "DOWN",
        _ => member.get_str("stateStr").unwrap_or("UNKNOWN"),
    }
}

/// PRIMARY, SECONDARY, ARBITER or OTHER from a `hello` reply.
pub fn hello_state(hello: &Document) -> &'static str {
    if hello.get_bool("isWritablePrimary").unwrap_or(false) {
        "PRIMARY"
    } else if hello.get_bool("secondary").unwrap_or(false) {
        "SECONDARY"
    } else if hello.get_bool("arbiterOnly").unwrap_or(false) {
        "ARBITER"
    } else {
        "OTHER"
    }
}

fn member_ports(base: Option<u16>, count: usize) -> anyhow::Result<Vec<u16>> {
    match base {
        Some(base) => (0..count)
            .map(|i| {
                u16::try_from(usize::from(base) + i)
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("--base-port {base} leaves no room for {count} members"))
            })
            .collect(),
        None => {
            // Hold every listener until all are chosen so no port is handed out twice.
            let listeners: Vec<std::net::TcpListener> = (0..count)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<_, _>>()
                .context("cannot find free ports")?;
            listeners
                .iter()
                .map(|l| Ok(l.local_addr()?.port()))
                .collect::<Result<Vec<u16>, std::io::Error>>()
                .context("cannot find free ports")
        }
    }
}
