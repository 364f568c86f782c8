//! A minimal TCP proxy for one directed member link, with an on/off switch: cut closes live connections
//! and refuses new ones, which is what a partition looks like to the members.

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
