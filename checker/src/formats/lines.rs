//! Reading text input safely: line by line with a length cap, or whole, with UTF-8 errors naming the line.
//!
//! A history file handed to the checker may be anything — binary garbage, a truncated copy — so the readers
//! never trust it: a line that is not UTF-8 or is absurdly long is an error naming its line, and no reader
//! holds more than one line of a line-oriented file in memory.

use std::io::{BufRead, Read};

use super::FormatError;

/// The longest line accepted (a history event is a few hundred bytes; this only stops runaway input).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Yields the lines of a reader one at a time, numbered from 1, reusing one buffer.
pub struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    line: usize,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            buffer: Vec::new(),
            line: 0,
        }
    }

    /// The next line (without its line ending) and its number, or `None` at the end of the input.
    pub fn next_line(&mut self) -> Result<Option<(usize, &str)>, FormatError> {
        self.buffer.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buffer)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(FormatError::at(
                self.line,
                format!("line longer than {} MiB: not a history", MAX_LINE_BYTES >> 20),
            ));
        }
        while matches!(self.buffer.last(), Some(b'\n' | b'\r')) {
            self.buffer.pop();
        }
        match std::str::from_utf8(&self.buffer) {
            Ok(text) => Ok(Some((self.line, text))),
            Err(e) => Err(not_text(self.line, e.valid_up_to())),
        }
    }
}

fn not_text(line: usize, column: usize) -> FormatError {
    FormatError::at(
        line,
        format!("byte {} is not UTF-8 text: a binary file, not a history", column + 1),
    )
}

/// Reads the whole input as text; invalid UTF-8 is an error naming its line.
pub fn read_text(mut reader: impl Read) -> Result<String, FormatError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        not_text(line, valid.len() - line_start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_numbered_lines_without_endings() {
        let mut lines = Lines::new("a\r\n\nb".as_bytes());
        assert_eq!(lines.next_line().expect("ok"), Some((1, "a")));
        assert_eq!(lines.next_line().expect("ok"), Some((2, "")));
        assert_eq!(lines.next_line().expect("ok"), Some((3, "b")));
        assert_eq!(lines.next_line().expect("ok"), None);
    }

    #[test]
    fn binary_input_is_an_error_naming_the_line() {
        let input: &[u8] = b"ok\nab\xff\xfe\n";
        let mut lines = Lines::new(input);
        assert!(lines.next_line().is_ok());
        let err = lines.next_line().expect_err("binary");
        assert_eq!(
            err.to_string(),
            "line 2: byte 3 is not UTF-8 text: a binary file, not a history"
        );
        let err = read_text(input).expect_err("binary");
        assert_eq!(
            err.to_string(),
            "line 2: byte 3 is not UTF-8 text: a binary file, not a history"
        );
    }

    #[test]
    fn holds_one_line_at_a_time() {
        let line = format!("{}\n", "x".repeat(99));
        let text = line.repeat(10_000);
        let mut lines = Lines::new(std::io::BufReader::with_capacity(512, text.as_bytes()));
        let mut count = 0;
        while let Some((_, l)) = lines.next_line().expect("text") {
            assert_eq!(l.len(), 99);
            count += 1;
        }
        assert_eq!(count, 10_000);
        assert!(lines.buffer.capacity() < 1024, "{}", lines.buffer.capacity());
    }

    #[test]
    fn an_endless_line_is_an_error_not_an_allocation() {
        let input = std::io::repeat(b'x').take(MAX_LINE_BYTES as u64 + 10);
        let mut lines = Lines::new(std::io::BufReader::new(input));
        let err = lines.next_line().expect_err("too long");
        assert!(err.to_string().starts_with("line 1: line longer than"), "{err}");
    }
}
