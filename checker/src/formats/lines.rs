//! Reading text input safely: line by line with a length cap, or whole, with UTF-8 errors naming the line.
//!
//! A history file handed to the checker may be anything — binary garbage, a truncated copy — so the readers
//! never trust it: a line that is not UTF-8 or is absurdly long is an error naming its line, and no reader
//! holds more than one line of a line-oriented file in memory ([`Blocks`] hold about a megabyte of whole lines,
//! for readers that parse blocks on several threads, with the same errors at the same lines).

use std::io::{BufRead, ErrorKind, Read};

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
            return Err(too_long(self.line));
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

/// Bytes a [`Blocks`] reader asks for at a time.
pub const BLOCK_BYTES: usize = 1 << 20;

/// Whole lines of the input, about [`BLOCK_BYTES`] at a time: for parsing on several threads.
pub struct Blocks<R> {
    reader: R,
    /// The start of a line the last block did not hold whole.
    carry: Vec<u8>,
    /// The number of the next block's first line.
    next_line: usize,
}

/// A run of whole lines and the number of its first line.
#[derive(Debug)]
pub struct Block {
    /// Number of the first line (from 1).
    pub first_line: usize,
    /// The lines, each ending in a newline but perhaps the input's last.
    pub bytes: Vec<u8>,
}

impl<R: Read> Blocks<R> {
    /// Blocks of `reader`.
    pub fn new(reader: R) -> Blocks<R> {
        Blocks {
            reader,
            carry: Vec::new(),
            next_line: 1,
        }
    }

    /// The next block, or `None` at the end of the input; a line longer than [`MAX_LINE_BYTES`] is an error
    /// naming it, as [`Lines`] reports it.
    pub fn next_block(&mut self) -> Result<Option<Block>, FormatError> {
        let mut bytes = std::mem::take(&mut self.carry);
        loop {
            let start = bytes.len();
            bytes.resize(start + BLOCK_BYTES, 0);
            let read = read_full(&mut self.reader, &mut bytes[start..])?;
            bytes.truncate(start + read);
            if let Some(last) = bytes[start..].iter().rposition(|&b| b == b'\n') {
                self.carry = bytes[start + last + 1..].to_vec();
                bytes.truncate(start + last + 1);
                break;
            }
            if bytes.len() > MAX_LINE_BYTES {
                return Err(too_long(self.next_line));
            }
            if read < BLOCK_BYTES {
                break;
            }
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += bytes.iter().filter(|&&b| b == b'\n').count();
        if bytes.last() != Some(&b'\n') {
            self.next_line += 1;
        }
        Ok(Some(Block { first_line, bytes }))
    }
}

/// Fills `buffer` from `reader`; fewer bytes only at the end of the input.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> Result<usize, FormatError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

impl Block {
    /// Calls `each` with every line (number, text without its line ending) until it returns an error; a
    /// line longer than [`MAX_LINE_BYTES`] or not UTF-8 is an error naming it, as [`Lines`] reports it.
    pub fn for_each_line<'a, E: From<FormatError>>(
        &'a self,
        mut each: impl FnMut(usize, &'a str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut line = self.first_line;
        let mut rest = self.bytes.as_slice();
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            let (mut text, after) = rest.split_at(end);
            rest = after;
            if text.len() > MAX_LINE_BYTES {
                return Err(too_long(line).into());
            }
            while let [before @ .., b'\n' | b'\r'] = text {
                text = before;
            }
            match std::str::from_utf8(text) {
                Ok(text) => each(line, text)?,
                Err(e) => return Err(not_text(line, e.valid_up_to()).into()),
            }
            line += 1;
        }
        Ok(())
    }
}

fn too_long(line: usize) -> FormatError {
    FormatError::at(
        line,
        format!("line longer than {} MiB: not a history", MAX_LINE_BYTES >> 20),
    )
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

    /// Every line and the first error, as [`Blocks`] give them.
    fn block_lines(input: &[u8]) -> (Vec<(usize, String)>, Option<String>) {
        let mut blocks = Blocks::new(input);
        let mut lines = Vec::new();
        loop {
            let block = match blocks.next_block() {
                Ok(Some(block)) => block,
                Ok(None) => return (lines, None),
                Err(e) => return (lines, Some(e.to_string())),
            };
            let done = block.for_each_line(|n, text| -> Result<(), FormatError> {
                lines.push((n, text.to_string()));
                Ok(())
            });
            if let Err(e) = done {
                return (lines, Some(e.to_string()));
            }
        }
    }

    /// Every line and the first error, as [`Lines`] gives them.
    fn lines_of(input: &[u8]) -> (Vec<(usize, String)>, Option<String>) {
        let mut reader = Lines::new(input);
        let mut lines = Vec::new();
        loop {
            match reader.next_line() {
                Ok(Some((n, text))) => lines.push((n, text.to_string())),
                Ok(None) => return (lines, None),
                Err(e) => return (lines, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn blocks_give_the_lines_and_errors_lines_gives() {
        let long_line = "y".repeat(BLOCK_BYTES + 17);
        let many = "x\n".repeat(BLOCK_BYTES / 2 + 3);
        let inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a\r\n\nb".to_vec(),
            b"a\r\r\n\r\n".to_vec(),
            b"ok\nab\xff\xfe\nnever".to_vec(),
            format!("first\n{long_line}\nlast\n").into_bytes(),
            format!("{many}tail").into_bytes(),
            [b"a\n".as_slice(), &vec![b'z'; MAX_LINE_BYTES], b"\nb\n"].concat(),
            [b"a\n".as_slice(), &vec![b'z'; MAX_LINE_BYTES + 5]].concat(),
        ];
        for input in &inputs {
            let (expected, expected_error) = lines_of(input);
            let (got, got_error) = block_lines(input);
            assert_eq!(got.len(), expected.len(), "{:?}", &input[..input.len().min(20)]);
            assert!(got == expected, "lines differ for {:?}", &input[..input.len().min(20)]);
            assert_eq!(got_error, expected_error);
        }
    }

    #[test]
    fn an_endless_line_is_an_error_not_an_allocation() {
        let input = std::io::repeat(b'x').take(MAX_LINE_BYTES as u64 + 10);
        let mut lines = Lines::new(std::io::BufReader::new(input));
        let err = lines.next_line().expect_err("too long");
        assert!(err.to_string().starts_with("line 1: line longer than"), "{err}");
    }
}
