//! A minimal TCP proxy for one directed member link, with an on/off switch: cut closes live connections
//! and refuses new ones, which is what a partition looks like to the members. A cut takes effect at once:
//! every chunk is checked against the switch before it is forwarded, so nothing read after the cut gets
//! through, however late the connection's task runs. [`start_routed`] starts members whose every peer link
//! goes through such a proxy (`--peer-route`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The switch: an even generation passes, an odd one is cut. A connection lives only in the generation it
/// was accepted in, so a cut connection stays dead after a heal.
struct Switch {
    generation: AtomicU64,
    changed: watch::Sender<u64>,
}

impl Switch {
    fn current(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn passes(&self, born: u64) -> bool {
        born.is_multiple_of(2) && self.current() == born
    }

    fn flip_to(&self, cut: bool) {
        let now = self.current();
        if (now % 2 == 1) != cut {
            let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            self.changed.send_replace(next);
        }
    }
}

pub struct LinkProxy {
    pub port: u16,
    switch: Arc<Switch>,
}

impl LinkProxy {
    pub async fn start(target_port: u16) -> anyhow::Result<LinkProxy> {
        let port = crate::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let (changed, _) = watch::channel(0u64);
        let switch = Arc::new(Switch {
            generation: AtomicU64::new(0),
            changed,
        });
        let accepting = switch.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cancelled = accepting.changed.subscribe();
                let born = accepting.current();
                if !accepting.passes(born) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let switch = accepting.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = pump(client_read, server_write, &switch, born) => {}
                        _ = pump(server_read, client_write, &switch, born) => {}
                        _ = cancelled.wait_for(|generation| *generation != born) => {}
                    }
                });
            }
        });
        Ok(LinkProxy { port, switch })
    }

    /// Partition: drop every live connection and refuse new ones.
    pub fn cut(&self) {
        self.switch.flip_to(true);
    }

    pub fn heal(&self) {
        self.switch.flip_to(false);
    }
}

/// Forwards one direction chunk by chunk while the connection's generation is current.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, switch: &Switch, born: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !switch.passes(born) || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Members whose links to each other all pass through [`LinkProxy`]s, keyed by (from, to).
pub struct RoutedMembers {
    pub nodes: Vec<crate::NodeProcess>,
    pub proxies: HashMap<(usize, usize), LinkProxy>,
}

impl RoutedMembers {
    /// Cuts every link to and from member `i`, in both directions.
    pub fn isolate(&self, i: usize) {
        for ((from, to), proxy) in &self.proxies {
            if *from == i || *to == i {
                proxy.cut();
            }
        }
    }

    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }
}

/// Starts `n` uninitialised members (each with `extra_args`) on known ports, with a proxy on every
/// directed member link and `--peer-route` flags pointing each member at its proxies.
pub async fn start_routed(bin: &Path, n: usize, extra_args: &[&str]) -> anyhow::Result<RoutedMembers> {
    let ports: Vec<u16> = (0..n).map(|_| crate::free_port()).collect();
    let mut proxies = HashMap::new();
    for from in 0..n {
        for (to, port) in ports.iter().enumerate() {
            if from != to {
                proxies.insert((from, to), LinkProxy::start(*port).await?);
            }
        }
    }
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        args.extend(["--port".to_string(), port.to_string()]);
        for (j, target) in ports.iter().enumerate() {
            if i != j {
                args.push("--peer-route".into());
                args.push(format!("127.0.0.1:{target}=127.0.0.1:{}", proxies[&(i, j)].port));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(crate::NodeProcess::start_with_port(bin, *port, &args).await?);
    }
    Ok(RoutedMembers { nodes, proxies })
}
