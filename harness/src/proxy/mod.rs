//! Fault proxies (ARCHITECTURE §5): every member-to-member link goes through a TCP proxy owned by the harness.
//!
//! For each ordered pair of members (a, b), a proxy listens on an ephemeral loopback port and forwards to b;
//! member a is started with `--peer-route <b's host>=<proxy address>`, so everything a sends to b, and b's
//! replies, cross it. All proxies share one ordered [`RuleTable`]; changing it takes effect on live
//! connections. Partitions are [`Grudge`]s turned into drop (or reject) rules; shaping rules (delay,
//! bandwidth) are kept separately and apply after the partition rules.
//!
//! - [`rules`]: rules, verdicts and grudges (pure).
//! - [`link`]: one proxied link and its per-direction pumps.

pub mod link;
pub mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use rules::{Action, Grudge, MemberId, Rule, RuleTable};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One directed link's proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub from: MemberId,
    pub to: MemberId,
    /// Where `from` dials `to`.
    pub proxy_port: u16,
    /// `to`'s real port.
    pub target_port: u16,
}

#[derive(Default)]
struct Layers {
    partition: Vec<Rule>,
    shaping: Vec<Rule>,
}

/// The proxies of one cluster and their shared rules.
pub struct ProxyNet {
    links: Vec<LinkInfo>,
    rules: watch::Sender<Arc<RuleTable>>,
    layers: Mutex<Layers>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProxyNet {
    /// Starts a proxy for every ordered pair of the members listening on `ports` (member i on `ports[i]`).
    pub async fn start(ports: &[u16]) -> std::io::Result<ProxyNet> {
        let (rules, _) = watch::channel(Arc::new(RuleTable::default()));
        let mut net = ProxyNet {
            links: Vec::new(),
            rules,
            layers: Mutex::new(Layers::default()),
            tasks: Vec::new(),
        };
        for (from, _) in ports.iter().enumerate() {
            for (to, target_port) in ports.iter().enumerate() {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let proxy_port = listener.local_addr()?.port();
                let target = SocketAddr::from(([127, 0, 0, 1], *target_port));
                let task = tokio::spawn(link::serve(listener, target, from, to, net.rules.subscribe()));
                net.tasks.push(task);
                net.links.push(LinkInfo {
                    from,
                    to,
                    proxy_port,
                    target_port: *target_port,
                });
            }
        }
        Ok(net)
    }

    /// The proxied links.
    #[cfg(test)]
    pub fn links(&self) -> &[LinkInfo] {
        &self.links
    }

    /// Whether a proxy listens on one of `ports` (a port chosen for a process that has not started yet).
    pub fn listens_on_any(&self, ports: &[u16]) -> bool {
        self.links.iter().any(|l| ports.contains(&l.proxy_port))
    }

    /// `--peer-route` values for member `from`: `127.0.0.1:<peer port>=127.0.0.1:<proxy port>`.
    pub fn routes_for(&self, from: MemberId) -> Vec<String> {
        self.links
            .iter()
            .filter(|l| l.from == from)
            .map(|l| format!("127.0.0.1:{}=127.0.0.1:{}", l.target_port, l.proxy_port))
            .collect()
    }

    /// Installs `grudge` as the partition (enforced with `action`: drop or reject), keeping shaping rules.
    pub fn set_partition(&self, grudge: &Grudge, action: Action) {
        self.update(|layers| layers.partition = grudge.rules(action));
    }

    /// Replaces the shaping rules (delay, bandwidth), keeping the partition.
    pub fn set_shaping(&self, rules: Vec<Rule>) {
        self.update(|layers| layers.shaping = rules);
    }

    /// Removes every rule: all links pass.
    pub fn heal(&self) {
        self.update(|layers| *layers = Layers::default());
    }

    fn update(&self, change: impl FnOnce(&mut Layers)) {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut layers);
        let table = RuleTable {
            rules: layers.partition.iter().chain(&layers.shaping).copied().collect(),
        };
        self.rules.send_replace(Arc::new(table));
    }
}

impl Drop for ProxyNet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
