//! The writer thread: group commit.
//!
//! Jobs arrive on a channel; the thread takes every job waiting (up to [`MAX_GROUP`]), runs them one after
//! another inside one write transaction, commits once and then answers them all. A group is committed
//! durably (fsync) when any job in it asked for `j: true`, or when the last durable commit is older than
//! the journal interval; otherwise it is committed in memory and made durable by a later commit, at most
//! [`JOURNAL_COMMIT_INTERVAL`](super::JOURNAL_COMMIT_INTERVAL) later.

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, Durability};
use tokio::sync::{oneshot, watch};

use super::capped::OplogAccount;
use super::oplog::{OpTime, TimestampAllocator};
use super::write_ctx::WriteCtx;
use super::{JOURNAL_COMMIT_INTERVAL, Positions, storage_error};
use crate::error::{Error, Result, code};

/// At most this many jobs share one transaction.
const MAX_GROUP: usize = 512;

type JobFn = Box<dyn for<'a> FnOnce(&mut WriteCtx<'a>) -> Box<dyn Any + Send> + Send>;

struct Job {
    run: JobFn,
    durable: bool,
    reply: oneshot::Sender<Result<Box<dyn Any + Send>>>,
}

pub(super) struct Writer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(super) fn start(
        db: Arc<Database>,
        positions: watch::Sender<Positions>,
        term: Arc<AtomicI64>,
        last: OpTime,
        oplog: Arc<OplogAccount>,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut state = WriterState {
            db,
            positions,
            term,
            clock: TimestampAllocator::new(last.ts),
            last,
            dirty: false,
            oplog,
        };
        let thread = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| storage_error("spawn writer", e))?;
        Ok(Writer {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(super) async fn submit<R, F>(&self, durable: bool, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: JobFn = Box::new(move |ctx| Box::new(job(ctx)) as Box<dyn Any + Send>);
        let sent = match self.jobs.lock() {
            Ok(guard) => guard
                .as_ref()
                .map(|tx| tx.send(Job { run, durable, reply }).is_ok())
                .unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            return Err(Error::new(
                code::SHUTDOWN_IN_PROGRESS,
                "the storage engine is shutting down",
            ));
        }
        let output = answer
            .await
            .map_err(|_| Error::new(code::SHUTDOWN_IN_PROGRESS, "the storage writer stopped"))??;
        output
            .downcast::<R>()
            .map(|b| *b)
            .map_err(|_| Error::internal("storage job returned an unexpected type"))
    }

    /// Stops accepting jobs, finishes the queued ones, makes everything durable and joins the thread.
    pub(super) fn shutdown(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

struct WriterState {
    db: Arc<Database>,
    positions: watch::Sender<Positions>,
    term: Arc<AtomicI64>,
    clock: TimestampAllocator,
    last: OpTime,
    /// Whether a commit was made without fsync since the last durable one.
    dirty: bool,
    /// The oplog's figures: moved after each successful commit by what the group appended and removed.
    oplog: Arc<OplogAccount>,
}

impl WriterState {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        let mut last_durable_at = Instant::now();
        loop {
            let first = match rx.recv_timeout(JOURNAL_COMMIT_INTERVAL) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.dirty {
                        self.flush();
                        last_durable_at = Instant::now();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let durable = group.iter().any(|j| j.durable) || last_durable_at.elapsed() >= JOURNAL_COMMIT_INTERVAL;
            self.commit_group(group, durable);
            if durable {
                last_durable_at = Instant::now();
            }
        }
        if self.dirty {
            self.flush();
        }
    }

    fn commit_group(&mut self, group: Vec<Job>, durable: bool) {
        match self.run_group(group, durable) {
            Ok(answers) => {
                for (reply, output) in answers {
                    let _ = reply.send(Ok(output));
                }
            }
            Err((replies, err)) => {
                tracing::error!(error = %err, "storage group commit failed; the group is rolled back");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn run_group(
        &mut self,
        group: Vec<Job>,
        durable: bool,
    ) -> std::result::Result<
        Vec<(oneshot::Sender<Result<Box<dyn Any + Send>>>, Box<dyn Any + Send>)>,
        (Vec<oneshot::Sender<Result<Box<dyn Any + Send>>>>, Error),
    > {
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                return Err((
                    group.into_iter().map(|j| j.reply).collect(),
                    storage_error("begin write", e),
                ));
            }
        };
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        if let Err(e) = txn.set_durability(durability) {
            return Err((
                group.into_iter().map(|j| j.reply).collect(),
                storage_error("set durability", e),
            ));
        }
        let term = self.term.load(Ordering::SeqCst);
        let clock_before = self.clock.clone();
        let oplog = self.oplog.clone();
        let mut ctx = WriteCtx::new(&txn, &mut self.clock, term, &oplog);
        let mut answers = Vec::with_capacity(group.len());
        for job in group {
            let output = (job.run)(&mut ctx);
            answers.push((job.reply, output));
        }
        let fatal = ctx.take_fatal();
        let last_written = ctx.last_optime();
        let reset = ctx.position_reset();
        let oplog_delta = ctx.oplog_delta();
        drop(ctx);
        let failure = match fatal {
            Some(err) => Some(err),
            None => txn.commit().err().map(|e| storage_error("commit", e)),
        };
        if let Some(err) = failure {
            self.clock = clock_before;
            return Err((answers.into_iter().map(|(r, _)| r).collect(), err));
        }
        self.oplog.apply(oplog_delta);
        if let Some(optime) = reset {
            self.last = optime;
        }
        if let Some(optime) = last_written {
            self.last = optime;
        }
        self.dirty = !durable;
        let last = self.last;
        self.positions.send_modify(|p| {
            p.last_written = last;
            if durable || reset.is_some() {
                p.last_durable = if durable { last } else { p.last_durable.min(last) };
            }
        });
        Ok(answers)
    }

    /// An empty durable commit: makes every earlier in-memory commit durable.
    fn flush(&mut self) {
        let result = self
            .db
            .begin_write()
            .map_err(|e| storage_error("begin write", e))
            .and_then(|mut txn| {
                txn.set_durability(Durability::Immediate)
                    .map_err(|e| storage_error("set durability", e))?;
                txn.commit().map_err(|e| storage_error("commit", e))
            });
        match result {
            Ok(()) => {
                self.dirty = false;
                let last = self.last;
                self.positions.send_modify(|p| p.last_durable = last);
            }
            Err(err) => tracing::error!(error = %err, "journal flush failed"),
        }
    }
}
