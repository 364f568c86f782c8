//! The native history format: JSON Lines, one event per line, streamed.
//!
//! Fields (ARCHITECTURE §5): `index` (position, from 0), `time` (ns since start, monotonic), `type`
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

use std::borrow::Cow;
use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::Value;

use super::FormatError;
use super::jsonl_value::{self, WireValue};
use super::lines::Lines;
use crate::history::{History, Interner, Op, OpType, Process};

#[derive(Deserialize)]
struct RawOp<'a> {
    index: Option<u64>,
    time: Option<u64>,
    #[serde(rename = "type")]
    op_type: OpType,
    #[serde(deserialize_with = "jsonl_value::process")]
    process: Process,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(default)]
    value: WireValue,
    #[serde(default, borrow)]
    node: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<Value>,
}

/// One JSONL line as parsed, before its names and key are shared: what the loaded reader turns into an
/// [`Op`] and the streamed checker (`crate::stream`) into its compact form.
#[derive(Debug, PartialEq)]
pub struct LineEvent<'a> {
    /// `index`, if the line gives it.
    pub index: Option<u64>,
    /// `time`, if the line gives it.
    pub time: Option<u64>,
    /// `type`.
    pub op_type: OpType,
    /// `process`.
    pub process: Process,
    /// `f`.
    pub f: Cow<'a, str>,
    /// The key of a keyed value `{"key": k, "value": v}`.
    pub key: Option<Value>,
    /// The value, without the key.
    pub value: Value,
    /// `node`.
    pub node: Option<Cow<'a, str>>,
    /// `error`.
    pub error: Option<Value>,
}

/// Parses one non-blank line (number `line_no`, for errors) into its event: lines in the writer's exact
/// form take a fast path ([`super::jsonl_canonical`]), the others serde's, with the same result.
pub fn parse_line(line_no: usize, line: &str) -> Result<LineEvent<'_>, FormatError> {
    match super::jsonl_canonical::event(line) {
        Some(event) => Ok(event),
        None => parse_general(line_no, line),
    }
}

/// Parses one line with serde: any field order, whitespace, escapes, optional fields.
pub(super) fn parse_general(line_no: usize, line: &str) -> Result<LineEvent<'_>, FormatError> {
    let raw: RawOp = serde_json::from_str(line).map_err(|e| json_error(line_no, line, &e))?;
    let WireValue { key, value } = raw.value;
    Ok(LineEvent {
        index: raw.index,
        time: raw.time,
        op_type: raw.op_type,
        process: raw.process,
        f: raw.f,
        key,
        value,
        node: raw.node,
        error: raw.error,
    })
}

/// Reads a JSONL history line by line: only one line of text is held at a time, so the file's size is not
/// a limit; the history itself is kept compact (shared names and keys, see [`Op`]).
pub fn read(reader: impl BufRead) -> Result<History, FormatError> {
    let mut history = History::new();
    let mut interner = Interner::default();
    let mut lines = Lines::new(reader);
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_line(line_no, line)?;
        let position = history.len() as u64;
        let op = Op {
            index: event.index.unwrap_or(position),
            time: event.time.unwrap_or(position),
            op_type: event.op_type,
            process: event.process,
            f: interner.name(&event.f),
            key: event.key.map(|k| interner.key(k)),
            value: event.value,
            node: event.node.map(|n| interner.name(&n)),
            error: event.error.map(Box::new),
        };
        history.push(op, line_no);
    }
    Ok(history)
}

/// Explains why a line is not a JSON op, in terms of the file rather than of the JSON parser.
fn json_error(line_no: usize, line: &str, e: &serde_json::Error) -> FormatError {
    let text = line.trim_start();
    let message = if text.starts_with('[') {
        "a JSON array, not JSON Lines (expected one op object per line)".to_string()
    } else if !text.starts_with('{') {
        format!(
            "not a JSON op object (starts with {:?})",
            text.chars().next().unwrap_or(' ')
        )
    } else if e.classify() == serde_json::error::Category::Eof {
        format!("the op ends early at column {} (truncated line?)", e.column())
    } else {
        let detail = e.to_string();
        let detail = detail.split(" at line ").next().unwrap_or_default();
        format!("{detail} (column {})", e.column())
    };
    FormatError::at(line_no, message)
}

/// Writes a history as JSONL.
pub fn write(history: &History, mut out: impl Write) -> std::io::Result<()> {
    for op in &history.ops {
        write_op(op, &mut out)?;
    }
    Ok(())
}

/// Writes one event as a JSONL line (for writers that stream events rather than hold a history).
pub fn write_op(op: &Op, mut out: impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut out, op)?;
    out.write_all(b"\n")
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

    fn message(text: &[u8]) -> String {
        read(text).expect_err("not a history").to_string()
    }

    #[test]
    fn files_that_are_not_histories_get_errors_naming_the_line() {
        assert_eq!(
            message(b"\x89PNG\r\n\x1a\n\x00\x00"),
            "line 1: byte 1 is not UTF-8 text: a binary file, not a history"
        );
        assert_eq!(
            message(b"[{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}]\n"),
            "line 1: a JSON array, not JSON Lines (expected one op object per line)"
        );
        let truncated = b"{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n{\"type\":\"ok\",\"proc";
        assert_eq!(
            message(truncated),
            "line 2: the op ends early at column 18 (truncated line?)"
        );
        assert_eq!(
            message(b"\n\nhello world\n"),
            "line 3: not a JSON op object (starts with 'h')"
        );
        let missing = message(b"{\"type\":\"invoke\",\"f\":\"read\"}\n");
        assert!(missing.starts_with("line 1: missing field `process`"), "{missing}");
        assert!(read(&b""[..]).expect("empty is no error here").is_empty());
    }

    #[test]
    fn keyed_values_are_split_and_share_their_key() {
        let text = "{\"type\":\"invoke\",\"process\":1,\"f\":\"write\",\"value\":{\"key\":5,\"value\":2}}\n\
                    {\"type\":\"ok\",\"process\":1,\"f\":\"write\",\"value\":{\"key\":5,\"value\":2}}\n";
        let h = read(text.as_bytes()).expect("valid");
        assert_eq!(h.ops[0].value, json!(2));
        assert_eq!(h.ops[0].key, h.ops[1].key);
        assert_eq!(h.ops[1].key.as_ref().map(|k| k.value().clone()), Some(json!(5)));
        let mut out = Vec::new();
        write(&h, &mut out).expect("write");
        assert!(String::from_utf8_lossy(&out).contains("\"value\":{\"key\":5,\"value\":2}"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let text =
            "{\"type\":\"invoke\",\"process\":1,\"f\":\"read\"}\n{\"type\":\"bogus\",\"process\":1,\"f\":\"read\"}\n";
        let err = read(text.as_bytes()).expect_err("bad type");
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }
}
