//! A minimal TCP proxy for one directed member link, with an on/off switch: cut closes live connections
//! and refuses new ones, which is what a partition looks like to the members. [`start_routed`] starts
//! members whose every peer link goes through such a proxy (`--peer-route`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct LinkProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl LinkProxy {
    pub async fn start(target_port: u16) -> anyhow::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (flag, gen_tx) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let mut cancelled = gen_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cancelled.changed() => {}
                    }
                });
            }
        });
        Ok(LinkProxy { port, cut, generation })
    }

    /// Partition: drop every live connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
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
