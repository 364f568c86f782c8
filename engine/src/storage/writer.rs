//! The writer thread: group commit.
//!
//! Jobs arrive on a channel; the thread takes every job waiting (up to [`MAX_GROUP`]), runs them one after
//! another inside one write transaction, commits once and then answers them all. A group is committed
//! durably (fsync) when any job in it asked for `j: true`, or when the last durable commit is older than
//! the journal interval; otherwise it is committed in memory and made durable by a later commit, at most
//! [`JOURNAL_COMMIT_INTERVAL`](super::JOURNAL_COMMIT_INTERVAL) later.
//!
//! A durable group that appends oplog entries is published before its fsync: it is committed in memory,
//! `last_written` moves (so oplog fetchers on other members read the entries while this thread syncs), and
//! only then does an empty durable commit fsync it and move `last_durable`. Jobs that asked for durability are
//! answered after the fsync; the others as soon as the group is visible.
//!
//! In production the writer keeps a **journal** (`journal.rs`): a group's oplog entries are appended to it after
//! the group's in-memory commit, and a sync thread fsyncs the journal in groups while the writer goes on to
//! the next group; jobs that asked for durability are answered by the sync thread once their record is on
//! disk, and the durable position moves then. A record nobody waits for wakes the sync thread only when it is
//! the first since the thread's last fsync ([`LazyRecords`]): a `w: 1` load costs no thread wake-up and no
//! fsync per group, on the primary and on its secondaries (whose batches are awaited only while a write on
//! the primary waits for members' durable positions, [`EncodedBatch::is_awaited`]). The data file is made
//! durable by a **checkpoint** (a durable `redb` commit that records the newest journal record it covers)
//! every [`CHECKPOINT_INTERVAL`], when the
//! journal passes [`CHECKPOINT_BYTES`], and at once for a durable group whose changes the oplog does not
//! carry (metadata, the `local` database, initial sync, rollback). A group with such changes and no
//! durability asked is checkpointed within the journal interval, as before.
//!
//! A **small** job (one whose work its request bounds: a few documents, a point update, a secondary's short
//! batch of document changes, see [`JobSize`]) may skip the hand-off: when no job waits on the channel and
//! the thread is not committing, the submitting task takes the writer's state and commits the job as a group
//! of one itself, so a lone client's write wakes no thread on its way to the in-memory commit. It does so only
//! when the write before it came at least [`INLINE_GAP`] earlier: under load, writes go to the thread and
//! share groups. Everything else (and a small job that finds the writer busy) goes through the channel and
//! is grouped as above. The
//! thread still runs the checkpoints, between groups and every journal interval while it is idle.
//!
//! Under simulation the writer runs **inline** instead ([`Writer::start_inline`]): each job is a group of its
//! own, committed on the calling task before `submit` returns, and a tokio task (on simulated time) makes
//! in-memory commits durable every journal interval. No thread runs beside the runtime, so a seed replays
//! the same interleaving.

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, Durability};
use tokio::sync::{oneshot, watch};

use super::apply::EncodedBatch;
use super::capped::OplogAccount;
use super::catalog::{CollectionMeta, Namespace};
use super::journal::{self, Journal};
use super::oplog::{OpTime, TimestampAllocator};
use super::write_ctx::WriteCtx;
use super::{JOURNAL_COMMIT_INTERVAL, META, Positions, storage_error};
use crate::clock::Clock;
use crate::error::{Error, Result, code};

/// At most this many jobs share one transaction.
const MAX_GROUP: usize = 512;

/// How often the data file is checkpointed while the journal holds records. A crash replays at most this
/// much of the oplog on restart.
pub(super) const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A journal this long is checkpointed at once, whatever the interval. A checkpoint holds the writer while
/// `redb` writes every page changed since the last one and fsyncs them, so a short journal keeps that stall
/// short: at 10,000 `w: 1` inserts a second (about 1.4 MB of journal), a checkpoint a second took 4–10 ms and
/// each showed in the secondaries' p99 lag; at 1 MiB they come a little more often and hold the writer for
/// less, for the same total. It also bounds what a restart replays.
const CHECKPOINT_BYTES: u64 = 1024 * 1024;

/// A test aid for the crash tests: `before-commit:N` or `after-commit:N` aborts the process in the Nth
/// checkpoint of its writer, before its durable commit or after it (before the journal starts again).
const CRASH_IN_CHECKPOINT_ENV: &str = "FAULTLINE_TEST_CRASH_IN_CHECKPOINT";

/// A test aid for the crash tests: `N` aborts the process right after the Nth batch journaled before its apply
/// (`WriterState::prejournal`) is written, before the batch is applied.
const CRASH_AFTER_PREJOURNAL_ENV: &str = "FAULTLINE_TEST_CRASH_AFTER_PREJOURNAL";

/// Where [`CRASH_IN_CHECKPOINT_ENV`] aborts, and in which checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CrashInCheckpoint {
    after_commit: bool,
    nth: u64,
}

impl CrashInCheckpoint {
    fn from_env() -> Option<CrashInCheckpoint> {
        let value = std::env::var(CRASH_IN_CHECKPOINT_ENV).ok()?;
        let (at, nth) = value.split_once(':')?;
        let after_commit = match at {
            "before-commit" => false,
            "after-commit" => true,
            _ => return None,
        };
        Some(CrashInCheckpoint {
            after_commit,
            nth: nth.parse().ok()?,
        })
    }

    fn hit(self, checkpoints: u64, after_commit: bool) {
        if checkpoints == self.nth && after_commit == self.after_commit {
            tracing::warn!(?self, "{CRASH_IN_CHECKPOINT_ENV}: aborting in a checkpoint");
            std::process::abort();
        }
    }
}

/// The writer thread's stack. What a job does is bounded by construction: every document it reads or writes
/// is at most [`MAX_BSON_DEPTH`](crate::depth::MAX_BSON_DEPTH) levels deep (the wire decoder and
/// [`decode`](super::decode) refuse deeper input, [`encode`](super::encode) refuses to store it), update and
/// filter paths have at most that many parts, filter trees at most 100 levels, and the walks over
/// client-controlled nesting (comparison, path traversal, key strings, depth checks) are iterative.
/// `depth::tests::bounded_work_fits_a_small_stack` runs that work at those bounds, unoptimised, on a 1 MiB
/// stack; this gives the writer eight times as much.
const WRITER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A queued job, with its answer's type known to the job and to whoever waits for it.
pub(super) trait Job: Send {
    /// Whether its group must be committed durably.
    fn durable(&self) -> bool;
    /// Runs the job (the first call does; later calls do nothing).
    fn run(&mut self, ctx: &mut WriteCtx<'_>);
    /// Sends the job's output once its group committed, or the group's error.
    fn answer(self: Box<Self>, group: Result<()>);
    /// The entries to journal before the job runs (`Storage::apply_prejournaled`), taken once.
    fn take_prejournal(&mut self) -> Option<EncodedBatch>;
    /// The journal holds the job's entries: its appends are not journaled again.
    fn set_prejournaled(&mut self);
}

struct TypedJob<R, F> {
    job: Option<F>,
    output: Option<R>,
    durable: bool,
    reply: oneshot::Sender<Result<R>>,
    prejournal: Option<EncodedBatch>,
    prejournaled: bool,
}

impl<R, F> Job for TypedJob<R, F>
where
    R: Send,
    F: FnOnce(&mut WriteCtx<'_>) -> R + Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, ctx: &mut WriteCtx<'_>) {
        if let Some(job) = self.job.take() {
            ctx.prejournaled = self.prejournaled;
            self.output = Some(job(ctx));
            ctx.prejournaled = false;
        }
    }

    fn take_prejournal(&mut self) -> Option<EncodedBatch> {
        self.prejournal.take()
    }

    fn set_prejournaled(&mut self) {
        self.prejournaled = true;
    }

    fn answer(self: Box<Self>, group: Result<()>) {
        let TypedJob { output, reply, .. } = *self;
        let answer = group.and_then(|()| output.ok_or_else(|| Error::internal("a storage job did not run")));
        let _ = reply.send(answer);
    }
}

/// How much work a job may do, which decides whether the submitting task may run it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSize {
    /// Bounded by its request (a few statements, each linear in its own bytes, no scan): the submitting task
    /// runs it when the writer is idle.
    Small,
    /// Anything else (scans, index builds, catalog changes): always on the writer thread, so no runtime
    /// thread is held for long.
    Any,
}

/// What the writer thread shares with the tasks that run small jobs themselves.
pub(super) struct Shared {
    state: Mutex<WriterState>,
    /// Jobs sent on the channel and not yet taken by the thread: a small job runs on its caller only when
    /// none wait, so it never overtakes a queued one.
    queued: AtomicUsize,
    /// When the last job was submitted, in nanoseconds after `epoch`.
    last_submit_ns: AtomicU64,
    epoch: Instant,
    /// [`INLINE_GAP`], in nanoseconds (tests set it to make the choice certain).
    inline_gap_ns: AtomicU64,
}

/// A small job runs on its caller only when the job before it was submitted at least this long before: a
/// write that follows closer goes to the thread, where it can share a group (one transaction, one journal
/// record, one sync request) with the writes around it. Alone, a job costs the thread's wake-up (20–30 µs
/// on a loaded host) more than on its caller; under a steady load, a group of one costs more than that.
const INLINE_GAP: std::time::Duration = std::time::Duration::from_micros(250);

impl Shared {
    /// Notes a submission and says whether the one before it was at least [`INLINE_GAP`] earlier.
    fn submitted_alone(&self) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let before = self.last_submit_ns.swap(now, Ordering::SeqCst);
        now.saturating_sub(before) >= self.inline_gap_ns.load(Ordering::Relaxed)
    }

    /// The writer's state. A panic while it was held (outside a job, which runs under `catch_unwind`) leaves
    /// it as the panic found it; the writer carries on with it rather than stop every write.
    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) enum Writer {
    /// Production: the group-commit thread.
    Thread {
        jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
        shared: Arc<Shared>,
        thread: Mutex<Option<JoinHandle<()>>>,
        /// Whether the journal covers what was committed (see [`Writer::journal_covers`]).
        sync: Option<SyncLine>,
    },
    /// Simulation: jobs run on the caller's task (None once shut down).
    Inline(Arc<Mutex<Option<InlineWriter>>>),
}

/// The inline writer's state: the writer's own, plus when it last committed durably (on tokio's clock).
pub(super) struct InlineWriter {
    state: WriterState,
    last_durable_at: tokio::time::Instant,
}

/// Where the writer runs.
pub(super) enum WriterMode {
    /// Its own thread, grouping concurrent jobs, with the journal (production).
    Thread(Journal),
    /// The submitting task, one job per group, flushed by a task on tokio's clock (simulation).
    Inline,
}

impl Writer {
    pub(super) fn start(
        mode: WriterMode,
        db: Arc<Database>,
        positions: watch::Sender<Positions>,
        term: Arc<AtomicI64>,
        last: OpTime,
        oplog: Arc<OplogAccount>,
        clock: Clock,
    ) -> Result<Writer> {
        let last_wall_ms = positions.borrow().last_written_wall_ms;
        let positions = Arc::new(positions);
        let (journal, thread) = match mode {
            WriterMode::Thread(journal) => (Some(JournalPipe::start(journal, positions.clone())?), true),
            WriterMode::Inline => (None, false),
        };
        let sync = journal.as_ref().and_then(JournalPipe::line);
        let state = WriterState {
            db,
            positions,
            journal,
            last_wall_ms,
            term,
            timestamps: TimestampAllocator::new(last.ts),
            clock,
            last,
            dirty: false,
            oplog,
            catalog: HashMap::new(),
            stopped: false,
        };
        if thread {
            Writer::start_thread(state, sync)
        } else {
            Ok(Writer::start_inline(state))
        }
    }

    fn start_thread(state: WriterState, sync: Option<SyncLine>) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            queued: AtomicUsize::new(0),
            last_submit_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            inline_gap_ns: AtomicU64::new(INLINE_GAP.as_nanos() as u64),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("storage-writer".into())
            .stack_size(WRITER_STACK_BYTES)
            .spawn(move || run_thread(&thread_shared, rx))
            .map_err(|e| storage_error("spawn writer", e))?;
        Ok(Writer::Thread {
            jobs: Mutex::new(Some(tx)),
            shared,
            thread: Mutex::new(Some(thread)),
            sync,
        })
    }

    /// The simulation's writer: jobs commit on the submitting task; a task on the runtime's (simulated) clock
    /// flushes in-memory commits every journal interval.
    fn start_inline(state: WriterState) -> Writer {
        let inline = Arc::new(Mutex::new(Some(InlineWriter {
            state,
            last_durable_at: tokio::time::Instant::now(),
        })));
        let weak = Arc::downgrade(&inline);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(JOURNAL_COMMIT_INTERVAL).await;
                let Some(inline) = weak.upgrade() else { break };
                let Ok(mut guard) = inline.lock() else { break };
                let Some(writer) = guard.as_mut() else { break };
                if writer.state.dirty {
                    let _ = writer.state.flush();
                    writer.last_durable_at = tokio::time::Instant::now();
                }
            }
        });
        Writer::Inline(inline)
    }

    /// Queues `job` (or runs it here, when it is [`JobSize::Small`] and the writer idle) and waits for its
    /// answer. With `prejournal`, the writer journals those entries before the job runs (only the journaled
    /// writer does; the inline one runs the job as any other).
    pub(super) async fn submit<R, F>(
        &self,
        durable: bool,
        prejournal: Option<EncodedBatch>,
        size: JobSize,
        job: F,
    ) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            job: Some(job),
            output: None,
            durable,
            reply,
            prejournal,
            prejournaled: false,
        });
        let sent = match self {
            Writer::Thread { jobs, shared, .. } => {
                let alone = shared.submitted_alone();
                let job = match size {
                    JobSize::Small if alone => run_if_idle(jobs, shared, job),
                    JobSize::Small | JobSize::Any => Some(job),
                };
                match job {
                    None => true,
                    Some(job) => match jobs.lock() {
                        Ok(guard) => guard.as_ref().is_some_and(|tx| {
                            shared.queued.fetch_add(1, Ordering::SeqCst);
                            let sent = tx.send(job).is_ok();
                            if !sent {
                                shared.queued.fetch_sub(1, Ordering::SeqCst);
                            }
                            sent
                        }),
                        Err(_) => false,
                    },
                }
            }
            Writer::Inline(inline) => match inline.lock() {
                Ok(mut guard) => match guard.as_mut() {
                    Some(writer) => {
                        let durable = job.durable() || writer.last_durable_at.elapsed() >= JOURNAL_COMMIT_INTERVAL;
                        writer.state.commit_group(vec![job], durable);
                        if durable {
                            writer.last_durable_at = tokio::time::Instant::now();
                        }
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            },
        };
        if !sent {
            return Err(Error::new(
                code::SHUTDOWN_IN_PROGRESS,
                "the storage engine is shutting down",
            ));
        }
        answer
            .await
            .map_err(|_| Error::new(code::SHUTDOWN_IN_PROGRESS, "the storage writer stopped"))?
    }

    /// Sets the gap after which a small job runs on its caller (tests: zero for always, `MAX` for never).
    #[cfg(test)]
    pub(super) fn set_inline_gap(&self, gap: std::time::Duration) {
        if let Writer::Thread { shared, .. } = self {
            shared.inline_gap_ns.store(gap.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Whether the journal covers everything committed so far: then a job that asked for
    /// [`WriteCtx::sync_soon`] is durable once the durable position passes it. False without a journal, or
    /// while changes the journal does not cover wait for a checkpoint: then the caller flushes.
    pub(super) fn journal_covers(&self) -> bool {
        let Writer::Thread { sync: Some(line), .. } = self else {
            return false;
        };
        !line.uncovered.load(Ordering::SeqCst)
    }

    /// Stops accepting jobs, finishes the queued ones, makes everything durable and joins the thread.
    pub(super) fn shutdown(&self) {
        match self {
            Writer::Thread { jobs, thread, .. } => {
                if let Ok(mut jobs) = jobs.lock() {
                    jobs.take();
                }
                let handle = thread.lock().ok().and_then(|mut t| t.take());
                if let Some(handle) = handle {
                    let _ = handle.join();
                }
            }
            Writer::Inline(inline) => {
                if let Some(mut writer) = inline.lock().ok().and_then(|mut w| w.take())
                    && writer.state.dirty
                {
                    let _ = writer.state.flush();
                }
            }
        }
    }

    /// Stops accepting jobs at once. The inline writer (simulation) then commits and flushes nothing more, as
    /// a killed process: what it committed in memory stays in the simulated disk's pages. The thread writer
    /// still finishes and flushes what was queued before it exits.
    pub(super) fn abandon(&self) {
        match self {
            Writer::Thread { jobs, .. } => {
                if let Ok(mut jobs) = jobs.lock() {
                    jobs.take();
                }
            }
            Writer::Inline(inline) => {
                if let Ok(mut writer) = inline.lock() {
                    writer.take();
                }
            }
        }
    }
}

/// Commits `job` on the calling thread as a group of its own when the writer is idle: it accepts jobs, none
/// wait on its channel, and the thread is not committing. Returns the job when it did not run.
fn run_if_idle(
    jobs: &Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    shared: &Shared,
    job: Box<dyn Job>,
) -> Option<Box<dyn Job>> {
    let accepting = jobs.lock().is_ok_and(|tx| tx.is_some());
    if !accepting || shared.queued.load(Ordering::SeqCst) > 0 {
        return Some(job);
    }
    let Ok(mut state) = shared.state.try_lock() else {
        return Some(job);
    };
    if state.stopped {
        return Some(job);
    }
    tracing::trace!(target: "write_path", "writer.inline");
    let durable = job.durable();
    state.commit_group_journaled(vec![job], durable);
    None
}

/// The writer thread: takes every job waiting (up to [`MAX_GROUP`]) and commits them as one group; checkpoints
/// between groups and every journal interval while idle; at the end makes everything durable.
fn run_thread(shared: &Shared, rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut last_durable_at = Instant::now();
    loop {
        let first = match rx.recv_timeout(JOURNAL_COMMIT_INTERVAL) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let mut state = shared.lock();
                if state.journal.is_some() {
                    state.checkpoint_if_due();
                } else if state.dirty {
                    let _ = state.flush();
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
        shared.queued.fetch_sub(group.len(), Ordering::SeqCst);
        let mut state = shared.lock();
        if state.journal.is_some() {
            let durable = group.iter().any(|j| j.durable());
            state.commit_group_journaled(group, durable);
            state.checkpoint_if_due();
            continue;
        }
        let durable = group.iter().any(|j| j.durable()) || last_durable_at.elapsed() >= JOURNAL_COMMIT_INTERVAL;
        state.commit_group(group, durable);
        if durable {
            last_durable_at = Instant::now();
        }
    }
    let mut state = shared.lock();
    if state.journal.is_some() {
        let _ = state.checkpoint();
        if let Some(pipe) = state.journal.take() {
            pipe.stop();
        }
    } else if state.dirty {
        let _ = state.flush();
    }
    state.stopped = true;
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

struct WriterState {
    db: Arc<Database>,
    positions: Arc<watch::Sender<Positions>>,
    /// The journal and its sync thread (production); `None` under simulation, where every durable group is a
    /// durable `redb` commit.
    journal: Option<JournalPipe>,
    term: Arc<AtomicI64>,
    timestamps: TimestampAllocator,
    /// The member's wall clock, which new oplog entries are stamped with.
    clock: Clock,
    last: OpTime,
    /// The `wall` time of the entry at `last` (ms since the epoch; 0 when unknown).
    last_wall_ms: i64,
    /// Whether a commit was made without fsync since the last durable one.
    dirty: bool,
    /// The oplog's figures: moved after each successful commit by what the group appended and removed.
    oplog: Arc<OplogAccount>,
    /// The catalog entries the committed groups read or wrote, decoded: the next group starts from them, so a
    /// lone client's write does not decode its collection's entry again (this thread is the only writer of
    /// the catalog). Dropped when a group fails, and when it grows past [`CATALOG_CACHE_MAX`].
    catalog: HashMap<Namespace, CollectionMeta>,
    /// The thread has made everything durable and ended: no job runs on this state any more.
    stopped: bool,
}

/// The most collections [`WriterState`] keeps decoded between groups.
const CATALOG_CACHE_MAX: usize = 4096;

impl WriterState {
    /// Runs and commits one group in memory, appends its oplog entries to the journal and hands the group to
    /// the sync thread, which answers the jobs that asked for durability once the record is on disk (the
    /// others are answered here). A group that changed what the oplog does not carry is made durable by a
    /// checkpoint instead when it asked for durability, or when it truncated the oplog (rollback).
    fn commit_group_journaled(&mut self, mut group: Vec<Box<dyn Job>>, durable: bool) {
        self.prejournal(&mut group);
        let ran = self.run_group(&mut group, false, true);
        let Ran {
            payload,
            covered,
            reset,
            sync_soon,
            ..
        } = match ran {
            Ok(ran) => ran,
            Err(err) => {
                tracing::error!(error = %err, "storage group commit failed; the group is rolled back");
                for job in group {
                    job.answer(Err(err.clone()));
                }
                return;
            }
        };
        let Some(pipe) = self.journal.as_mut() else { return };
        if !covered || reset {
            pipe.mark_uncovered();
        }
        let mut checkpoint = reset || (durable && pipe.uncovered_dirty);
        let mut journaled = false;
        if !payload.is_empty() && !checkpoint {
            match pipe.journal.append(&payload) {
                Ok(_) => journaled = true,
                Err(err) => {
                    tracing::error!(error = %err, "journal write failed; checkpointing instead");
                    pipe.mark_uncovered();
                    checkpoint = true;
                }
            }
        }
        let (waiting, answered): (Vec<_>, Vec<_>) = group.into_iter().partition(|job| job.durable());
        if checkpoint {
            for job in answered {
                job.answer(Ok(()));
            }
            let outcome = self.checkpoint();
            for job in waiting {
                job.answer(outcome.clone());
            }
            return;
        }
        // The sync thread hears of the record before anyone is answered.
        if journaled || !waiting.is_empty() {
            let durable_at = journaled.then_some((self.last, self.last_wall_ms));
            let awaited = !waiting.is_empty();
            let handed = pipe.send(SyncRequest::Written {
                durable: durable_at,
                jobs: waiting,
                urgent: sync_soon && journaled,
                prejournaled: false,
            });
            if handed && awaited {
                let_the_fsync_start();
            }
        }
        for job in answered {
            job.answer(Ok(()));
        }
    }

    /// Journals the entries of the group's jobs that brought them (a secondary's batches) before the group
    /// runs. A record that a write waits for ([`EncodedBatch::is_awaited`]) goes to the sync thread at once,
    /// so its fsync runs while the batch is applied; any other waits in [`LazyRecords`] like a `j: false`
    /// group's. A batch whose record cannot be written is journaled with its group instead.
    ///
    /// The sync thread publishes such a record's position as durable only up to `last_written` and keeps the
    /// rest as `synced_ahead`, which the group's commit then publishes: the durable position moves when both
    /// the fsync and the apply are done, whichever finishes last. Only a member that is not writable applies
    /// batches, so no job in the group logs entries of its own older than the batch's.
    fn prejournal(&mut self, group: &mut [Box<dyn Job>]) {
        let Some(pipe) = self.journal.as_mut() else { return };
        for job in group.iter_mut() {
            let Some(batch) = job.take_prejournal() else { continue };
            match pipe.journal.append(batch.bytes()) {
                Ok(_) => {
                    pipe.prejournaled += 1;
                    if pipe.crash_after_prejournal == Some(pipe.prejournaled) {
                        tracing::warn!(
                            ts = super::ts_to_u64(batch.newest().0.ts),
                            "{CRASH_AFTER_PREJOURNAL_ENV}: aborting between a batch's journal record and its apply"
                        );
                        std::process::abort();
                    }
                    job.set_prejournaled();
                    let handed = pipe.send(SyncRequest::prejournaled(&batch));
                    if handed && batch.is_awaited() {
                        let_the_fsync_start();
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "journal write failed; the batch is journaled with its group")
                }
            }
        }
    }

    /// Checkpoints when the interval has passed or the journal is long, or within the journal interval of a
    /// change the journal does not cover.
    fn checkpoint_if_due(&mut self) {
        let Some(pipe) = &self.journal else { return };
        let due = pipe.uncovered_dirty && pipe.uncovered_since.elapsed() >= JOURNAL_COMMIT_INTERVAL
            || pipe.journal.len() >= CHECKPOINT_BYTES
            || (self.dirty && pipe.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL);
        if due {
            let _ = self.checkpoint();
        }
    }

    /// A durable `redb` commit of everything committed so far, recording the newest journal record it
    /// covers; the journal then starts again. Waits first for the sync thread to finish what it was given, so
    /// no durable position it publishes later is older than a rollback this checkpoint makes durable.
    fn checkpoint(&mut self) -> Result<()> {
        let Some(pipe) = self.journal.as_mut() else {
            return self.flush();
        };
        pipe.drain();
        pipe.checkpoints += 1;
        if let Some(crash) = pipe.crash {
            crash.hit(pipe.checkpoints, false);
        }
        let lsn = pipe.journal.last_lsn();
        let began = Instant::now();
        let result = self
            .db
            .begin_write()
            .map_err(|e| storage_error("begin write", e))
            .and_then(|mut txn| {
                {
                    let mut meta = txn.open_table(META).map_err(|e| storage_error("meta", e))?;
                    let stored = bson::doc! {"lsn": lsn as i64}.to_vec()?;
                    meta.insert(journal::CHECKPOINT_KEY, stored.as_slice())
                        .map_err(|e| storage_error("meta insert", e))?;
                }
                txn.set_durability(Durability::Immediate)
                    .map_err(|e| storage_error("set durability", e))?;
                txn.commit().map_err(|e| storage_error("commit", e))
            });
        tracing::debug!(
            target: "write_path",
            lsn,
            journal_bytes = pipe.journal.len(),
            sync_us = began.elapsed().as_micros() as u64,
            "writer.checkpoint"
        );
        match &result {
            Ok(()) => {
                if let Some(crash) = pipe.crash {
                    crash.hit(pipe.checkpoints, true);
                }
                pipe.journal.restart();
                pipe.uncovered_dirty = false;
                pipe.uncovered.store(false, Ordering::SeqCst);
                pipe.last_checkpoint = Instant::now();
                self.dirty = false;
                let (last, wall) = (self.last, self.last_wall_ms);
                self.positions.send_modify(|p| {
                    p.last_durable = last;
                    p.last_durable_wall_ms = wall;
                    // A record journaled ahead of a group that then failed is not replayed past this point.
                    p.synced_ahead = None;
                });
            }
            Err(err) => tracing::error!(error = %err, "checkpoint failed"),
        }
        result
    }

    /// Runs and commits one group, then answers its jobs. A durable group that wrote oplog entries is
    /// committed in two steps: first without fsync, which makes the entries visible and publishes them as
    /// `last_written` (the oplog's fetchers read them while this thread syncs; jobs that did not ask for
    /// durability are answered here), then an empty durable commit, which publishes `last_durable` and
    /// answers the rest. The durable position never runs ahead of the fsync, and an entry a secondary fetched
    /// before it is a non-durable write the set handles as any other (rollback if this member loses it). If
    /// the fsync fails, the jobs that waited for it get the error while their writes stay visible, as a
    /// write whose journaling failed; the next interval flush tries again.
    fn commit_group(&mut self, mut group: Vec<Box<dyn Job>>, durable: bool) {
        let committed = self.run_group(&mut group, durable, false).map(|ran| ran.commit);
        let outcome = match committed {
            Err(err) => {
                tracing::error!(error = %err, "storage group commit failed; the group is rolled back");
                Err(err)
            }
            Ok(Commit::Done) => Ok(()),
            Ok(Commit::Visible) => {
                let (waiting, answered): (Vec<_>, Vec<_>) = group.into_iter().partition(|job| job.durable());
                for job in answered {
                    job.answer(Ok(()));
                }
                group = waiting;
                self.flush()
            }
        };
        for job in group {
            job.answer(outcome.clone());
        }
    }

    /// Runs the group's jobs in one transaction and commits it; on an error nothing of it is committed. A
    /// durable group that logged entries (or reset the oplog's end) is committed without fsync and answers
    /// [`Commit::Visible`]: the caller then makes it durable. Any other group is committed as asked. With
    /// `journal`, the group's oplog entries are kept for the journal (the journaled writer passes `durable`
    /// false: its groups are all committed in memory).
    fn run_group(&mut self, group: &mut [Box<dyn Job>], durable: bool, journal: bool) -> Result<Ran> {
        let began = Instant::now();
        let mut txn = self.db.begin_write().map_err(|e| storage_error("begin write", e))?;
        let term = self.term.load(Ordering::SeqCst);
        let timestamps_before = self.timestamps.clone();
        let oplog = self.oplog.clone();
        let catalog = std::mem::take(&mut self.catalog);
        let mut ctx = WriteCtx::new(&txn, &mut self.timestamps, &self.clock, term, &oplog).with_catalog_cache(catalog);
        if journal {
            ctx.journaled = Some(Vec::new());
        }
        for job in group.iter_mut() {
            // A job that panics must not take the writer (and every later write) down with it. What it wrote
            // may be half done, so the panic is recorded as fatal: the group rolls back and every job in it
            // gets the error.
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut ctx))) {
                let message = panic_message(panic.as_ref());
                tracing::error!(panic = %message, "a storage write job panicked; its group is rolled back");
                ctx.fatal("a write job panicked", message);
            }
        }
        let fatal = ctx.take_fatal();
        let last_written = ctx.last_optime();
        let last_wall_ms = ctx.last_wall_ms();
        let reset = ctx.position_reset();
        let oplog_delta = ctx.oplog_delta();
        let covered = ctx.covered;
        let sync_soon = ctx.sync_soon;
        let payload = ctx.journaled.take().unwrap_or_default();
        let catalog = ctx.take_catalog_cache();
        drop(ctx);
        // Publish before the fsync only what fetchers wait for: new oplog entries or a moved end.
        let publish_first = durable && (last_written.is_some() || reset.is_some());
        let synced_now = durable && !publish_first;
        let durability = if synced_now {
            Durability::Immediate
        } else {
            Durability::None
        };
        let ran = began.elapsed();
        let failure = match fatal {
            Some(err) => Some(err),
            None => txn
                .set_durability(durability)
                .map_err(|e| storage_error("set durability", e))
                .and_then(|()| txn.commit().map_err(|e| storage_error("commit", e)))
                .err(),
        };
        tracing::trace!(
            target: "write_path",
            ts = last_written.map(|o| super::ts_to_u64(o.ts)).unwrap_or(0),
            durable = synced_now,
            jobs = group.len(),
            run_us = ran.as_micros() as u64,
            commit_us = (began.elapsed() - ran).as_micros() as u64,
            "writer.committed"
        );
        if let Some(err) = failure {
            self.timestamps = timestamps_before;
            return Err(err);
        }
        self.oplog.apply(oplog_delta);
        if catalog.len() <= CATALOG_CACHE_MAX {
            self.catalog = catalog;
        }
        if let Some(optime) = reset {
            self.last = optime;
            self.last_wall_ms = 0;
        }
        if let Some(optime) = last_written {
            self.last = optime;
            self.last_wall_ms = last_wall_ms;
        }
        self.dirty = !synced_now;
        let (last, wall) = (self.last, self.last_wall_ms);
        let reset = reset.is_some();
        self.positions.send_modify(|p| {
            p.last_written = last;
            p.last_written_wall_ms = wall;
            if synced_now || (reset && last < p.last_durable) {
                p.last_durable = last;
                p.last_durable_wall_ms = wall;
            }
            if reset {
                p.synced_ahead = None;
            }
            if let Some((ahead, ahead_wall)) = p.synced_ahead {
                let (upto, upto_wall) = if ahead <= last {
                    (ahead, ahead_wall)
                } else {
                    (last, wall)
                };
                if upto > p.last_durable {
                    p.last_durable = upto;
                    p.last_durable_wall_ms = upto_wall;
                }
                if ahead <= last {
                    p.synced_ahead = None;
                }
            }
        });
        if synced_now {
            tracing::trace!(target: "write_path", ts = super::ts_to_u64(last.ts), "writer.flushed");
        }
        Ok(Ran {
            commit: if publish_first { Commit::Visible } else { Commit::Done },
            payload,
            covered,
            reset,
            sync_soon,
        })
    }

    /// An empty durable commit: makes every earlier in-memory commit durable, then publishes `last_durable`.
    fn flush(&mut self) -> Result<()> {
        let began = Instant::now();
        let result = self
            .db
            .begin_write()
            .map_err(|e| storage_error("begin write", e))
            .and_then(|mut txn| {
                txn.set_durability(Durability::Immediate)
                    .map_err(|e| storage_error("set durability", e))?;
                txn.commit().map_err(|e| storage_error("commit", e))
            });
        tracing::trace!(
            target: "write_path",
            ts = super::ts_to_u64(self.last.ts),
            sync_us = began.elapsed().as_micros() as u64,
            "writer.flushed"
        );
        match &result {
            Ok(()) => {
                self.dirty = false;
                let (last, wall) = (self.last, self.last_wall_ms);
                self.positions.send_modify(|p| {
                    p.last_durable = last;
                    p.last_durable_wall_ms = wall;
                });
            }
            Err(err) => tracing::error!(error = %err, "journal flush failed"),
        }
        result
    }
}

/// What the writer hands the sync thread.
enum SyncRequest {
    /// A record was written (when `durable` is set, the group's newest entry's optime and wall time) and
    /// `jobs` wait for it: fsync, then publish the durable position and answer them. The fsync starts at once
    /// when a job waits or `urgent` (a secondary's applied batch), else within the journal interval.
    Written {
        durable: Option<(OpTime, i64)>,
        jobs: Vec<Box<dyn Job>>,
        urgent: bool,
        /// Written before its group committed ([`WriterState::prejournal`]).
        prejournaled: bool,
    },
    /// Answered once everything sent before is done.
    Drain(mpsc::Sender<()>),
    /// The last request: the thread ends after it (the [`SyncLine`]s' senders keep the queue open).
    Stop,
}

/// What [`Writer::journal_covers`] needs: whether changes the journal does not cover are waiting for a
/// checkpoint.
pub(super) struct SyncLine {
    uncovered: Arc<std::sync::atomic::AtomicBool>,
}

/// The journal, the thread that fsyncs it, and what the writer knows of the data file's durability.
struct JournalPipe {
    journal: Journal,
    requests: Option<mpsc::Sender<SyncRequest>>,
    /// Records nobody waits for, written while the sync thread already knows one is pending.
    lazy: Arc<Mutex<LazyRecords>>,
    thread: Option<JoinHandle<()>>,
    /// Changes committed in memory that the journal does not cover, since the last checkpoint.
    uncovered_dirty: bool,
    /// `uncovered_dirty`, for [`Writer::journal_covers`].
    uncovered: Arc<std::sync::atomic::AtomicBool>,
    /// When `uncovered_dirty` was last set from clear.
    uncovered_since: Instant,
    last_checkpoint: Instant,
    /// Checkpoints made by this writer.
    checkpoints: u64,
    crash: Option<CrashInCheckpoint>,
    /// Batches journaled before their apply by this writer.
    prejournaled: u64,
    crash_after_prejournal: Option<u64>,
}

impl JournalPipe {
    fn start(journal: Journal, positions: Arc<watch::Sender<Positions>>) -> Result<JournalPipe> {
        let file = journal.sync_handle()?;
        let (tx, rx) = mpsc::channel();
        let lazy = Arc::new(Mutex::new(LazyRecords::default()));
        let thread_lazy = lazy.clone();
        let thread = std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || sync_loop(&file, &rx, &thread_lazy, &positions))
            .map_err(|e| storage_error("spawn journal sync", e))?;
        Ok(JournalPipe {
            journal,
            requests: Some(tx),
            lazy,
            thread: Some(thread),
            uncovered_dirty: false,
            uncovered: Arc::default(),
            uncovered_since: Instant::now(),
            last_checkpoint: Instant::now(),
            checkpoints: 0,
            crash: CrashInCheckpoint::from_env(),
            prejournaled: 0,
            crash_after_prejournal: std::env::var(CRASH_AFTER_PREJOURNAL_ENV)
                .ok()
                .and_then(|n| n.parse().ok()),
        })
    }

    fn mark_uncovered(&mut self) {
        if !self.uncovered_dirty {
            self.uncovered_dirty = true;
            self.uncovered.store(true, Ordering::SeqCst);
            self.uncovered_since = Instant::now();
        }
    }

    /// What [`Writer::journal_covers`] reads.
    fn line(&self) -> Option<SyncLine> {
        self.requests.as_ref()?;
        Some(SyncLine {
            uncovered: self.uncovered.clone(),
        })
    }

    /// Hands `request` to the sync thread (or, for a record nobody waits for, to [`LazyRecords`]); whether the
    /// thread got it.
    fn send(&mut self, request: SyncRequest) -> bool {
        if let Some(record) = request.unwaited()
            && self.lazy.lock().unwrap_or_else(PoisonError::into_inner).note(record)
        {
            return false;
        }
        let Some(requests) = &self.requests else {
            if let SyncRequest::Written { jobs, .. } = request {
                for job in jobs {
                    job.answer(Err(storage_error("journal", "the sync thread stopped")));
                }
            }
            return false;
        };
        if let Err(mpsc::SendError(SyncRequest::Written { jobs, .. })) = requests.send(request) {
            for job in jobs {
                job.answer(Err(storage_error("journal", "the sync thread stopped")));
            }
            return false;
        }
        true
    }

    /// Waits until the sync thread has done everything sent before.
    fn drain(&mut self) {
        let (tx, rx) = mpsc::channel();
        if let Some(requests) = &self.requests
            && requests.send(SyncRequest::Drain(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }

    fn stop(mut self) {
        if let Some(requests) = self.requests.take() {
            let _ = requests.send(SyncRequest::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Journal records that nobody waits for (`j: false` groups, and a secondary's batches while no write waits
/// for members' durable positions), kept beside the sync thread's channel so that such a load wakes the thread
/// once per journal interval rather than once per record: the first such record after an fsync goes through
/// the channel (the thread then waits up to the interval for an urgent one), the next ones only move `newest`
/// here, and the thread takes them all just before its fsync.
#[derive(Default)]
struct LazyRecords {
    /// The newest record.
    newest: Option<UnwaitedRecord>,
    /// Whether the thread has heard of a pending record and will take this slot before its next fsync.
    armed: bool,
}

/// A journal record nobody waits for: its newest entry's optime and wall time, and whether it was written
/// before its group committed (a secondary's batch, [`WriterState::prejournal`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct UnwaitedRecord {
    at: OpTime,
    wall_ms: i64,
    ahead: bool,
}

impl LazyRecords {
    /// Keeps `record` for the thread's next fsync when the thread will take it anyway (true); otherwise arms
    /// the slot and returns false: the caller must send the record through the channel.
    fn note(&mut self, record: UnwaitedRecord) -> bool {
        if !self.armed {
            self.armed = true;
            return false;
        }
        if self.newest.is_none_or(|newest| record.at > newest.at) {
            self.newest = Some(record);
        }
        true
    }

    /// The records kept so far; the next one is sent through the channel again.
    fn take(&mut self) -> Option<UnwaitedRecord> {
        self.armed = false;
        self.newest.take()
    }
}

/// The sync thread: takes every request waiting, fsyncs the journal once for all of them, then publishes
/// the newest durable position and answers their jobs. Requests that nobody waits for (`j: false` groups)
/// wait up to the journal interval for one that does, so a `w: 1` load does not fsync per group; the records
/// of such groups written meanwhile wait in `lazy`, taken just before the fsync.
fn sync_loop(
    file: &std::fs::File,
    requests: &mpsc::Receiver<SyncRequest>,
    lazy: &Mutex<LazyRecords>,
    positions: &watch::Sender<Positions>,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        if !batch.iter().any(SyncRequest::is_urgent) {
            let deadline = Instant::now() + JOURNAL_COMMIT_INTERVAL;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match requests.recv_timeout(left) {
                    Ok(request) => {
                        let now_urgent = request.is_urgent();
                        batch.push(request);
                        if now_urgent {
                            batch.extend(requests.try_iter());
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        // Written to the journal before they were noted, so this fsync covers them.
        let kept = lazy.lock().unwrap_or_else(PoisonError::into_inner).take();
        let began = Instant::now();
        let synced = file.sync_data().map_err(|e| storage_error("journal fsync", e));
        let mut stop = false;
        let mut newest: Option<(OpTime, i64)> = kept.map(|record| (record.at, record.wall_ms));
        // Whether `newest` is a record journaled before its group committed.
        let mut ahead = kept.is_some_and(|record| record.ahead);
        let mut drained = Vec::new();
        let mut answers = Vec::new();
        for request in batch {
            match request {
                SyncRequest::Written {
                    durable,
                    jobs,
                    prejournaled,
                    ..
                } => {
                    if durable.is_some_and(|(at, _)| newest.is_none_or(|(n, _)| at > n)) {
                        newest = durable;
                        ahead = prejournaled;
                    }
                    answers.extend(jobs);
                }
                SyncRequest::Drain(done) => drained.push(done),
                SyncRequest::Stop => stop = true,
            }
        }
        match &synced {
            Ok(()) => {
                if let Some((at, wall)) = newest {
                    positions.send_if_modified(|p| {
                        if at <= p.last_written {
                            let newer = at > p.last_durable;
                            if newer {
                                p.last_durable = at;
                                p.last_durable_wall_ms = wall;
                            }
                            return newer;
                        }
                        // A record journaled before its group committed (`WriterState::prejournal`): the
                        // group's commit publishes it.
                        if ahead && p.synced_ahead.is_none_or(|(synced, _)| at > synced) {
                            p.synced_ahead = Some((at, wall));
                        }
                        false
                    });
                }
                tracing::trace!(
                    target: "write_path",
                    ts = newest.map(|(at, _)| super::ts_to_u64(at.ts)).unwrap_or(0),
                    sync_us = began.elapsed().as_micros() as u64,
                    "writer.flushed"
                );
            }
            Err(err) => tracing::error!(error = %err, "journal fsync failed"),
        }
        for job in answers {
            job.answer(synced.clone());
        }
        for done in drained {
            let _ = done.send(());
        }
        if stop {
            break;
        }
    }
}

impl SyncRequest {
    /// A secondary's batch, journaled before its group runs: urgent when a write waits for it.
    fn prejournaled(batch: &EncodedBatch) -> SyncRequest {
        SyncRequest::Written {
            durable: Some(batch.newest()),
            jobs: Vec::new(),
            urgent: batch.is_awaited(),
            prejournaled: true,
        }
    }

    /// Whether the sync thread fsyncs as soon as it has this request (someone waits for it), rather than
    /// within the journal interval.
    fn is_urgent(&self) -> bool {
        match self {
            SyncRequest::Written { jobs, urgent, .. } => *urgent || !jobs.is_empty(),
            SyncRequest::Drain(_) | SyncRequest::Stop => true,
        }
    }

    /// A record nobody waits for (no job, not urgent): it may wait in [`LazyRecords`] instead of waking the
    /// sync thread.
    fn unwaited(&self) -> Option<UnwaitedRecord> {
        match self {
            SyncRequest::Written {
                durable: Some((at, wall_ms)),
                jobs,
                urgent: false,
                prejournaled,
            } if jobs.is_empty() => Some(UnwaitedRecord {
                at: *at,
                wall_ms: *wall_ms,
                ahead: *prejournaled,
            }),
            _ => None,
        }
    }
}

/// Gives this thread's core to the sync thread, just handed an fsync that a write waits for. Woken onto this
/// core (the kernel's choice for the thread that woke it), it would wait until this thread blocks, which on a
/// busy small host was 0.1–0.2 ms; it gives the core back as soon as the disk has the request.
fn let_the_fsync_start() {
    std::thread::yield_now();
}

/// What [`WriterState::run_group`] did with a group.
struct Ran {
    commit: Commit,
    /// The group's oplog entries as stored, back to back (when kept for the journal).
    payload: Vec<u8>,
    /// Whether the entries reproduce every change of the group (`WriteCtx::covered`).
    covered: bool,
    /// Whether the group truncated the oplog (rollback).
    reset: bool,
    /// Whether a job asked for the group's journal record to be fsynced at once (`WriteCtx::sync_soon`).
    sync_soon: bool,
}

/// How far [`WriterState::run_group`] took a group.
enum Commit {
    /// Committed as asked (durably when the group was durable).
    Done,
    /// Committed without fsync and published as written; the durable commit is still to come.
    Visible,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bson::doc;

    use super::JobSize;
    use crate::storage::{Namespace, Storage};

    /// Whether document `n` of `db.inline` is visible to a new snapshot.
    fn visible(storage: &Storage, n: i32) -> bool {
        let snapshot = storage.snapshot().expect("snapshot");
        let meta = snapshot.collection(&Namespace::new("db", "inline")).expect("catalog");
        meta.is_some_and(|meta| {
            snapshot
                .get_by_id(&meta, &bson::Bson::Int32(n))
                .expect("read")
                .is_some()
        })
    }

    /// The name of the thread a job of `size` inserting document `n` runs on; the document is visible
    /// once the job answered.
    async fn job_thread(storage: &Storage, size: JobSize, n: i32) -> String {
        let ns = Namespace::new("db", "inline");
        let thread = storage
            .write_sized(false, size, move |w| {
                let meta = w.ensure_collection(&ns).expect("collection");
                w.insert(&meta, doc! {"_id": n}, None).expect("insert");
                std::thread::current().name().unwrap_or("").to_string()
            })
            .await
            .expect("the job ran");
        assert!(visible(storage, n), "document {n} is visible once its job answered");
        thread
    }

    /// A small job runs on its caller when the writer is idle and the write before it is older than the
    /// gap; under a closer stream of writes, and for a job of any size, it goes to the writer thread.
    #[tokio::test]
    async fn a_small_job_runs_on_its_caller_only_when_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        storage.inner.writer.set_inline_gap(Duration::ZERO);
        let caller = std::thread::current().name().unwrap_or("").to_string();
        assert_ne!(caller, "storage-writer");
        assert_eq!(
            job_thread(&storage, JobSize::Small, 1).await,
            caller,
            "alone: on the caller"
        );
        assert_eq!(
            job_thread(&storage, JobSize::Small, 2).await,
            caller,
            "alone again: on the caller"
        );
        assert_eq!(
            job_thread(&storage, JobSize::Any, 3).await,
            "storage-writer",
            "a job of any size: on the writer thread"
        );
        storage.inner.writer.set_inline_gap(Duration::MAX);
        assert_eq!(
            job_thread(&storage, JobSize::Small, 4).await,
            "storage-writer",
            "within the gap of the write before: on the writer thread"
        );
        storage.shutdown();
        drop(storage);
        let reopened = Storage::open(dir.path()).expect("reopen storage");
        for n in 1..=4 {
            assert!(visible(&reopened, n), "document {n} survives a clean shutdown");
        }
    }

    /// The decoded catalog entries carried from group to group follow the committed catalog: a group that
    /// fails takes its catalog changes with it, and drops and renames are seen by the next group.
    #[tokio::test]
    async fn the_catalog_carried_between_groups_is_the_committed_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let (a, b, c) = (
            Namespace::new("db", "a"),
            Namespace::new("db", "b"),
            Namespace::new("db", "c"),
        );
        let exists = |ns: &Namespace| {
            let ns = ns.clone();
            let storage = &storage;
            async move {
                storage
                    .write(false, move |w| w.collection(&ns).map(|m| m.is_some()))
                    .await
                    .expect("the job ran")
                    .expect("read the catalog")
            }
        };
        let created = {
            let a = a.clone();
            storage
                .write(false, move |w| w.create_collection(&a, doc! {}).map(drop))
                .await
        };
        assert!(matches!(created, Ok(Ok(()))), "{created:?}");
        assert!(exists(&a).await);
        // A group whose job creates a collection and then panics is rolled back whole.
        let failed = {
            let b = b.clone();
            storage
                .write(false, move |w| {
                    w.create_collection(&b, doc! {}).expect("created in the transaction");
                    assert!(w.collection(&b).expect("read").is_some());
                    panic!("the job fails after creating {b}");
                })
                .await
        };
        assert!(failed.is_err(), "the panicking job's group must fail");
        assert!(
            !exists(&b).await,
            "a rolled-back create must not be seen by the next group"
        );
        assert!(exists(&a).await);
        let renamed = {
            let (a, c) = (a.clone(), c.clone());
            storage
                .write(false, move |w| w.rename_collection(&a, &c, false, false))
                .await
        };
        assert!(matches!(renamed, Ok(Ok(()))), "{renamed:?}");
        assert!(!exists(&a).await, "renamed away");
        assert!(exists(&c).await);
        let dropped = {
            let c = c.clone();
            storage.write(false, move |w| w.drop_collection(&c)).await
        };
        assert!(matches!(dropped, Ok(Ok(true))), "{dropped:?}");
        assert!(!exists(&c).await, "dropped");
    }

    /// A durable write moves both positions, each with the entry's own wall time (what members report as
    /// `lastAppliedWallTime`), a flush makes the newest entry's the durable one, and a restart reads them back
    /// from the newest entry.
    #[tokio::test]
    async fn positions_carry_the_newest_entrys_wall_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let before = storage.clock().now_millis();
        let optime = storage
            .write(true, |w| w.noop(doc! {"msg": "durable"}))
            .await
            .expect("the job ran")
            .expect("logged");
        let after = storage.clock().now_millis();
        let positions = storage.positions();
        assert_eq!((positions.last_written, positions.last_durable), (optime, optime));
        assert!(
            (before..=after).contains(&positions.last_written_wall_ms),
            "the entry's wall time {} is within the write ({before}..={after})",
            positions.last_written_wall_ms
        );
        assert_eq!(positions.last_durable_wall_ms, positions.last_written_wall_ms);
        let durable = positions;

        let newer = storage
            .write(false, |w| w.noop(doc! {"msg": "in memory"}))
            .await
            .expect("the job ran")
            .expect("logged");
        let positions = storage.positions();
        assert_eq!(positions.last_written, newer);
        assert!(positions.last_written_wall_ms >= durable.last_written_wall_ms);
        storage.flush().await.expect("flush");
        let flushed = storage.positions();
        assert_eq!(
            (flushed.last_durable, flushed.last_durable_wall_ms),
            (newer, positions.last_written_wall_ms)
        );
        storage.shutdown();
        drop(storage);

        let reopened = Storage::open(dir.path()).expect("reopen storage");
        assert_eq!(
            reopened.positions(),
            flushed,
            "a restart reads the positions from the newest entry"
        );
        reopened.shutdown();
    }

    /// `j: false` writes in a row, after the first of which the sync thread hears of no more, are all made
    /// durable by its next fsync, within the journal interval and without a later write or flush; and the
    /// next round of such writes wakes it again.
    #[tokio::test]
    async fn unwaited_records_are_durable_within_the_journal_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        for round in 0..3 {
            let mut last = None;
            for i in 0..20 {
                let optime = storage
                    .write(false, move |w| w.noop(doc! {"round": round, "i": i}))
                    .await
                    .expect("the job ran")
                    .expect("logged");
                last = Some(optime);
            }
            let last = last.expect("written");
            wait_positions(&storage, &format!("round {round}'s last write is durable"), |p| {
                p.last_durable >= last
            })
            .await;
        }
        storage.shutdown();
    }

    #[test]
    fn lazy_records_arm_once_and_keep_the_newest() {
        use super::{LazyRecords, OpTime, UnwaitedRecord};
        let at = |secs: u32| UnwaitedRecord {
            at: OpTime::new(secs, 1, 1),
            wall_ms: i64::from(secs),
            ahead: secs.is_multiple_of(2),
        };
        let mut lazy = LazyRecords::default();
        assert!(!lazy.note(at(1)), "the first record goes through the channel");
        assert!(lazy.note(at(3)), "later ones wait in the slot");
        assert!(lazy.note(at(2)));
        assert_eq!(lazy.take(), Some(at(3)));
        assert!(
            !lazy.note(at(4)),
            "after a take the next record goes through the channel again"
        );
        assert_eq!(lazy.take(), None);
    }

    /// A secondary's batch that a write waits for goes to the sync thread at once; any other may wait for
    /// the thread's next fsync, and is published then as journaled ahead of its group.
    #[test]
    fn only_an_awaited_batch_is_fsynced_at_once() {
        use super::{SyncRequest, UnwaitedRecord};
        let batch = crate::storage::EncodedBatch::new(&inserts(7, 0..2)).expect("encode");
        let (at, wall_ms) = batch.newest();
        let unawaited = SyncRequest::prejournaled(&batch.clone().awaited(false));
        assert!(!unawaited.is_urgent());
        assert_eq!(
            unawaited.unwaited(),
            Some(UnwaitedRecord {
                at,
                wall_ms,
                ahead: true
            })
        );
        let awaited = SyncRequest::prejournaled(&batch.awaited(true));
        assert!(awaited.is_urgent(), "a write waits for this batch's fsync");
        assert_eq!(awaited.unwaited(), None);
    }

    /// Another member's inserts of `_id`s `ids` into `db.c`, at `secs` and term 1.
    fn inserts(secs: u32, ids: std::ops::Range<i32>) -> Vec<crate::storage::OplogEntry> {
        ids.map(|i| {
            crate::storage::OplogEntry::parse(doc! {
                "ts": bson::Timestamp { time: secs, increment: i as u32 + 1 },
                "t": 1i64,
                "op": "i",
                "ns": "db.c",
                "o": {"_id": i},
                "wall": bson::DateTime::from_millis(secs as i64 * 1000 + i as i64),
            })
            .expect("an insert entry")
        })
        .collect()
    }

    /// Applies `batch` the way a secondary does: journaled before the job runs; `awaited` when a write waits
    /// for its fsync.
    async fn apply_prejournaled(
        storage: &Storage,
        batch: Vec<crate::storage::OplogEntry>,
        panic: bool,
        awaited: bool,
    ) -> bool {
        let encoded = crate::storage::EncodedBatch::new(&batch)
            .expect("encode")
            .awaited(awaited);
        let appended = encoded.clone();
        let outcome = storage
            .apply_prejournaled(encoded, crate::storage::JobSize::Any, move |w| -> crate::Result<()> {
                for (i, entry) in batch.iter().enumerate() {
                    w.apply_entry(entry)?;
                    w.append_encoded(entry, appended.entry(i))?;
                }
                assert!(!panic, "a batch whose apply fails (expected by this test)");
                Ok(())
            })
            .await;
        matches!(outcome, Ok(Ok(())))
    }

    /// Waits until `check` holds for the positions, failing with `what` after ten seconds. It looks again at
    /// every change and every few milliseconds: `synced_ahead` alone moves without notifying the watchers.
    async fn wait_positions(storage: &Storage, what: &str, check: impl Fn(&crate::storage::Positions) -> bool) {
        let mut positions = storage.watch_positions();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check(&storage.positions()) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}: {:?}",
                storage.positions()
            );
            let _ = tokio::time::timeout(std::time::Duration::from_millis(5), positions.changed()).await;
        }
    }

    /// A secondary's batch is journaled before it is applied: it becomes durable once both are done, never
    /// while its apply has failed, and it survives a restart; whether its fsync is awaited (at once) or not
    /// (within the journal interval).
    #[tokio::test]
    async fn a_batch_journaled_before_its_apply_is_durable_only_once_applied() {
        for awaited in [true, false] {
            batch_journaled_before_its_apply(awaited).await;
        }
    }

    async fn batch_journaled_before_its_apply(awaited: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let first = inserts(100, 0..3);
        let first_newest = first[2].optime;
        assert!(
            apply_prejournaled(&storage, first, false, awaited).await,
            "the first batch applies"
        );
        wait_positions(&storage, "the first batch is durable", |p| {
            p.last_durable == first_newest
        })
        .await;

        let second = inserts(101, 3..6);
        let second_newest = second[2].optime;
        assert!(
            !apply_prejournaled(&storage, second.clone(), true, awaited).await,
            "the failing apply reports its error"
        );
        wait_positions(&storage, "the failed batch's record is on disk", |p| {
            p.synced_ahead.is_some_and(|(at, _)| at == second_newest)
        })
        .await;
        let positions = storage.positions();
        assert_eq!(
            (positions.last_written, positions.last_durable),
            (first_newest, first_newest),
            "a batch that was journaled but not applied is neither written nor durable"
        );

        assert!(
            apply_prejournaled(&storage, second, false, awaited).await,
            "the batch applies again"
        );
        wait_positions(&storage, "the second batch is durable", |p| {
            p.last_durable == second_newest
        })
        .await;
        assert_eq!(storage.positions().last_durable_wall_ms, 101_005);
        storage.shutdown();
        drop(storage);

        let reopened = Storage::open(dir.path()).expect("reopen storage");
        assert_eq!(reopened.positions().last_durable, second_newest);
        let snapshot = reopened.snapshot().expect("snapshot");
        let meta = snapshot
            .collection(&Namespace::new("db", "c"))
            .expect("catalog")
            .expect("db.c exists");
        for id in 0..6 {
            assert!(
                snapshot
                    .get_by_id(&meta, &bson::Bson::Int32(id))
                    .expect("read")
                    .is_some(),
                "document {id} survived the restart"
            );
        }
        drop(snapshot);
        reopened.shutdown();
    }

    /// A write job that panics fails its own command; the writer thread survives and serves the next job.
    #[tokio::test]
    async fn a_panicking_job_does_not_take_the_writer_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let failed = storage
            .write(false, |_| -> i32 {
                panic!("a job that panics (expected by this test)")
            })
            .await;
        assert!(failed.is_err(), "the panicking job reports an error");
        let answer = storage.write(false, |_| 42).await;
        assert_eq!(answer.ok(), Some(42), "the writer still serves jobs");
        storage.shutdown();
    }

    /// A document nested far past the limits that is already on disk (written by an older version) is refused
    /// when read, by readers and by the writer, instead of exhausting the stack while it is decoded.
    #[tokio::test]
    async fn deep_bytes_already_on_disk_are_refused_not_decoded() {
        // `{_id: 1, a: {a: ... {}}}` with 50,000 levels, built as bytes without recursion.
        let mut inner: Vec<u8> = vec![5, 0, 0, 0, 0];
        for _ in 0..50_000 {
            let len = (4 + 3 + inner.len() + 1) as i32;
            let mut outer = len.to_le_bytes().to_vec();
            outer.extend_from_slice(&[0x03, b'a', 0]);
            outer.extend_from_slice(&inner);
            outer.push(0);
            inner = outer;
        }
        let mut bytes = ((4 + 9 + 3 + inner.len() + 1) as i32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0x10, b'_', b'i', b'd', 0, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[0x03, b'a', 0]);
        bytes.extend_from_slice(&inner);
        bytes.push(0);

        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let ns = Namespace::new("db", "legacy");
        let meta = storage
            .write(false, move |w| {
                let meta = w.ensure_collection(&ns)?;
                let key = crate::storage::keystring::encode(&bson::Bson::Int32(1));
                let mut table = w.table(&crate::storage::docs_table_name(&meta))?;
                table
                    .insert(key.as_slice(), bytes.as_slice())
                    .map_err(|e| crate::Error::internal(e.to_string()))?;
                Ok::<_, crate::Error>(meta)
            })
            .await
            .expect("the job ran")
            .expect("raw bytes written");

        let snapshot = storage.snapshot().expect("snapshot");
        let read = snapshot.scan(&meta, None, |_| std::ops::ControlFlow::Continue(()));
        assert!(read.is_err(), "a reader refuses the document");
        let in_writer = storage
            .write(false, move |w| w.scan(&meta, |_| true, usize::MAX).map(|d| d.len()))
            .await;
        assert!(
            matches!(in_writer, Err(_) | Ok(Err(_))),
            "the writer refuses the document: {in_writer:?}"
        );
        assert_eq!(storage.write(false, |_| 7).await.ok(), Some(7));
        storage.shutdown();
    }

    /// An oplog entry (from a sync source, in initial sync or in a parallel batch) whose document would be
    /// nested past the limit is refused cleanly: skipped with a warning, nothing stored, the writer unharmed.
    #[tokio::test]
    async fn oplog_entries_past_the_depth_limit_are_skipped_not_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let nested = |levels: usize| {
            let mut doc = doc! {"a": 1};
            for _ in 1..levels {
                doc = doc! {"a": doc};
            }
            doc
        };
        let mut too_deep = nested(181);
        too_deep.insert("_id", 1);
        let ts = bson::Timestamp { time: 1, increment: 1 };
        let parse = |entry| crate::storage::OplogEntry::parse(entry).expect("an entry with ts");
        let insert = parse(doc! {"op": "i", "ns": "db.c", "o": too_deep.clone(), "ts": ts});
        let base = parse(doc! {"op": "i", "ns": "db.c", "o": {"_id": 2, "x": 1}, "ts": ts});
        let update = parse(doc! {"op": "u", "ns": "db.c", "o2": {"_id": 2},
        "o": {"$v": 2, "diff": {"u": {"x": nested(180)}}}, "ts": ts});
        let ns = Namespace::new("db", "c");
        let (applied, stored) = storage
            .write(false, move |w| {
                let applied = (w.apply_entry(&insert)?, w.apply_entry(&base)?, w.apply_entry(&update)?);
                w.install_folded(&ns, &bson::Bson::Int32(3), Some(too_deep), &[])?;
                let meta = w.collection(&ns)?.expect("created by the applied insert");
                let stored = w.scan(&meta, |_| true, usize::MAX)?;
                Ok::<_, crate::Error>((applied, stored))
            })
            .await
            .expect("the job ran")
            .expect("refusals are not errors of the batch");
        assert_eq!(
            applied,
            (false, true, false),
            "the deep insert and the deepening update are skipped"
        );
        assert_eq!(stored, vec![doc! {"_id": 2, "x": 1}]);
        assert_eq!(storage.write(false, |_| 7).await.ok(), Some(7));
        storage.shutdown();
    }

    /// The writer refuses to store a document deeper than the storage limit, whoever asks.
    #[tokio::test]
    async fn the_writer_refuses_documents_past_the_depth_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open storage");
        let nested = |levels: usize| {
            let mut doc = doc! {"a": 1};
            for _ in 1..levels {
                doc = doc! {"a": doc};
            }
            doc.insert("_id", levels as i64);
            doc
        };
        let (at_limit, too_deep) = (nested(180), nested(181));
        let result = storage
            .write(false, move |w| {
                let meta = w.ensure_collection(&Namespace::new("db", "deep"))?;
                w.insert(&meta, at_limit, None)?;
                let refused = w.insert(&meta, too_deep, None);
                let docs = w.scan(&meta, |_| true, usize::MAX)?;
                Ok::<_, crate::Error>((refused.map_err(|e| e.code), docs.len()))
            })
            .await
            .expect("the job ran")
            .expect("the job's own steps succeeded");
        assert_eq!(result.0, Err(15), "a 181-level document is Overflow");
        assert_eq!(result.1, 1, "only the document at the limit is stored");
        storage.shutdown();
    }
}
