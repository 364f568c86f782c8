//! Proxy behaviour on loopback: pass, a dropped direction stalls and resumes intact, reject resets, delays
//! apply, one-way grudges, and rule changes reach live connections.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Long enough for a loopback round trip many times over; a stalled flow must stay silent this long.
const QUIET: Duration = Duration::from_millis(300);
const LOUD: Duration = Duration::from_secs(5);

/// An echo server standing in for member 1; returns its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A two-member net where member 1 is an echo server; returns the net and a connection 0 → 1.
async fn link_0_to_1() -> (ProxyNet, TcpStream) {
    let echo = echo_server().await;
    let net = ProxyNet::start(&[free_port(), echo]).await.expect("proxies");
    let link = net
        .links()
        .iter()
        .find(|l| l.from == 0 && l.to == 1)
        .copied()
        .expect("link 0->1");
    let stream = TcpStream::connect(("127.0.0.1", link.proxy_port))
        .await
        .expect("connect");
    (net, stream)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn round_trip(stream: &mut TcpStream, payload: &[u8], within: Duration) -> std::io::Result<Vec<u8>> {
    stream.write_all(payload).await?;
    let mut got = vec![0u8; payload.len()];
    match tokio::time::timeout(within, stream.read_exact(&mut got)).await {
        Ok(read) => read.map(|_| got),
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo")),
    }
}

#[tokio::test]
async fn pass_forwards_both_ways_and_routes_name_the_proxy() {
    let (net, mut stream) = link_0_to_1().await;
    assert_eq!(round_trip(&mut stream, b"hello", LOUD).await.expect("echo"), b"hello");
    let routes = net.routes_for(0);
    assert_eq!(routes.len(), 1);
    assert!(
        routes[0].starts_with("127.0.0.1:") && routes[0].contains("=127.0.0.1:"),
        "{routes:?}"
    );
}

#[tokio::test]
async fn a_dropped_direction_stalls_then_resumes_intact() {
    let (net, mut stream) = link_0_to_1().await;
    assert_eq!(round_trip(&mut stream, b"before", LOUD).await.expect("echo"), b"before");
    let mut grudge = Grudge::new();
    grudge.cannot_hear(1, 0);
    net.set_partition(&grudge, Action::Drop);
    stream
        .write_all(b"during")
        .await
        .expect("write is accepted: the connection stays open");
    let mut got = [0u8; 6];
    let stalled = tokio::time::timeout(QUIET, stream.read_exact(&mut got)).await;
    assert!(stalled.is_err(), "a dropped flow must stall, got {stalled:?}");
    net.heal();
    tokio::time::timeout(LOUD, stream.read_exact(&mut got))
        .await
        .expect("flows again after healing")
        .expect("read");
    assert_eq!(&got, b"during", "held bytes are delivered, not lost");
}

#[tokio::test]
async fn a_one_way_grudge_stalls_only_the_replies() {
    let (net, mut stream) = link_0_to_1().await;
    let mut grudge = Grudge::new();
    grudge.cannot_hear(0, 1); // 0 no longer hears 1: requests reach the echo server, replies stall.
    net.set_partition(&grudge, Action::Drop);
    let result = round_trip(&mut stream, b"ping", QUIET).await;
    assert!(result.is_err(), "the reply direction is cut: {result:?}");
    net.heal();
    let mut got = [0u8; 4];
    tokio::time::timeout(LOUD, stream.read_exact(&mut got))
        .await
        .expect("reply arrives")
        .expect("read");
    assert_eq!(&got, b"ping");
}

#[tokio::test]
async fn reject_resets_live_connections_and_new_ones() {
    let (net, mut stream) = link_0_to_1().await;
    assert!(round_trip(&mut stream, b"x", LOUD).await.is_ok());
    net.set_partition(
        &{
            let mut g = Grudge::new();
            g.cannot_hear(1, 0);
            g
        },
        Action::Reject,
    );
    // The idle connection is reset as soon as the rule appears.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(LOUD, stream.read(&mut buf))
        .await
        .expect("the reset arrives");
    let err = read.expect_err("a reset, not data or a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // A new connection is reset too.
    let link = net.links().iter().find(|l| l.from == 0).copied().expect("link");
    let mut fresh = TcpStream::connect(("127.0.0.1", link.proxy_port))
        .await
        .expect("connect");
    let outcome = round_trip(&mut fresh, b"y", LOUD).await;
    assert!(
        outcome.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof
        )),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn delays_apply_to_live_connections() {
    let (net, mut stream) = link_0_to_1().await;
    assert!(round_trip(&mut stream, b"warm", LOUD).await.is_ok());
    net.set_shaping(vec![Rule::flow(
        0,
        1,
        Action::Delay {
            delay_ms: 150,
            jitter_ms: 20,
        },
    )]);
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"slow", LOUD).await.expect("echo"), b"slow");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(130), "delay not applied: {took:?}");
    net.heal();
    let started = Instant::now();
    assert!(round_trip(&mut stream, b"fast", LOUD).await.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(130),
        "delay not removed: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let (net, mut stream) = link_0_to_1().await;
    net.set_shaping(vec![Rule::flow(1, 0, Action::Bandwidth { bytes_per_sec: 4000 })]);
    let payload = vec![7u8; 1000];
    let started = Instant::now();
    for _ in 0..3 {
        round_trip(&mut stream, &payload, LOUD).await.expect("echo");
    }
    // 3000 bytes at 4000 B/s take at least ~0.5 s (the last chunk's pacing happens after its write).
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}
