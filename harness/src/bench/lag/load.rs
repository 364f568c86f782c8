//! The paced write load: write `i` (an insert of `{_id: i}`) is due at `i / rate` seconds after the start and
//! is issued then whether or not earlier writes have completed (open loop), up to [`MAX_IN_FLIGHT`] at once.
//! Times are ns since the run's start (the recorder's clock), stored + 1 so that 0 means "not yet". The
//! inserts go through the official driver or over raw connections to the primary ([`Sink`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use mongodb::Collection;
use tokio::sync::{Semaphore, watch};

use crate::bench::client::WirePool;

/// Writes allowed in flight at once; past it the load waits (and falls behind its schedule).
pub const MAX_IN_FLIGHT: usize = 4096;
/// The longest one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Marks a completion slot as a failure.
const FAILED: u64 = 1 << 63;

/// When each write was issued and completed.
pub struct WriteLog {
    pub started: Instant,
    issued: Vec<AtomicU64>,
    completed: Vec<AtomicU64>,
    /// Writes issued so far.
    pub issued_count: AtomicU64,
    /// Writes acknowledged so far.
    pub acked_count: AtomicU64,
    /// Writes that failed or timed out so far.
    pub failed_count: AtomicU64,
}

/// How one write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Acknowledged at this time (ns since the start).
    Acked(u64),
    /// Failed (error or timeout) at this time.
    Failed(u64),
}

impl WriteLog {
    /// Room for `capacity` writes; times count from `started`.
    pub fn new(started: Instant, capacity: usize) -> WriteLog {
        let slots = || (0..capacity).map(|_| AtomicU64::new(0)).collect();
        WriteLog {
            started,
            issued: slots(),
            completed: slots(),
            issued_count: AtomicU64::new(0),
            acked_count: AtomicU64::new(0),
            failed_count: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.issued.len()
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64 + 1
    }

    fn mark_issued(&self, id: usize) {
        if let Some(slot) = self.issued.get(id) {
            slot.store(self.now(), Ordering::Relaxed);
            self.issued_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn mark_completed(&self, id: usize, ok: bool) {
        if let Some(slot) = self.completed.get(id) {
            let flag = if ok { 0 } else { FAILED };
            slot.store(self.now() | flag, Ordering::Relaxed);
            let counter = if ok { &self.acked_count } else { &self.failed_count };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When write `id` was issued (ns since the start), if it was.
    pub fn issued(&self, id: usize) -> Option<u64> {
        self.issued.get(id)?.load(Ordering::Relaxed).checked_sub(1)
    }

    /// How write `id` ended, if it has.
    pub fn completion(&self, id: usize) -> Option<Completion> {
        let raw = self.completed.get(id)?.load(Ordering::Relaxed);
        let time = (raw & !FAILED).checked_sub(1)?;
        Some(if raw & FAILED == 0 {
            Completion::Acked(time)
        } else {
            Completion::Failed(time)
        })
    }
}

/// Where the load's inserts go.
#[derive(Clone)]
pub enum Sink {
    /// Through the official driver, on the set's URI (it follows the primary).
    Driver(Collection<Document>),
    /// Over raw connections to the member that was primary when the load started.
    Wire(Arc<WirePool>),
}

impl Sink {
    /// Inserts `document` into the benchmark's collection; whether it was acknowledged within the write
    /// timeout.
    pub async fn insert(&self, document: Document) -> bool {
        match self {
            Sink::Driver(collection) => matches!(
                tokio::time::timeout(WRITE_TIMEOUT, collection.insert_one(document)).await,
                Ok(Ok(_))
            ),
            Sink::Wire(pool) => {
                pool.insert(super::DATABASE, super::COLLECTION, document, WRITE_TIMEOUT)
                    .await
            }
        }
    }
}

/// Issues `log.capacity()` writes at `rate` per second into `sink` until done or `stop`; then waits (up to
/// the write timeout) for the writes in flight. Returns how many were issued.
pub async fn run(sink: Sink, rate: f64, log: Arc<WriteLog>, mut stop: watch::Receiver<bool>) -> usize {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let origin = tokio::time::Instant::now();
    let mut issued = 0;
    for id in 0..log.capacity() {
        let due = origin + Duration::from_secs_f64(id as f64 / rate);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (sink, log) = (sink.clone(), log.clone());
        log.mark_issued(id);
        tokio::spawn(async move {
            let ok = sink.insert(doc! {"_id": id as i64}).await;
            log.mark_completed(id, ok);
            drop(permit);
        });
        issued += 1;
    }
    let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(WRITE_TIMEOUT * 2, permits.acquire_many(all)).await;
    issued
}

#[cfg(test)]
impl WriteLog {
    /// Sets write `id`'s times directly (tests of the analysis).
    pub fn test_set(&self, id: usize, issued: u64, completion: Option<Completion>) {
        self.issued[id].store(issued + 1, Ordering::Relaxed);
        let raw = match completion {
            Some(Completion::Acked(t)) => t + 1,
            Some(Completion::Failed(t)) => (t + 1) | FAILED,
            None => 0,
        };
        self.completed[id].store(raw, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_keep_their_outcome_and_time_order() {
        let log = WriteLog::new(Instant::now(), 2);
        assert_eq!(log.issued(0), None);
        log.mark_issued(0);
        log.mark_completed(0, true);
        log.mark_issued(1);
        log.mark_completed(1, false);
        let issued = log.issued(0).expect("issued");
        match log.completion(0) {
            Some(Completion::Acked(t)) => assert!(t >= issued),
            other => panic!("expected an ack, got {other:?}"),
        }
        assert!(matches!(log.completion(1), Some(Completion::Failed(_))));
        assert_eq!(log.completion(5), None);
        log.mark_issued(9); // out of range: ignored
        assert_eq!(log.issued_count.load(Ordering::Relaxed), 2);
        assert_eq!(log.failed_count.load(Ordering::Relaxed), 1);
    }
}
