//! Client workers: each worker thread runs one logical process at a time against the cluster, drawing
//! operations from the shared generator, recording the invocation and the completion. After an `info`
//! completion the thread takes a new process id (old id + concurrency, as Jepsen does) and a new client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use faultline_checker::history::{OpType, Process};
use faultline_workloads::Workload;
use faultline_workloads::client::{ClientSpec, Endpoints, Session};
use faultline_workloads::generator::{BoxGen, Context, Next};
use faultline_workloads::rng::Rng;
use tokio::sync::watch;

use crate::recorder::Recorder;

/// Completed client operations by type (for the progress line and the summary).
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counters {
    /// (ok, fail, info).
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// What every worker shares.
pub struct ClientEnv {
    pub workload: Workload,
    pub client: ClientSpec,
    pub endpoints: Endpoints,
    pub concurrency: usize,
    pub recorder: Arc<Recorder>,
    pub counters: Arc<Counters>,
}

struct Source {
    generator: BoxGen,
    rng: Rng,
}

/// Runs one phase: `concurrency` workers draw from `generator` until it is done or `stop` turns true.
/// `processes[t]` is thread t's current process id, updated in place.
pub async fn run_phase(
    env: Arc<ClientEnv>,
    generator: BoxGen,
    rng: Rng,
    stop: watch::Receiver<bool>,
    processes: &mut [u64],
) {
    let source = Arc::new(std::sync::Mutex::new(Source { generator, rng }));
    let started = Instant::now();
    let mut handles = Vec::new();
    for (thread, process) in processes.iter().enumerate() {
        let worker = worker(thread, *process, env.clone(), source.clone(), started, stop.clone());
        handles.push(tokio::spawn(worker));
    }
    for (thread, handle) in handles.into_iter().enumerate() {
        if let Ok(process) = handle.await {
            processes[thread] = process;
        }
    }
}

fn next_op(source: &std::sync::Mutex<Source>, ctx: &Context) -> Next {
    let mut source = source.lock().unwrap_or_else(|p| p.into_inner());
    let Source { generator, rng } = &mut *source;
    generator.next(ctx, rng)
}

async fn worker(
    thread: usize,
    mut process: u64,
    env: Arc<ClientEnv>,
    source: Arc<std::sync::Mutex<Source>>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let mut session: Option<Session> = None;
    while !*stop.borrow() {
        let ctx = Context {
            elapsed: started.elapsed(),
            thread,
        };
        let op = match next_op(&source, &ctx) {
            Next::Done => break,
            Next::Wait(at) => {
                let due = tokio::time::Instant::from_std(started + at);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                continue;
            }
            Next::Op(op) => op,
        };
        if session.is_none() {
            match Session::connect(&env.client, &env.endpoints, thread).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    tracing::warn!(thread, "cannot create a client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(client) = session.as_ref() else { continue };
        let who = Process::Client(process);
        env.recorder
            .record(OpType::Invoke, who.clone(), &op.f, op.value.clone(), None, None);
        let completion = tokio::select! {
            completion = env.workload.invoke(client, &op) => completion,
            // Interrupted mid-operation: the invocation stays open (indeterminate) in the history.
            _ = stop.wait_for(|s| *s) => break,
        };
        let counter = match completion.op_type {
            OpType::Ok => &env.counters.ok,
            OpType::Fail => &env.counters.fail,
            _ => &env.counters.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        env.recorder.record(
            completion.op_type,
            who,
            &op.f,
            completion.value,
            completion.node,
            completion.error,
        );
        if completion.op_type == OpType::Info {
            process += env.concurrency as u64;
            if let Some(old) = session.take() {
                tokio::spawn(old.close());
            }
        }
    }
    if let Some(old) = session.take() {
        old.close().await;
    }
    process
}
