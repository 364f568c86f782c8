//! The history recorder: assigns indices and times and streams every event to `history.jsonl`, keeping a copy
//! in memory for the checkers and the EDN export.
//!
//! Events are written to a buffer that a flusher thread writes out every [`FLUSH_INTERVAL`] (and
//! [`Recorder::snapshot`] and dropping the recorder at once), so a run interrupted by anything short of SIGKILL
//! of the harness leaves the whole history, and even that loses only the last interval's events. Writing each
//! event with a system call of its own, under the lock, cost more than a tenth of the harness's CPU at 16,000
//! operations per second (#14).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use faultline_checker::history::{History, Op, OpType, Process};
use serde_json::Value;

/// How long a recorded event may wait in the buffer before it reaches the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// The buffer's size: it is also written out whenever it fills.
const BUFFER_BYTES: usize = 1 << 20;

struct State {
    out: BufWriter<File>,
    ops: Vec<Op>,
    write_error: Option<String>,
}

impl State {
    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.write_error.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Records the events of one run.
pub struct Recorder {
    started: Instant,
    state: Arc<Mutex<State>>,
}

impl Recorder {
    /// Creates `path`, starts the clock and the flusher.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let state = Arc::new(Mutex::new(State {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            ops: Vec::new(),
            write_error: None,
        }));
        let weak = Arc::downgrade(&state);
        std::thread::Builder::new()
            .name("history-flush".into())
            .spawn(move || flush_until_dropped(&weak))
            .context("cannot start the history flusher")?;
        Ok(Recorder {
            started: Instant::now(),
            state,
        })
    }

    /// When the run started (time 0 of the history).
    pub fn started(&self) -> Instant {
        self.started
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one event; returns its index.
    pub fn record(
        &self,
        op_type: OpType,
        process: Process,
        f: &str,
        value: Value,
        node: Option<String>,
        error: Option<Value>,
    ) -> u64 {
        let mut state = self.lock();
        let index = state.ops.len() as u64;
        // Taken under the lock so times never decrease along the file.
        let time = self.started.elapsed().as_nanos() as u64;
        let mut op = Op::new(index, time, op_type, process, f, value);
        op.node = node.map(Into::into);
        op.error = error.map(Box::new);
        let written = serde_json::to_writer(&mut state.out, &op)
            .map_err(std::io::Error::from)
            .and_then(|()| state.out.write_all(b"\n"));
        if let Err(e) = written {
            state.write_error.get_or_insert_with(|| e.to_string());
        }
        state.ops.push(op);
        index
    }

    /// The history so far (all of it written to the file), and the first write error, if any.
    pub fn snapshot(&self) -> (History, Option<String>) {
        let mut state = self.lock();
        state.flush();
        (History::from_ops(state.ops.clone()), state.write_error.clone())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.lock().flush();
    }
}

/// The flusher thread: writes the buffer out every interval until the recorder is gone.
fn flush_until_dropped(state: &Weak<Mutex<State>>) {
    loop {
        std::thread::sleep(FLUSH_INTERVAL);
        let Some(state) = state.upgrade() else { return };
        state.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }
}

#[cfg(test)]
mod tests {
    use faultline_checker::formats::jsonl;
    use serde_json::json;

    use super::*;

    #[test]
    fn events_are_streamed_in_index_order_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).expect("create");
        recorder.record(
            OpType::Invoke,
            Process::Client(0),
            "write",
            json!({"key": 1, "value": 1}),
            None,
            None,
        );
        recorder.record(
            OpType::Invoke,
            Process::nemesis(),
            "kill",
            json!({"target": "primary"}),
            None,
            None,
        );
        recorder.record(
            OpType::Ok,
            Process::Client(0),
            "write",
            json!({"key": 1, "value": 1}),
            Some("n1".into()),
            None,
        );
        // Streamed: the flusher writes the events out while the recorder is still recording.
        let deadline = Instant::now() + Duration::from_secs(10);
        let text = loop {
            let text = std::fs::read_to_string(&path).expect("read");
            let lines = text.matches('\n').count();
            if lines == 3 {
                break text;
            }
            assert!(
                Instant::now() < deadline,
                "the flusher wrote {lines} of 3 events in 10 s"
            );
            std::thread::yield_now();
        };
        let history = jsonl::read(text.as_bytes()).expect("valid jsonl");
        assert_eq!(history.len(), 3);
        assert!(
            history
                .ops
                .windows(2)
                .all(|w| w[0].index < w[1].index && w[0].time <= w[1].time)
        );
        assert_eq!(history.ops[2].node.as_deref(), Some("n1"));
        assert_eq!(recorder.snapshot().0.ops, history.ops);
    }
}
