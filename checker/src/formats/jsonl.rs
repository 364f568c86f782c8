//! The native history format: JSON Lines, one event per line, streamed.
//!
//! Fields (DESIGN §6): `index` (position, from 0), `time` (ns since start, monotonic), `type`
//! (`invoke|ok|fail|info`), `process` (integer, or `"nemesis"`), `f`, `value`, and optionally `node` (the
//! member that served it) and `error`. Example lines:
//!
//! ```text
//! {"index":0,"time":1200,"type":"invoke","process":3,"f":"cas","value":{"key":7,"value":[1,2]}}
//! {"index":1,"time":3400,"type":"ok","process":3,"f":"cas","value":{"key":7,"value":[1,2]},"node":"n2"}
//! {"index":2,"time":5000,"type":"info","process":"nemesis","f":"partition","value":"isolate n1"}
//! ```
//!
//! Register values: `read` → `null | int`, `write` → `int`, `cas` → `[from, to]`; multi-key workloads wrap
//! each value as `{"key": k, "value": v}`. `index` and `time` may be omitted on input (they default to the
//! line's position among events). Blank lines are skipped.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::Value;

use super::FormatError;
use crate::history::{History, Op, OpType, Process};

#[derive(Deserialize)]
struct RawOp {
    index: Option<u64>,
    time: Option<u64>,
    #[serde(rename = "type")]
    op_type: OpType,
    process: Process,
    f: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a JSONL history line by line.
pub fn read(mut reader: impl BufRead) -> Result<History, FormatError> {
    let mut history = History::new();
    let mut line = String::new();
    let mut line_no = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(history);
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawOp = serde_json::from_str(&line).map_err(|e| FormatError::at(line_no, e.to_string()))?;
        let position = history.len() as u64;
        let op = Op {
            index: raw.index.unwrap_or(position),
            time: raw.time.unwrap_or(position),
            op_type: raw.op_type,
            process: raw.process,
            f: raw.f,
            value: raw.value,
            node: raw.node,
            error: raw.error,
        };
        history.push(op, line_no);
    }
}

/// Writes a history as JSONL.
pub fn write(history: &History, mut out: impl Write) -> std::io::Result<()> {
    for op in &history.ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_defaults_index_and_time() {
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\",\"value\":null}\n\n\
                    {\"index\":1,\"time\":9,\"type\":\"ok\",\"process\":1,\"f\":\"read\",\"value\":3,\"node\":\"n1\"}\n\
                    {\"type\":\"info\",\"process\":\"nemesis\",\"f\":\"kill\",\"value\":\"n1\"}\n";
        let h = read(text.as_bytes()).expect("valid");
        assert_eq!(h.len(), 3);
        assert_eq!(h.ops[0].time, 0);
        assert_eq!(h.ops[1].node.as_deref(), Some("n1"));
        assert_eq!(h.ops[2].process, Process::nemesis());
        assert_eq!(h.lines, vec![1, 3, 4]);
        let mut out = Vec::new();
        write(&h, &mut out).expect("write");
        let again = read(out.as_slice()).expect("re-read");
        assert_eq!(again.ops, h.ops);
        assert_eq!(h.ops[1].value, json!(3));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let text =
            "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n{\"type\":\"bogus\",\"process\":1,\"f\":\"read\"}\n";
        let err = read(text.as_bytes()).expect_err("bad type");
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
