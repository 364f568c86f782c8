//! Jepsen EDN histories: `history.edn` (one op map per line), Knossos data files (one vector or list of op
//! maps, with `;` comments) and Porcupine kv logs (one map per line with a top-level `:key`).
//!
//! An op map has `:process` (integer, or a keyword such as `:nemesis`), `:type`, `:f`, `:value`, and
//! optionally `:index`, `:time`, `:node`, `:error`. A top-level `:key k` wraps the value as
//! `{"key": k, "value": v}`, the same shape JSONL uses for multi-key workloads.

use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use super::FormatError;
use super::edn_value::{EdnReader, write_key, write_value};
use crate::history::{History, Op, OpType, Process};

/// Reads an EDN history.
pub fn read(mut reader: impl BufRead) -> Result<History, FormatError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    let mut edn = EdnReader::new(&text, 1);
    let close = match edn.skip_blank() {
        Some(open @ (b'[' | b'(')) => {
            edn.expect(open)?;
            Some(if open == b'[' { b']' } else { b')' })
        }
        _ => None,
    };
    let mut history = History::new();
    loop {
        match (edn.skip_blank(), close) {
            (None, None) => return Ok(history),
            (None, Some(c)) => {
                return Err(FormatError::at(edn.line(), format!("missing closing '{}'", c as char)));
            }
            (Some(c), Some(close)) if c == close => {
                edn.expect(close)?;
                return match edn.skip_blank() {
                    None => Ok(history),
                    Some(_) => Err(FormatError::at(edn.line(), "text after the closing bracket")),
                };
            }
            _ => {}
        }
        let line = edn.line();
        let value = edn.read_value()?;
        let op = op_from_value(value, history.len() as u64).map_err(|m| FormatError::at(line, m))?;
        history.push(op, line);
    }
}

impl From<super::edn_value::EdnError> for FormatError {
    fn from(e: super::edn_value::EdnError) -> FormatError {
        FormatError::at(e.line, e.message)
    }
}

/// Builds an op from a parsed op map; `position` supplies missing `index`/`time`.
pub fn op_from_value(value: Value, position: u64) -> Result<Op, String> {
    let Value::Object(mut map) = value else {
        return Err("expected an op map".into());
    };
    let op_type = match map.get("type").and_then(Value::as_str) {
        Some(t) => OpType::from_name(t).ok_or_else(|| format!("unknown :type {t:?}"))?,
        None => return Err("op map without :type".into()),
    };
    let process = match map.remove("process") {
        Some(Value::Number(n)) => Process::Client(n.as_u64().ok_or("negative or fractional :process")?),
        Some(Value::String(name)) => Process::Named(name),
        _ => return Err("op map without an integer or keyword :process".into()),
    };
    let f = match map.remove("f") {
        Some(Value::String(f)) => f,
        _ => return Err("op map without :f".into()),
    };
    let mut value = map.remove("value").unwrap_or(Value::Null);
    if let Some(key) = map.remove("key") {
        value = keyed(key, value);
    }
    Ok(Op {
        index: map.get("index").and_then(Value::as_u64).unwrap_or(position),
        time: map.get("time").and_then(Value::as_u64).unwrap_or(position),
        op_type,
        process,
        f,
        value,
        node: map
            .remove("node")
            .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_string)),
        error: map.remove("error"),
    })
}

fn keyed(key: Value, value: Value) -> Value {
    let mut map = Map::new();
    map.insert("key".into(), key);
    map.insert("value".into(), value);
    Value::Object(map)
}

/// Writes a history as EDN, one op map per line (Jepsen's `history.edn` layout).
pub fn write(history: &History, mut out: impl Write) -> std::io::Result<()> {
    let mut line = String::new();
    for op in &history.ops {
        line.clear();
        line.push_str(&format!(
            "{{:index {}, :time {}, :type :{}, :process ",
            op.index,
            op.time,
            op.op_type.name()
        ));
        match &op.process {
            Process::Client(n) => line.push_str(&n.to_string()),
            Process::Named(name) => write_key(&mut line, name),
        }
        line.push_str(", :f ");
        write_key(&mut line, &op.f);
        line.push_str(", :value ");
        write_value(&mut line, &op.value);
        if let Some(node) = &op.node {
            line.push_str(", :node ");
            write_value(&mut line, &Value::String(node.clone()));
        }
        if let Some(error) = &op.error {
            line.push_str(", :error ");
            write_value(&mut line, error);
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_knossos_vectors_with_comments_and_nemesis() {
        let text = "[{:process 4, :type :invoke, :f :write, :value 2}\n ; note\n {:process :nemesis,\n  :type :info, :f :start, :value nil}\n]\n";
        let h = read(text.as_bytes()).expect("valid");
        assert_eq!(h.len(), 2);
        assert_eq!(h.ops[1].process, Process::nemesis());
        assert_eq!(h.lines, vec![1, 3]);
    }

    #[test]
    fn reads_kv_lines_into_keyed_values() {
        let text = "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}\n";
        let h = read(text.as_bytes()).expect("valid");
        assert_eq!(h.ops[0].value, json!({"key": "0", "value": "x 9 0 y"}));
    }

    #[test]
    fn round_trips_through_the_writer() {
        let text = "{:process 1, :type :invoke, :f :cas, :value {:key 3, :value [1 2]}, :node \"n1\"}\n\
                    {:process :nemesis, :type :info, :f :kill, :value \"n1\", :error [:timeout nil]}\n";
        let h = read(text.as_bytes()).expect("valid");
        let mut out = Vec::new();
        write(&h, &mut out).expect("write");
        assert_eq!(read(out.as_slice()).expect("re-read").ops, h.ops);
    }

    #[test]
    fn errors_name_line_and_problem() {
        let err = read("[{:process 1, :type :invoke, :f :read}\n {:process 1, :type :bogus, :f :read}]".as_bytes())
            .expect_err("bad type");
        assert_eq!(err.to_string(), "line 2: unknown :type \"bogus\"");
        assert!(read("[{:process 1 :type :ok :f :read}".as_bytes()).is_err());
    }
}
