//! Jepsen EDN histories: `history.edn` (one op map per line), Knossos data files (one vector or list of op
//! maps, with `;` comments) and Porcupine kv logs (one map per line with a top-level `:key`).
//!
//! An op map has `:process` (integer, or a keyword such as `:nemesis`), `:type`, `:f`, `:value`, and
//! optionally `:index`, `:time`, `:node`, `:error`. A top-level `:key k`, a value `{:key k, :value v}` and
//! (Jepsen's `independent` checker) a value tuple `[k v]` all give the op key `k` and value `v`, as JSONL's
//! `{"key": k, "value": v}` does. Tuples are detected per history ([`Tuples`]). The whole text is read
//! at once (EDN files are Knossos-sized; JSONL is the streaming format).

use std::io::{BufRead, Write};

use serde_json::Value;

use super::FormatError;
use super::edn_value::{EdnReader, write_key, write_value};
use super::lines::read_text;
use crate::history::{History, Interner, Op, OpType, Process, split_keyed};

/// How values shaped like Jepsen's independent tuples `[k v]` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuples {
    /// Keyed when every client op's value is a pair whose first element is a number or a string/keyword
    /// (so a read invoked with `nil`, a write of a number or a CAS transaction rules it out); plain otherwise.
    Detect,
    /// Every client op's value is a `[k v]` tuple (Jepsen's `independent` checker); others are errors.
    Keyed,
    /// Values are taken as they are.
    Plain,
}

/// Reads an EDN history, detecting independent `[k v]` tuples (see [`Tuples::Detect`]).
pub fn read(reader: impl BufRead) -> Result<History, FormatError> {
    read_with(reader, Tuples::Detect)
}

/// Reads an EDN history, with independent tuples read as `tuples` says.
pub fn read_with(reader: impl BufRead, tuples: Tuples) -> Result<History, FormatError> {
    let text = read_text(reader)?;
    let mut interner = Interner::default();
    let mut history = read_ops(&text, &mut interner)?;
    let keyed = match tuples {
        Tuples::Plain => false,
        Tuples::Keyed => true,
        Tuples::Detect => looks_independent(&history),
    };
    if keyed {
        key_tuples(&mut history, &mut interner)?;
    }
    Ok(history)
}

fn read_ops(text: &str, interner: &mut Interner) -> Result<History, FormatError> {
    let mut edn = EdnReader::new(text, 1);
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
                let message = format!("missing closing '{}' (truncated file?)", c as char);
                return Err(FormatError::at(edn.line(), message));
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
        let op = op_from_value(value, history.len() as u64, interner).map_err(|m| FormatError::at(line, m))?;
        history.push(op, line);
    }
}

impl From<super::edn_value::EdnError> for FormatError {
    fn from(e: super::edn_value::EdnError) -> FormatError {
        FormatError::at(e.line, e.message)
    }
}

/// Builds an op from a parsed op map; `position` supplies missing `index`/`time`.
pub fn op_from_value(value: Value, position: u64, interner: &mut Interner) -> Result<Op, String> {
    let Value::Object(mut map) = value else {
        return Err(format!("expected an op map, found {}", kind_of(&value)));
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
        Some(Value::String(f)) => interner.name(&f),
        _ => return Err("op map without :f".into()),
    };
    let value = map.remove("value").unwrap_or(Value::Null);
    let (key, value) = match map.remove("key") {
        Some(key) => (Some(key), value),
        None => split_keyed(value),
    };
    Ok(Op {
        index: map.get("index").and_then(Value::as_u64).unwrap_or(position),
        time: map.get("time").and_then(Value::as_u64).unwrap_or(position),
        op_type,
        process,
        f,
        key: key.map(|k| interner.key(k)),
        value,
        node: map
            .remove("node")
            .map(|n| interner.name(&n.as_str().map_or_else(|| n.to_string(), str::to_string))),
        error: map.remove("error").map(Box::new),
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string or keyword",
        Value::Array(_) => "a vector or list",
        Value::Object(_) => "a map",
    }
}

/// The `[k v]` pair of an independent tuple: a number, string or keyword key and any value.
fn as_tuple(value: &Value) -> Option<(&Value, &Value)> {
    match value.as_array()?.as_slice() {
        [k @ (Value::Number(_) | Value::String(_)), v] => Some((k, v)),
        _ => None,
    }
}

fn looks_independent(history: &History) -> bool {
    let mut clients = history.ops.iter().filter(|o| o.process.client().is_some()).peekable();
    clients.peek().is_some() && clients.all(|o| o.key.is_none() && as_tuple(&o.value).is_some())
}

fn key_tuples(history: &mut History, interner: &mut Interner) -> Result<(), FormatError> {
    for (i, op) in history.ops.iter_mut().enumerate() {
        if op.process.client().is_none() || op.key.is_some() {
            continue;
        }
        let Value::Array(pair) = std::mem::take(&mut op.value) else {
            return Err(FormatError::at(
                history.lines[i],
                "expected an independent [key value] tuple",
            ));
        };
        let [key, value] = <[Value; 2]>::try_from(pair)
            .map_err(|_| FormatError::at(history.lines[i], "expected an independent [key value] tuple"))?;
        op.key = Some(interner.key(key));
        op.value = value;
    }
    Ok(())
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
        write_value(&mut line, &op.wire_value());
        if let Some(node) = &op.node {
            line.push_str(", :node ");
            write_value(&mut line, &Value::String(node.to_string()));
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
        assert_eq!(h.ops[0].key.as_ref().map(|k| k.value().clone()), Some(json!("0")));
        assert_eq!(h.ops[0].value, json!("x 9 0 y"));
    }

    const INDEPENDENT: &str = "{:process 0, :type :invoke, :f :cas, :value [3 [1 2]]}\n\
        {:process :nemesis, :type :info, :f :start, :value nil}\n\
        {:process 1, :type :invoke, :f :read, :value [4 nil]}\n\
        {:process 0, :type :ok, :f :cas, :value [3 [1 2]]}\n\
        {:process 1, :type :ok, :f :read, :value [4 5]}\n";

    #[test]
    fn independent_tuples_read_like_keyed_maps() {
        let h = read(INDEPENDENT.as_bytes()).expect("valid");
        let keys: Vec<_> = h
            .ops
            .iter()
            .map(|o| o.key.as_ref().map(|k| k.value().clone()))
            .collect();
        assert_eq!(
            keys,
            [Some(json!(3)), None, Some(json!(4)), Some(json!(3)), Some(json!(4))]
        );
        assert_eq!(h.ops[0].value, json!([1, 2]));
        assert_eq!(h.ops[4].value, json!(5));
        let as_maps = INDEPENDENT
            .replace("[3 [1 2]]", "{:key 3 :value [1 2]}")
            .replace("[4 ", "{:key 4 :value ");
        let as_maps = as_maps
            .replace(":value nil]}", ":value nil}}")
            .replace(":value 5]}", ":value 5}}");
        let same = read(as_maps.as_bytes()).expect("valid maps");
        assert_eq!(same.ops, h.ops);
        let mut out = Vec::new();
        write(&h, &mut out).expect("write");
        assert_eq!(read(out.as_slice()).expect("re-read").ops, h.ops);
    }

    #[test]
    fn plain_pairs_stay_plain_unless_asked() {
        // A knossos CAS-register history: reads are invoked with nil, so CAS pairs are not tuples.
        let text =
            "[{:process 0, :type :invoke, :f :cas, :value [1 2]} {:process 1, :type :invoke, :f :read, :value nil}]";
        let h = read(text.as_bytes()).expect("valid");
        assert!(h.ops.iter().all(|o| o.key.is_none()));
        assert_eq!(h.ops[0].value, json!([1, 2]));
        let err = read_with(text.as_bytes(), Tuples::Keyed).expect_err("nil is no tuple");
        assert_eq!(err.to_string(), "line 1: expected an independent [key value] tuple");
        let keyed = read_with(INDEPENDENT.as_bytes(), Tuples::Plain).expect("valid");
        assert_eq!(keyed.ops[0].value, json!([3, [1, 2]]));
    }

    #[test]
    fn files_that_are_not_histories_get_errors_naming_the_line() {
        let message = |text: &[u8]| read(text).expect_err("not a history").to_string();
        assert_eq!(
            message(b"\x00\x01\xff"),
            "line 1: byte 3 is not UTF-8 text: a binary file, not a history"
        );
        assert_eq!(
            message(b"[{:process 1, :type :invoke, :f :read}\n {:process 1, :type :ok, :f"),
            "line 2: input ends inside a collection, expected '}' (truncated file?)"
        );
        assert_eq!(
            message(b"[{:process 1, :type :invoke, :f :read}\n"),
            "line 2: missing closing ']' (truncated file?)"
        );
        assert_eq!(message(b"[1 2]"), "line 1: expected an op map, found a number");
        assert!(read(&b"  \n"[..]).expect("empty is no error here").is_empty());
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
