//! The journal: the oplog entries of each write group, appended to one file and fsync'd in groups, so a
//! durable write costs one small sequential `fdatasync` instead of a durable `redb` commit.
//!
//! ```text
//! record   magic "FLJ1" (4) | payload length u32 LE (4) | lsn u64 LE (8) | crc32c of lsn ++ payload u32 LE (4)
//!          | payload: the group's oplog entries, BSON documents back to back
//! ```
//!
//! The data file (`redb`) is committed without fsync and checkpointed durably from time to time (see
//! `writer.rs`); each checkpoint stores the newest journal record it covers ([`CHECKPOINT_KEY`] in `meta`) in
//! the same transaction, and the journal then starts again at offset 0. On open, the records after the stored
//! one are replayed through the oplog's idempotent apply path. A record is valid when its magic and checksum
//! match and its lsn is one more than the record before it, so a torn tail (a crash in the middle of a write)
//! and the older records left beyond the newest one after a restart at offset 0 both end the replay there. The
//! file is never shrunk: after the first pass, records overwrite blocks the file already has, and a
//! `fdatasync` of those writes has no file-size metadata to flush.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::storage_error;
use crate::error::Result;

/// The journal's file name in the member's data directory.
pub(super) const FILE_NAME: &str = "journal.fl";

/// The `meta` key of the newest journal record a durable checkpoint covers: `{lsn: <i64>}`.
pub(crate) const CHECKPOINT_KEY: &str = "journal.checkpoint";

const MAGIC: &[u8; 4] = b"FLJ1";
const HEADER_BYTES: usize = 20;

/// One group's record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub lsn: u64,
    /// The group's oplog entries, BSON documents back to back.
    pub payload: Vec<u8>,
}

impl Record {
    /// The record's oplog entries, each a complete BSON document. A payload whose lengths do not add up
    /// (which a valid checksum makes impossible unless this code wrote it wrong) ends the list.
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.payload.as_slice();
        std::iter::from_fn(move || {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            if len < 5 || len > rest.len() {
                return None;
            }
            let (doc, tail) = rest.split_at(len);
            rest = tail;
            Some(doc)
        })
    }
}

/// The journal file, written by the writer thread only.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    offset: u64,
    /// The lsn of the newest record written (0 before any).
    last_lsn: u64,
    /// The record being written, kept between appends so a group's record does not take fresh memory each
    /// time (under load that memory came as new pages the kernel had to zero); see [`RECORD_BUFFER_KEPT`].
    record: Vec<u8>,
}

/// The largest record buffer kept between appends; a bigger one (a large batch) is given back.
const RECORD_BUFFER_KEPT: usize = 4 * 1024 * 1024;

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns it with the valid records it holds, oldest first.
    /// New records go after the last valid one; the caller replays what it needs and then [`Journal::restart`]s.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>)> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| storage_error(&format!("open {}", path.display()), e))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|e| storage_error(&format!("read {}", path.display()), e))?;
        let (records, end) = read_records(&bytes);
        let last_lsn = records.last().map(|r| r.lsn).unwrap_or(0);
        Ok((
            Journal {
                file,
                path,
                offset: end as u64,
                last_lsn,
                record: Vec::new(),
            },
            records,
        ))
    }

    /// The lsn of the newest record written.
    pub fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    /// Continues lsns after `lsn` (the checkpoint's, when it is newer than any record in the file).
    pub fn continue_after(&mut self, lsn: u64) {
        self.last_lsn = self.last_lsn.max(lsn);
    }

    /// Bytes written since the last restart.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Appends one record holding `payload` (not yet fsync'd) and returns its lsn.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        let lsn = self.last_lsn + 1;
        let record = &mut self.record;
        record.clear();
        record.reserve(HEADER_BYTES + payload.len());
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        record.extend_from_slice(payload);
        let written = self.file.write_all_at(record, self.offset);
        let len = record.len() as u64;
        if record.capacity() > RECORD_BUFFER_KEPT {
            *record = Vec::new();
        }
        written.map_err(|e| storage_error(&format!("write {}", self.path.display()), e))?;
        self.offset += len;
        self.last_lsn = lsn;
        Ok(lsn)
    }

    /// Starts again at offset 0: every record so far is covered by a durable checkpoint. Lsns keep counting,
    /// so the older records left in the file beyond the new ones are never taken for newer ones.
    pub fn restart(&mut self) {
        self.offset = 0;
    }

    /// A second handle on the file, for the thread that fsyncs it.
    pub fn sync_handle(&self) -> Result<File> {
        self.file
            .try_clone()
            .map_err(|e| storage_error(&format!("clone {}", self.path.display()), e))
    }
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

/// The valid records at the start of `bytes`, and where they end.
fn read_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER_BYTES) {
        if &header[..4] != MAGIC {
            break;
        }
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + HEADER_BYTES..at + HEADER_BYTES + len) else {
            break;
        };
        if checksum(lsn, payload) != crc {
            break;
        }
        if let Some(previous) = records.last()
            && lsn != previous.lsn + 1
        {
            break;
        }
        records.push(Record {
            lsn,
            payload: payload.to_vec(),
        });
        at += HEADER_BYTES + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i32) -> Vec<u8> {
        bson::doc! {"i": i, "pad": "x".repeat(i as usize)}.to_vec().unwrap()
    }

    fn payload(from: i32, to: i32) -> Vec<u8> {
        (from..to).flat_map(entry).collect()
    }

    #[test]
    fn records_read_back_in_order_with_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, records) = Journal::open(dir.path()).unwrap();
        assert!(records.is_empty());
        assert_eq!(journal.append(&payload(0, 3)).unwrap(), 1);
        assert_eq!(journal.append(&payload(3, 4)).unwrap(), 2);
        drop(journal);
        let (journal, records) = Journal::open(dir.path()).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(records[0].entries().count(), 3);
        assert_eq!(records[1].entries().next().unwrap(), entry(3).as_slice());
        assert_eq!(journal.last_lsn(), 2);
    }

    /// A crash in the middle of a record's write leaves a torn tail: every byte count of it is refused,
    /// and the records before it are kept.
    #[test]
    fn a_torn_tail_ends_the_records_at_any_length() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        journal.append(&payload(0, 2)).unwrap();
        let whole_first = journal.len();
        journal.append(&payload(2, 5)).unwrap();
        let whole = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        drop(journal);
        for cut in whole_first as usize..whole.len() {
            std::fs::write(dir.path().join(FILE_NAME), &whole[..cut]).unwrap();
            let (journal, records) = Journal::open(dir.path()).unwrap();
            assert_eq!(records.len(), 1, "cut at {cut}");
            assert_eq!(journal.len(), whole_first);
        }
    }

    #[test]
    fn a_flipped_byte_ends_the_records_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        journal.append(&payload(0, 2)).unwrap();
        let first = journal.len() as usize;
        journal.append(&payload(2, 5)).unwrap();
        journal.append(&payload(5, 6)).unwrap();
        drop(journal);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first + HEADER_BYTES + 3] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = Journal::open(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
    }

    /// After a restart at offset 0 the file still holds the older records beyond the new ones; their lsns are
    /// older, so they are not read as a continuation.
    #[test]
    fn older_records_beyond_a_restart_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path()).unwrap();
        for i in 0..5 {
            journal.append(&payload(i, i + 1)).unwrap();
        }
        journal.restart();
        assert_eq!(journal.append(&payload(0, 8)).unwrap(), 6);
        drop(journal);
        let (journal, records) = Journal::open(dir.path()).unwrap();
        assert_eq!(records.iter().map(|r| r.lsn).collect::<Vec<_>>(), vec![6]);
        assert_eq!(journal.last_lsn(), 6);
    }
}
