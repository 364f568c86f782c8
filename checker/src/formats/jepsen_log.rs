//! Jepsen's text log, as in the 2014 etcd logs: `INFO  jepsen.util - <process> :<type> :<f> <value>`,
//! separated by tabs or spaces. `:info`/`:fail` lines whose value is a keyword (`:timed-out`) carry it as the
//! op's `error` and a null value. Lines without `jepsen.util - ` are malformed; blank lines are skipped.

use std::io::BufRead;

use serde_json::Value;

use super::FormatError;
use super::edn_value::EdnReader;
use super::lines::Lines;
use crate::history::{History, Op, OpType, Process};

/// Reads a Jepsen text log.
pub fn read(reader: impl BufRead) -> Result<History, FormatError> {
    let mut history = History::new();
    let mut lines = Lines::new(reader);
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let op = parse_line(line, line_no, history.len() as u64)?;
        history.push(op, line_no);
    }
    Ok(history)
}

fn parse_line(line: &str, line_no: usize, position: u64) -> Result<Op, FormatError> {
    let bad = |m: &str| FormatError::at(line_no, m.to_string());
    let (_, rest) = line
        .split_once("jepsen.util - ")
        .ok_or_else(|| bad("expected 'jepsen.util - '"))?;
    let mut fields = rest.trim().splitn(2, char::is_whitespace);
    let process_text = fields.next().unwrap_or_default();
    let rest = fields.next().unwrap_or_default().trim_start();
    let mut fields = rest.splitn(2, char::is_whitespace);
    let type_text = fields.next().unwrap_or_default();
    let rest = fields.next().unwrap_or_default().trim_start();
    let mut fields = rest.splitn(2, char::is_whitespace);
    let f_text = fields.next().unwrap_or_default();
    let value_text = fields.next().unwrap_or_default().trim();

    let process = match process_text.parse::<u64>() {
        Ok(n) => Process::Client(n),
        Err(_) => Process::Named(process_text.trim_start_matches(':').to_string()),
    };
    let op_type = type_text
        .strip_prefix(':')
        .and_then(OpType::from_name)
        .ok_or_else(|| bad(&format!("bad type {type_text:?}")))?;
    let f = f_text
        .strip_prefix(':')
        .ok_or_else(|| bad(&format!("bad f {f_text:?}")))?;
    let mut value = if value_text.is_empty() {
        Value::Null
    } else {
        EdnReader::new(value_text, line_no).read_value()?
    };
    let mut error = None;
    if matches!(op_type, OpType::Info | OpType::Fail) && value_text.starts_with(':') {
        error = Some(value);
        value = Value::Null;
    }
    let mut op = Op::new(position, position, op_type, process, f, value);
    op.error = error.map(Box::new);
    Ok(op)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_tab_and_space_separated_lines() {
        let text = "INFO  jepsen.util - 4\t:invoke\t:cas\t[2 4]\nINFO  jepsen.util - 4   :info :cas    :timed-out\n\
                    INFO  jepsen.util - 1\t:ok\t:read\tnil\n";
        let h = read(text.as_bytes()).expect("valid");
        assert_eq!(h.ops[0].value, json!([2, 4]));
        assert_eq!(h.ops[1].op_type, OpType::Info);
        assert_eq!(h.ops[1].error.as_deref(), Some(&json!("timed-out")));
        assert_eq!(h.ops[1].value, Value::Null);
        assert_eq!(h.ops[2].value, Value::Null);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let err = read("INFO  jepsen.util - 1\t:ok\t:read\t3\nhello\n".as_bytes()).expect_err("junk");
        assert!(err.to_string().starts_with("line 2:"));
        assert!(read("INFO  jepsen.util - 1\t:done\t:read\t3\n".as_bytes()).is_err());
    }
}
