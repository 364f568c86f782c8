//! Temporary files for blocking query stages that outgrow their memory limit under `allowDiskUse`.
//!
//! A run is a file of records written once, in order, and read back once, in order:
//!
//! ```text
//! record := tag (u64 LE) · length (u32 LE) · BSON document
//! ```
//! Runs live in `<dbpath>/_tmp/` (mongod's temporary directory), are removed when dropped, and the directory
//! is emptied when the member starts, so a crash leaves nothing behind for long.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bson::Document;

use crate::query::QueryError;

/// The temporary directory under a member's dbpath.
pub fn tmp_dir(dbpath: &Path) -> PathBuf {
    dbpath.join("_tmp")
}

/// Removes what a previous run of the member left in its temporary directory.
pub fn clean_tmp_dir(dbpath: &Path) {
    let dir = tmp_dir(dbpath);
    if dir.exists()
        && let Err(err) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(error = %err, dir = %dir.display(), "cannot empty the temporary directory");
    }
}

fn io_error(what: &str, err: impl std::fmt::Display) -> QueryError {
    QueryError::new(1, "InternalError", format!("spilling to disk: {what}: {err}"))
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// A run being written.
pub struct RunWriter {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    records: u64,
}

impl RunWriter {
    /// Creates a new run file in `dir` (created if needed).
    pub fn create(dir: &Path) -> Result<RunWriter, QueryError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(&format!("create {}", dir.display()), e))?;
        let name = format!(
            "run-{}-{}-{:016x}",
            std::process::id(),
            NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            rand::random::<u64>()
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| io_error(&format!("create {}", path.display()), e))?;
        Ok(RunWriter {
            out: Some(BufWriter::with_capacity(256 * 1024, file)),
            path,
            records: 0,
        })
    }

    /// Appends one record (a tag, such as an input sequence number, and a BSON document's bytes).
    pub fn write_raw(&mut self, tag: u64, bson: &[u8]) -> Result<(), QueryError> {
        let len = u32::try_from(bson.len()).map_err(|e| io_error("record length", e))?;
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io_error("write", "run already finished"))?;
        out.write_all(&tag.to_le_bytes())
            .and_then(|_| out.write_all(&len.to_le_bytes()))
            .and_then(|_| out.write_all(bson))
            .map_err(|e| io_error("write", e))?;
        self.records += 1;
        Ok(())
    }

    pub fn write(&mut self, tag: u64, doc: &Document) -> Result<(), QueryError> {
        let bytes = doc.to_vec().map_err(|e| io_error("encode", e))?;
        self.write_raw(tag, &bytes)
    }

    /// Finishes the run and opens it for reading.
    pub fn finish(mut self) -> Result<RunReader, QueryError> {
        let guard = Removed(std::mem::take(&mut self.path));
        let out = self
            .out
            .take()
            .ok_or_else(|| io_error("flush", "run already finished"))?;
        let file = out.into_inner().map_err(|e| io_error("flush", e.error()))?;
        drop(file);
        let file = File::open(&guard.0).map_err(|e| io_error("reopen", e))?;
        Ok(RunReader {
            input: BufReader::with_capacity(64 * 1024, file),
            left: self.records,
            _file: guard,
        })
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        // Only reached when the run was abandoned before `finish` (which moves the path out).
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes its file when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A finished run, read in the order it was written; the file is removed when the reader is dropped.
pub struct RunReader {
    input: BufReader<File>,
    left: u64,
    _file: Removed,
}

impl RunReader {
    /// The next record's tag and document bytes, or `None` at the end.
    pub fn next_raw(&mut self) -> Result<Option<(u64, Vec<u8>)>, QueryError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut head = [0u8; 12];
        self.input.read_exact(&mut head).map_err(|e| io_error("read", e))?;
        let tag = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(head[8..].try_into().unwrap_or_default()) as usize;
        let mut bytes = vec![0u8; len];
        self.input.read_exact(&mut bytes).map_err(|e| io_error("read", e))?;
        self.left -= 1;
        Ok(Some((tag, bytes)))
    }

    pub fn next_record(&mut self) -> Result<Option<(u64, Document)>, QueryError> {
        match self.next_raw()? {
            None => Ok(None),
            Some((tag, bytes)) => Ok(Some((tag, decode(&bytes)?))),
        }
    }
}

/// Decodes a document written by this module (or held as bytes by a blocking stage).
pub fn decode(bytes: &[u8]) -> Result<Document, QueryError> {
    Document::from_reader(bytes).map_err(|e| io_error("decode", e))
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    #[test]
    fn runs_read_back_in_order_and_vanish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = RunWriter::create(&tmp_dir(dir.path())).expect("create");
        for i in 0..1000u64 {
            writer.write(i * 2, &doc! {"i": i as i64}).expect("write");
        }
        let mut reader = writer.finish().expect("finish");
        assert_eq!(
            std::fs::read_dir(tmp_dir(dir.path())).map(|d| d.count()).unwrap_or(0),
            1
        );
        for i in 0..1000u64 {
            let (tag, doc) = reader.next_record().expect("read").expect("a record");
            assert_eq!((tag, doc), (i * 2, doc! {"i": i as i64}));
        }
        assert!(reader.next_record().expect("read").is_none());
        drop(reader);
        assert_eq!(
            std::fs::read_dir(tmp_dir(dir.path())).map(|d| d.count()).unwrap_or(0),
            0
        );
        let abandoned = RunWriter::create(&tmp_dir(dir.path())).expect("create");
        drop(abandoned);
        assert_eq!(
            std::fs::read_dir(tmp_dir(dir.path())).map(|d| d.count()).unwrap_or(0),
            0
        );
        std::fs::write(tmp_dir(dir.path()).join("left-by-a-crash"), b"x").expect("write");
        clean_tmp_dir(dir.path());
        assert!(!tmp_dir(dir.path()).exists());
    }
}
