//! A small EDN reader producing `serde_json::Value`s, and the matching writer.
//!
//! Mapping: `nil` → null, booleans and numbers as themselves, strings as strings, keywords and symbols as
//! strings without the colon (`:read` → `"read"`), vectors, lists and sets → arrays, maps → objects whose keys
//! are the printed keys (`{:key 1}` → `{"key":1}`), tagged literals `#tag x` → `x`, `#_ x` is skipped.
//! The writer prints objects as maps with keyword keys, so JSON and EDN histories round-trip.

use serde_json::{Map, Number, Value};

/// A syntax error at a line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A cursor over EDN text that knows its line.
pub struct EdnReader<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

const MAX_DEPTH: usize = 256;

impl<'a> EdnReader<'a> {
    /// A reader over `text`, whose first line is `first_line`.
    pub fn new(text: &'a str, first_line: usize) -> EdnReader<'a> {
        EdnReader {
            text: text.as_bytes(),
            pos: 0,
            line: first_line,
        }
    }

    /// The current line.
    pub fn line(&self) -> usize {
        self.line
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips whitespace, commas and `;` comments; returns the next byte without consuming it.
    pub fn skip_blank(&mut self) -> Option<u8> {
        while let Some(c) = self.peek() {
            if c == b';' {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else if c.is_ascii_whitespace() || c == b',' {
                self.bump();
            } else {
                return Some(c);
            }
        }
        None
    }

    /// Consumes `expected` after blanks, or fails.
    pub fn expect(&mut self, expected: u8) -> Result<(), EdnError> {
        match self.skip_blank() {
            Some(c) if c == expected => {
                self.bump();
                Ok(())
            }
            Some(c) => self.error(format!("expected '{}', found '{}'", expected as char, c as char)),
            None => self.error(format!("expected '{}', found end of input", expected as char)),
        }
    }

    /// Reads one value.
    pub fn read_value(&mut self) -> Result<Value, EdnError> {
        self.read_at_depth(0)
    }

    fn read_at_depth(&mut self, depth: usize) -> Result<Value, EdnError> {
        if depth > MAX_DEPTH {
            return self.error("nesting too deep");
        }
        let Some(c) = self.skip_blank() else {
            return self.error("unexpected end of input");
        };
        match c {
            b'[' | b'(' => {
                self.bump();
                let close = if c == b'[' { b']' } else { b')' };
                Ok(Value::Array(self.read_seq(close, depth)?))
            }
            b'{' => {
                self.bump();
                self.read_map(depth)
            }
            b'"' => {
                self.bump();
                Ok(Value::String(self.read_string()?))
            }
            b'#' => self.read_dispatch(depth),
            b']' | b')' | b'}' => self.error(format!("unexpected '{}'", c as char)),
            b'\\' => self.read_char(),
            _ => self.read_atom(),
        }
    }

    fn read_seq(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, EdnError> {
        let mut items = Vec::new();
        loop {
            match self.skip_blank() {
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(b'#') if self.text.get(self.pos + 1) == Some(&b'_') => self.discard(depth)?,
                Some(_) => items.push(self.read_at_depth(depth + 1)?),
                None => {
                    let message = format!(
                        "input ends inside a collection, expected '{}' (truncated file?)",
                        close as char
                    );
                    return self.error(message);
                }
            }
        }
    }

    fn read_map(&mut self, depth: usize) -> Result<Value, EdnError> {
        let items = self.read_seq(b'}', depth)?;
        if items.len() % 2 != 0 {
            return self.error("map with an odd number of forms");
        }
        let mut map = Map::new();
        let mut iter = items.into_iter();
        while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
            let key = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }

    fn read_dispatch(&mut self, depth: usize) -> Result<Value, EdnError> {
        self.bump();
        match self.peek() {
            Some(b'{') => {
                self.bump();
                Ok(Value::Array(self.read_seq(b'}', depth)?))
            }
            Some(b'_') => {
                self.pos -= 1;
                self.discard(depth)?;
                self.read_at_depth(depth)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                self.read_atom()?; // the tag
                self.read_at_depth(depth + 1)
            }
            _ => self.error("unsupported '#' dispatch"),
        }
    }

    fn discard(&mut self, depth: usize) -> Result<(), EdnError> {
        self.pos += 2; // "#_"
        self.read_at_depth(depth + 1).map(|_| ())
    }

    fn read_string(&mut self) -> Result<String, EdnError> {
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return self.error("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(c @ (b'"' | b'\\')) => out.push(c),
                    _ => return self.error("bad escape in string"),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.error("string is not UTF-8"))
    }

    fn read_char(&mut self) -> Result<Value, EdnError> {
        self.bump();
        let token = self.token();
        match token {
            "" => self.error("empty character literal"),
            "newline" => Ok(Value::String("\n".into())),
            "space" => Ok(Value::String(" ".into())),
            "tab" => Ok(Value::String("\t".into())),
            t => Ok(Value::String(t.to_string())),
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || b",;()[]{}\"".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("")
    }

    fn read_atom(&mut self) -> Result<Value, EdnError> {
        let token = self.token();
        if token.is_empty() {
            return self.error("unexpected character");
        }
        match token {
            "nil" => return Ok(Value::Null),
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            _ => {}
        }
        if token == ":" {
            return self.error("':' without a keyword name (JSON rather than EDN? try --format jsonl)");
        }
        if let Some(keyword) = token.strip_prefix(':') {
            return Ok(Value::String(keyword.to_string()));
        }
        let first = token.as_bytes()[0];
        let numeric = first.is_ascii_digit()
            || ((first == b'-' || first == b'+') && token.len() > 1 && token.as_bytes()[1].is_ascii_digit());
        if numeric {
            return self.number(token);
        }
        Ok(Value::String(token.to_string()))
    }

    fn number(&self, token: &str) -> Result<Value, EdnError> {
        let digits = token.trim_end_matches(['N', 'M']);
        if let Ok(n) = digits.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = digits.parse::<u64>() {
            return Ok(Value::Number(n.into()));
        }
        match digits.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => self.error(format!("bad number {token:?}")),
        }
    }
}

/// Prints a value as EDN (objects as maps with keyword keys where the key is a plain word).
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_key(out, k);
                out.push(' ');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// Prints `name` as a keyword when it is a plain word, otherwise as a string.
pub fn write_key(out: &mut String, name: &str) {
    let plain = !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_?!*./".contains(&c));
    if plain {
        out.push(':');
        out.push_str(name);
    } else {
        write_string(out, name);
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(text: &str) -> Result<Value, EdnError> {
        EdnReader::new(text, 1).read_value()
    }

    #[test]
    fn reads_op_maps_with_keywords_vectors_and_comments() {
        let v =
            read("; c\n{:process 4, :type :invoke, :f :cas, :value [1 2] :x #{1} :t #inst \"x\"}").expect("valid edn");
        assert_eq!(
            v,
            json!({"process":4,"type":"invoke","f":"cas","value":[1,2],"x":[1],"t":"x"})
        );
    }

    #[test]
    fn reports_the_line_of_errors() {
        let err = read("[{:a 1}\n {:b 2\n").expect_err("unclosed");
        assert_eq!(err.line, 3);
        assert!(read("{:a}").is_err());
        assert!(read("\"abc").is_err());
        assert!(read(&"[".repeat(10_000)).is_err());
        let json = read("[{\"type\": \"invoke\"}]").expect_err("JSON");
        assert!(
            json.message.starts_with("':' without a keyword name"),
            "{}",
            json.message
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let v = json!({"key": "k 1", "value": [1, null, true, "s\"q"], "n": -3});
        let mut out = String::new();
        write_value(&mut out, &v);
        assert_eq!(read(&out).expect("round trip"), v);
    }
}
