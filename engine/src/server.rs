//! The network front: listen on every bind address, one task per connection, clean shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connection;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::options::NodeOptions;

/// The stack each runtime worker thread of a member should have. Commands run on these threads, and what
/// they do is bounded by the nesting limits in [`depth`](crate::depth): at those bounds the deepest work fits
/// in 1 MiB unoptimised (`depth::tests::bounded_work_fits_a_small_stack`); tokio's default is 2 MiB, this
/// gives eight times the need.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Runs a member until `shutdown` completes, then stops accepting, lets storage make everything durable and
/// returns.
pub async fn run(options: NodeOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let listeners = bind(&options).await?;
    let node = Node::open(options).await?;
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
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
    node.storage.shutdown();
    tracing::info!("shutdown complete");
    Ok(())
}

async fn bind(options: &NodeOptions) -> Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for ip in &options.bind_ip {
        let host = if ip == "localhost" { "127.0.0.1" } else { ip.as_str() };
        let addr: SocketAddr = format!("{host}:{}", options.port)
            .parse()
            .or_else(|_| format!("[{host}]:{}", options.port).parse())
            .map_err(|_| Error::bad_value(format!("bind_ip: '{ip}' is not an IP address")))?;
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
            _ = stopped(&mut stopping) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = node.counters.connections_total.fetch_add(1, Ordering::Relaxed) + 1;
                    let node = node.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        node.counters.connections_current.fetch_add(1, Ordering::Relaxed);
                        connection::serve(stream, peer, id, node.clone(), stop).await;
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

/// Completes once the stop flag is set (the guard `wait_for` returns is dropped here, not held).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
