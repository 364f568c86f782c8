//! The simulation's network: member `i`'s [`PeerNetwork`] hands each command to member `j`'s command
//! layer in-process, through a [`Fabric`] that knows which links are cut and how lossy and slow they are.
//!
//! A message on a cut link, or one the seeded loss drops, is never answered: the sender waits out its
//! timeout, as over TCP. A reply is lost too when the link is cut, or the member dies, while the command
//! runs. A dead member ([`Fabric::detach`]) is unreachable until a new process is attached under its host.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bson::Document;
use tracing::Instrument;

use crate::command::ConnectionInfo;
use crate::error::{Error, Result};
use crate::member::network::{NetFuture, PeerChannel, PeerNetwork};
use crate::node::Node;
use crate::repl::rng::SplitMix64;

/// Faults in force right now.
#[derive(Debug, Default, Clone)]
struct Faults {
    /// Cut links, each as an ordered (lower, higher) host pair.
    cut: BTreeSet<(String, String)>,
    /// Percent of messages lost.
    loss_percent: i64,
    /// Upper bound of each message's delay.
    max_delay_ms: i64,
}

/// More messages than this between members within [`STORM_WINDOW`] of simulated time is a storm: a loop of
/// messages that sets itself off (no simulated time passes while it runs, so without this the run never ends
/// and eats memory), and far more than a healthy set of 7 sends.
const STORM_MESSAGES: u64 = 20_000;
const STORM_WINDOW: Duration = Duration::from_millis(100);

/// Messages sent within the current window of simulated time.
struct MessageCount {
    window_start: tokio::time::Instant,
    sent: u64,
}

/// The members and the faults between them.
pub struct Fabric {
    nodes: Mutex<HashMap<String, Weak<Node>>>,
    /// Every host ever attached, dead or alive: the faults are drawn over these.
    known: Mutex<BTreeSet<String>>,
    faults: Mutex<Faults>,
    rng: Mutex<SplitMix64>,
    count: Mutex<MessageCount>,
    /// The first storm seen, described; from then on every message is dropped, so the run can end.
    storm: Mutex<Option<String>>,
}

impl Fabric {
    pub fn new(seed: u64) -> Arc<Fabric> {
        Arc::new(Fabric {
            nodes: Mutex::new(HashMap::new()),
            known: Mutex::new(BTreeSet::new()),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(SplitMix64::new(seed)),
            count: Mutex::new(MessageCount {
                window_start: tokio::time::Instant::now(),
                sent: 0,
            }),
            storm: Mutex::new(None),
        })
    }

    /// Makes `node` reachable as `host`.
    pub fn attach(&self, host: String, node: &Arc<Node>) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(host.clone());
        }
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(host, Arc::downgrade(node));
        }
    }

    /// Makes `host` unreachable (its process died).
    pub fn detach(&self, host: &str) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.remove(host);
        }
    }

    /// Whether `node` is still the process attached under `host`.
    fn is_attached(&self, host: &str, node: &Arc<Node>) -> bool {
        self.node(host).is_some_and(|attached| Arc::ptr_eq(&attached, node))
    }

    fn hosts(&self) -> Vec<String> {
        self.known
            .lock()
            .map(|known| known.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Draws the next fault from `rng`: often nothing, else heal, cut one member off, cut one link, or change
    /// loss and delay.
    pub fn apply_random_fault(&self, rng: &mut SplitMix64, members: usize) {
        let hosts = self.hosts();
        if hosts.len() < 2 || members < 2 {
            return;
        }
        let Ok(mut faults) = self.faults.lock() else { return };
        match rng.below(10) {
            0 => *faults = Faults::default(),
            1 => {
                let isolated = &hosts[rng.below(hosts.len() as i64) as usize];
                faults.cut.clear();
                for other in hosts.iter().filter(|h| *h != isolated) {
                    faults.cut.insert(link(isolated, other));
                }
            }
            2 => {
                let a = rng.below(hosts.len() as i64) as usize;
                let b = (a + 1 + rng.below(hosts.len() as i64 - 1) as usize) % hosts.len();
                faults.cut.insert(link(&hosts[a], &hosts[b]));
            }
            3 => {
                faults.loss_percent = [0, 5, 20][rng.below(3) as usize];
                faults.max_delay_ms = [0, 20, 150][rng.below(3) as usize];
            }
            _ => {}
        }
    }

    /// Cuts the link between `a` and `b` (both ways), as a scripted scenario does.
    pub fn cut(&self, a: &str, b: &str) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.cut.insert(link(a, b));
        }
    }

    /// Mends the link between `a` and `b`.
    pub fn mend(&self, a: &str, b: &str) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.cut.remove(&link(a, b));
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        if let Ok(mut faults) = self.faults.lock() {
            *faults = Faults::default();
        }
    }

    /// A message storm seen so far (a safety check of the simulation: see [`STORM_MESSAGES`]).
    pub fn storm(&self) -> Option<String> {
        self.storm.lock().ok()?.clone()
    }

    /// Counts one message from `from` to `to`; false once a storm was seen.
    fn count_message(&self, from: &str, to: &str) -> bool {
        let Ok(mut storm) = self.storm.lock() else { return false };
        if storm.is_some() {
            return false;
        }
        let Ok(mut count) = self.count.lock() else { return false };
        let now = tokio::time::Instant::now();
        if now.duration_since(count.window_start) >= STORM_WINDOW {
            *count = MessageCount {
                window_start: now,
                sent: 0,
            };
        }
        count.sent += 1;
        if count.sent > STORM_MESSAGES {
            *storm = Some(format!(
                "message storm: over {STORM_MESSAGES} messages between members within {STORM_WINDOW:?} of simulated \
                 time (the last from {from} to {to})"
            ));
            return false;
        }
        true
    }

    /// Whether a message from `from` to `to` gets through, and after how long.
    fn route(&self, from: &str, to: &str) -> Option<Duration> {
        let faults = self.faults.lock().ok()?.clone();
        if faults.cut.contains(&link(from, to)) {
            return None;
        }
        let mut rng = self.rng.lock().ok()?;
        if rng.below(100) < faults.loss_percent {
            return None;
        }
        Some(Duration::from_millis(rng.below(faults.max_delay_ms + 1) as u64))
    }

    fn is_cut(&self, from: &str, to: &str) -> bool {
        self.faults.lock().is_ok_and(|f| f.cut.contains(&link(from, to)))
    }

    fn node(&self, host: &str) -> Option<Arc<Node>> {
        self.nodes.lock().ok()?.get(host)?.upgrade()
    }

    /// Delivers `body` from `from` to `to` and returns the reply, or fails as a lost message does.
    async fn deliver(
        &self,
        from: &str,
        to: &str,
        conn: &ConnectionInfo,
        body: &Document,
        timeout: Duration,
    ) -> Result<Document> {
        let Some(delay) = self.route(from, to).filter(|_| self.count_message(from, to)) else {
            tokio::time::sleep(timeout).await;
            return Err(unreachable(format!(
                "{from} -> {to}: no reply (link cut or message lost)"
            )));
        };
        tokio::time::sleep(delay).await;
        let node = self
            .node(to)
            .ok_or_else(|| unreachable(format!("{to} is not a member of the simulation")))?;
        let run = crate::command::run(
            &node,
            crate::command::Invocation {
                body: body.clone(),
                secondary_ok: None,
                conn,
                legacy: false,
            },
        );
        let reply = tokio::time::timeout(timeout, run.instrument(super::member_span(to)))
            .await
            .map_err(|_| unreachable("command timed out"))?
            .into_document();
        if self.is_cut(from, to) {
            return Err(unreachable(format!("{from} -> {to}: the reply was lost (link cut)")));
        }
        if !self.is_attached(to, &node) {
            return Err(unreachable(format!(
                "{from} -> {to}: the member died before it replied"
            )));
        }
        if reply.get_f64("ok").ok() == Some(0.0) || reply.get_i32("ok").ok() == Some(0) {
            let code = reply.get_i32("code").unwrap_or(8);
            let message = reply.get_str("errmsg").unwrap_or("command failed").to_string();
            return Err(Error::new((code, "RemoteCommandFailed"), message).with_extra(reply));
        }
        Ok(reply)
    }
}

fn link(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn unreachable(message: impl Into<String>) -> Error {
    Error::new((6, "HostUnreachable"), message)
}

fn connection_info() -> ConnectionInfo {
    ConnectionInfo::new(0, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// One member's network in the simulation.
pub struct SimNetwork {
    me: String,
    fabric: Arc<Fabric>,
}

impl SimNetwork {
    pub fn new(me: String, fabric: Arc<Fabric>) -> SimNetwork {
        SimNetwork { me, fabric }
    }
}

impl PeerNetwork for SimNetwork {
    fn command<'a>(
        &'a self,
        host: &'a str,
        _purpose: &'static str,
        body: &'a Document,
        timeout: Duration,
    ) -> NetFuture<'a, Document> {
        Box::pin(async move {
            let conn = connection_info();
            self.fabric.deliver(&self.me, host, &conn, body, timeout).await
        })
    }

    fn open<'a>(&'a self, host: &'a str, timeout: Duration) -> NetFuture<'a, Box<dyn PeerChannel>> {
        Box::pin(async move {
            if self.fabric.route(&self.me, host).is_none() {
                tokio::time::sleep(timeout).await;
                return Err(unreachable(format!("cannot connect to {host}")));
            }
            Ok(Box::new(SimChannel {
                from: self.me.clone(),
                to: host.to_string(),
                fabric: self.fabric.clone(),
                conn: connection_info(),
            }) as Box<dyn PeerChannel>)
        })
    }
}

/// A dedicated channel (the fetcher's cursor lives on the other member, named by its id).
struct SimChannel {
    from: String,
    to: String,
    fabric: Arc<Fabric>,
    conn: ConnectionInfo,
}

impl PeerChannel for SimChannel {
    fn command<'a>(&'a mut self, body: &'a Document, timeout: Duration) -> NetFuture<'a, Document> {
        Box::pin(async move {
            self.fabric
                .deliver(&self.from, &self.to, &self.conn, body, timeout)
                .await
        })
    }
}
