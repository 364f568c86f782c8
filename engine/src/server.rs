//! The network front: listen on every distinct bind address, one task per connection, clean shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connection;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::options::NodeOptions;

/// Why [`run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown future completed (SIGTERM, Ctrl-C).
    Shutdown,
    /// The member met a condition it must not continue past (e.g. a rollback of majority-committed
    /// writes); the process should exit abruptly (mongod exits 14 after a fatal assertion).
    Fatal(String),
}

/// Runs a member until `shutdown` completes or a fatal condition, then stops accepting, lets storage make
/// everything durable and returns why it stopped.
pub async fn run(options: NodeOptions, shutdown: impl Future<Output = ()>) -> Result<Stopped> {
    let listeners = bind(&options).await?;
    let node = Node::open(options).await?;
    if node.options().cluster_role == crate::options::ClusterRole::ShardServer {
        crate::migration::spawn_background(&node);
    }
    if node.options().cluster_role == crate::options::ClusterRole::ConfigServer {
        crate::balancer::spawn(&node);
    }
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "waiting for connections");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        accept_tasks.push(tokio::spawn(accept_loop(listener, node.clone(), stop_rx.clone())));
    }
    let stopped = tokio::select! {
        _ = shutdown => Stopped::Shutdown,
        message = node.member.fatal_condition() => Stopped::Fatal(message),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
    node.storage.shutdown();
    tracing::info!("shutdown complete");
    Ok(stopped)
}

/// Listens on each distinct bind address once (`localhost,127.0.0.1` names one address twice).
async fn bind(options: &NodeOptions) -> Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in options.bind_addrs()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new((18, "SocketException"), format!("cannot listen on {addr}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn accept_loop(listener: TcpListener, node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut stopping) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = node.counters.connections_total.fetch_add(1, Ordering::Relaxed) + 1;
                    let node = node.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        node.counters.connections_current.fetch_add(1, Ordering::Relaxed);
                        node.activity.connected(id, peer);
                        connection::serve(stream, peer, id, node.clone(), stop).await;
                        node.activity.disconnected(id);
                        node.counters.connections_current.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}
