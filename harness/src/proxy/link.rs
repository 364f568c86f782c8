//! One proxied TCP link: accepts connections for the directed member link `a → b` and forwards them to `b`,
//! applying the rule table to each direction (`a → b` requests, `b → a` replies) on live connections.
//!
//! Per direction a reader task and a writer task share a bounded queue of chunks stamped with their arrival
//! time. While the flow is dropped the reader stops reading (so back-pressure stalls the sender, as a
//! blackholed TCP connection does) and the writer holds what it has; nothing is lost, so the stream resumes
//! intact when the rule goes, as TCP would after retransmission. A delay holds each chunk until its arrival
//! time plus the delay (± jitter, never reordering); a bandwidth limit paces writes. `reject` resets both
//! sides with SO_LINGER 0 (an RST), including connections that are idle when the rule appears.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::rng::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::rules::{Disposition, MemberId, RuleTable, Verdict};

/// Chunks buffered per direction before the reader stops reading.
const QUEUE_CHUNKS: usize = 64;
const CHUNK_BYTES: usize = 64 * 1024;

/// The connection must be reset.
#[derive(Debug)]
struct Reset;

/// The rules as seen by one connection.
type Rules = watch::Receiver<Arc<RuleTable>>;

/// Accepts connections on `listener` for the flow `a → b` and forwards them to `target` until aborted.
pub async fn serve(listener: TcpListener, target: SocketAddr, a: MemberId, b: MemberId, rules: Rules) {
    let mut connection_number = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        connection_number += 1;
        let seed = (a as u64) << 48 | (b as u64) << 32 | connection_number;
        tokio::spawn(serve_connection(client, target, (a, b), rules.clone(), seed));
    }
}

async fn serve_connection(
    client: TcpStream,
    target: SocketAddr,
    (a, b): (MemberId, MemberId),
    rules: Rules,
    seed: u64,
) {
    let rejected = {
        let table = rules.borrow();
        table.verdict(a, b).disposition == Disposition::Reject || table.verdict(b, a).disposition == Disposition::Reject
    };
    if rejected {
        reset(&client);
        return;
    }
    let Ok(upstream) = TcpStream::connect(target).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client, mut upstream) = (client, upstream);
    let outcome = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let forward = direction(&mut client_read, &mut upstream_write, (a, b), rules.clone(), seed);
        let backward = direction(&mut upstream_read, &mut client_write, (b, a), rules.clone(), seed ^ 1);
        tokio::try_join!(forward, backward)
    };
    if outcome.is_err() {
        reset(&client);
        reset(&upstream);
    }
    drop(client);
    drop(upstream);
}

/// Closes with an RST instead of a FIN once the socket is dropped.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn direction<R, W>(
    source: &mut R,
    sink: &mut W,
    flow: (MemberId, MemberId),
    rules: Rules,
    seed: u64,
) -> Result<(), Reset>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    tokio::try_join!(
        read_side(source, tx, flow, rules.clone()),
        write_side(rx, sink, flow, rules, Rng::seed_from_u64(seed))
    )?;
    Ok(())
}

fn current(rules: &Rules, (from, to): (MemberId, MemberId)) -> Verdict {
    rules.borrow().verdict(from, to)
}

/// Waits while the flow is dropped; returns the verdict it may proceed under, or `Reset`.
async fn gate(rules: &mut Rules, flow: (MemberId, MemberId)) -> Result<Verdict, Reset> {
    loop {
        let verdict = current(rules, flow);
        match verdict.disposition {
            Disposition::Pass => return Ok(verdict),
            Disposition::Reject => return Err(Reset),
            Disposition::Drop => {
                // A closed channel means the proxy is shutting down: close the connection.
                rules.changed().await.map_err(|_| Reset)?;
            }
        }
    }
}

async fn read_side<R: AsyncRead + Unpin>(
    source: &mut R,
    queue: mpsc::Sender<(Instant, Vec<u8>)>,
    flow: (MemberId, MemberId),
    mut rules: Rules,
) -> Result<(), Reset> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        gate(&mut rules, flow).await?;
        let read = tokio::select! {
            read = source.read(&mut buf) => read,
            changed = rules.changed() => {
                changed.map_err(|_| Reset)?;
                continue;
            }
        };
        match read {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => {
                if queue.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    mut queue: mpsc::Receiver<(Instant, Vec<u8>)>,
    sink: &mut W,
    flow: (MemberId, MemberId),
    mut rules: Rules,
    mut rng: Rng,
) -> Result<(), Reset> {
    let mut last_due = Instant::now();
    while let Some((arrived, chunk)) = queue.recv().await {
        let verdict = loop {
            let verdict = gate(&mut rules, flow).await?;
            let due = (arrived + jittered(verdict, &mut rng)).max(last_due);
            if hold_until(due, Instant::now()).is_none() {
                last_due = due;
                break verdict;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {
                    last_due = due;
                    break verdict;
                }
                changed = rules.changed() => {
                    changed.map_err(|_| Reset)?;
                    continue;
                }
            }
        };
        if sink.write_all(&chunk).await.is_err() {
            return Ok(());
        }
        if let Some(rate) = verdict.bytes_per_sec {
            tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64)).await;
        }
    }
    let _ = sink.shutdown().await;
    Ok(())
}

/// When a chunk due at `due` must be held until, or `None` when it may be written now. A chunk already due
/// is never put on a timer: tokio's timers round a deadline up to the next millisecond tick, so a zero-delay
/// hop through a timer would cost up to a millisecond (and most of the replicated write path's latency).
fn hold_until(due: Instant, now: Instant) -> Option<Instant> {
    (due > now).then_some(due)
}

/// The delay plus a uniform jitter in `[-jitter, +jitter]`, never below zero.
fn jittered(verdict: Verdict, rng: &mut Rng) -> Duration {
    if verdict.jitter.is_zero() {
        return verdict.delay;
    }
    let offset = verdict.jitter.mul_f64(rng.unit() * 2.0);
    (verdict.delay + offset).saturating_sub(verdict.jitter)
}

#[cfg(test)]
mod timing_tests {
    use super::*;

    /// A chunk that is already due (no delay rule) is written at once, never through a timer (which would
    /// add up to a millisecond per hop); a delayed one is held until it is due.
    #[test]
    fn only_chunks_not_yet_due_are_held() {
        let now = Instant::now();
        assert_eq!(hold_until(now, now), None, "due now");
        assert_eq!(hold_until(now - Duration::from_millis(3), now), None, "overdue");
        let later = now + Duration::from_millis(5);
        assert_eq!(hold_until(later, now), Some(later), "a delayed chunk waits");
    }
}
