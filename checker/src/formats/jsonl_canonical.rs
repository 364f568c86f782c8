//! The fast path of the JSONL reader: events in the exact form Faultline writes them, parsed without serde.
//!
//! A history of millions of events spends most of its reading time in the JSON parser, and nearly every
//! line has the writer's own shape: `{"index":N,"time":N,"type":"T","process":N,"f":"S","value":V}`, with
//! an optional `"node":"S"` last, `V` being `null`, an integer, a string, or `{"key":K,"value":W}` (`K` an
//! integer or a string, `W` as `V` but not keyed), no whitespace, no escapes, integers without leading zeros.
//! [`event`] reads exactly that and declines (returns `None`) anything else, which the serde path in
//! [`super::jsonl`] then reads, so the result (and every error) is always the serde path's.

use std::borrow::Cow;

use serde_json::Value;

use super::jsonl::LineEvent;
use crate::history::{OpType, Process};

/// The event on `line` if it has the writer's exact shape; `None` means "read it the general way".
pub fn event(line: &str) -> Option<LineEvent<'_>> {
    let mut at = Cursor { text: line, at: 0 };
    at.literal("{\"index\":")?;
    let index = at.unsigned()?;
    at.literal(",\"time\":")?;
    let time = at.unsigned()?;
    at.literal(",\"type\":\"")?;
    let op_type = OpType::from_name(at.plain_string()?)?;
    at.literal(",\"process\":")?;
    let process = at.unsigned()?;
    at.literal(",\"f\":\"")?;
    let f = at.plain_string()?;
    at.literal(",\"value\":")?;
    let (key, value) = if at.literal("{\"key\":").is_some() {
        let key = if at.literal("\"").is_some() {
            Value::String(at.plain_string()?.to_string())
        } else {
            Value::from(at.signed()?)
        };
        at.literal(",\"value\":")?;
        let value = at.scalar()?;
        at.literal("}")?;
        (Some(key), value)
    } else {
        (None, at.scalar()?)
    };
    let node = if at.literal(",\"node\":\"").is_some() {
        Some(Cow::Borrowed(at.plain_string()?))
    } else {
        None
    };
    at.literal("}")?;
    if at.at != line.len() {
        return None;
    }
    Some(LineEvent {
        index: Some(index),
        time: Some(time),
        op_type,
        process: Process::Client(process),
        f: Cow::Borrowed(f),
        key,
        value,
        node,
        error: None,
    })
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, expected: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.at..)?;
        rest.starts_with(expected.as_bytes()).then(|| self.at += expected.len())
    }

    /// Digits of a JSON integer without sign: no leading zero, within `u64`.
    fn unsigned(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(&b) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && bytes[start] == b'0') {
            return None;
        }
        // A fraction or exponent makes it a float: not this path's.
        match bytes.get(self.at) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(n),
        }
    }

    /// A JSON integer within `i64` (not `-0`).
    fn signed(&mut self) -> Option<i64> {
        if self.literal("-").is_some() {
            let magnitude = self.unsigned()?;
            if magnitude == 0 {
                return None;
            }
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(self.unsigned()?).ok()
        }
    }

    /// `null`, an integer or a plain string.
    fn scalar(&mut self) -> Option<Value> {
        if self.literal("null").is_some() {
            Some(Value::Null)
        } else if self.literal("\"").is_some() {
            self.plain_string().map(|s| Value::String(s.to_string()))
        } else {
            self.signed().map(Value::from)
        }
    }

    /// The rest of a string whose opening quote was read: no escapes, no control characters.
    fn plain_string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        loop {
            match bytes.get(self.at)? {
                b'"' => break,
                b'\\' => return None,
                &b if b < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let text = self.text.get(start..self.at)?;
        self.at += 1;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::jsonl::{parse_general, write_op};
    use super::*;
    use crate::generate::{GenSpec, KvSpec, kv_history, register_history};

    /// The fast path either declines or agrees with serde (and declines whatever serde rejects).
    fn agrees(line: &str) -> bool {
        let general = parse_general(1, line).ok();
        match (event(line), general) {
            (None, _) => false,
            (Some(fast), Some(general)) => {
                assert_eq!(fast, general, "{line}");
                true
            }
            (Some(fast), None) => panic!("{line}: accepted as {fast:?}, which serde rejects"),
        }
    }

    #[test]
    fn written_events_take_the_fast_path_with_the_general_result() {
        let mut ops = register_history(&GenSpec {
            keys: 3,
            processes: 6,
            operations: 300,
            crash_rate: 0.1,
            ..GenSpec::default()
        })
        .ops;
        ops.extend(register_history(&GenSpec::default()).ops);
        ops.extend(kv_history(&KvSpec::default()).history.ops);
        for (i, op) in ops.iter_mut().enumerate() {
            if i % 3 == 0 {
                op.node = Some("n1".into());
            }
        }
        for op in &ops {
            let mut line = Vec::new();
            write_op(op, &mut line).expect("written");
            let line = String::from_utf8(line).expect("text");
            assert!(agrees(line.trim_end()), "declined {line}");
        }
    }

    #[test]
    fn anything_else_is_declined_or_read_alike() {
        let base = r#"{"index":1,"time":2,"type":"ok","process":3,"f":"read","value":{"key":"k","value":-4}}"#;
        assert!(agrees(base));
        assert!(agrees(&base.replace("-4", "-9223372036854775808")));
        assert!(agrees(&base.replace("-4", "\"x 1 2 y\"")));
        assert!(agrees(&base.replace("{\"key\":\"k\",\"value\":-4}", "\"plain\"")));
        let declined = [
            base.replace("-4", "-0"),
            base.replace("-4", "04"),
            base.replace("-4", "4.0"),
            base.replace("-4", "4e1"),
            base.replace("-4", "9223372036854775808"),
            base.replace("-4", "-9223372036854775809"),
            base.replace("\"index\":1", "\"index\":18446744073709551616"),
            base.replace("\"index\":1", "\"index\":01"),
            base.replace("\"k\"", "\"k\\n\""),
            base.replace("\"k\"", "[1]"),
            base.replace("-4", "\"a\\\"b\""),
            base.replace("-4", "true"),
            base.replace("\"process\":3", "\"process\":\"nemesis\""),
            base.replace("\"process\":3", "\"process\":-3"),
            base.replace("\"ok\"", "\"bogus\""),
            base.replace("{\"key\"", "{ \"key\""),
            base.replace("}}", "},\"error\":\"x\"}"),
            base.replace("}}", "}} "),
            base.replace("}}", "}}x"),
            base.replace("}}", "}"),
            base.replace("\"f\":\"read\"", "\"f\":\"re\tad\""),
            base.replace("\"value\":-4}", "\"value\":-4,\"x\":1}"),
            base.replace("\"time\":2,", ""),
        ];
        for line in &declined {
            assert!(!agrees(line), "{line} took the fast path");
        }
    }
}
