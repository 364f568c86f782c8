//! The history recorder: assigns indices and times and streams every event to `history.jsonl` as it happens
//! (one flushed line per event, so an interrupted run can still be checked), keeping a copy in memory for the
//! checkers and the EDN export.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use faultline_checker::history::{History, Op, OpType, Process};
use serde_json::Value;

struct State {
    out: BufWriter<File>,
    ops: Vec<Op>,
    write_error: Option<String>,
}

/// Records the events of one run.
pub struct Recorder {
    started: Instant,
    state: Mutex<State>,
}

impl Recorder {
    /// Creates `path` and starts the clock.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Recorder {
            started: Instant::now(),
            state: Mutex::new(State {
                out: BufWriter::new(file),
                ops: Vec::new(),
                write_error: None,
            }),
        })
    }

    /// When the run started (time 0 of the history).
    pub fn started(&self) -> Instant {
        self.started
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
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let index = state.ops.len() as u64;
        // Taken under the lock so times never decrease along the file.
        let time = self.started.elapsed().as_nanos() as u64;
        let mut op = Op::new(index, time, op_type, process, f, value);
        op.node = node.map(Into::into);
        op.error = error.map(Box::new);
        let written = serde_json::to_writer(&mut state.out, &op)
            .map_err(std::io::Error::from)
            .and_then(|()| state.out.write_all(b"\n"))
            .and_then(|()| state.out.flush());
        if let Err(e) = written {
            state.write_error.get_or_insert_with(|| e.to_string());
        }
        state.ops.push(op);
        index
    }

    /// The history so far, and the first write error, if any.
    pub fn snapshot(&self) -> (History, Option<String>) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (History::from_ops(state.ops.clone()), state.write_error.clone())
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
        // Streamed: readable before the recorder is dropped.
        let text = std::fs::read_to_string(&path).expect("read");
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
