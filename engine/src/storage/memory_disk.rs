//! The simulation's disk: the database file's bytes in memory, shared by every `Database` opened on it, so
//! that a simulated member can be killed and restarted on what its process left behind.
//!
//! A process that is killed loses nothing it handed to the kernel, synced or not, and writes nothing after
//! it dies. [`MemoryDisk::crash_image`] is exactly that: a copy of the bytes at the moment of the kill, which
//! the restarted member opens (redb then recovers as it does from a killed process's file), while the dead
//! member's storage keeps its own bytes and can no longer affect the image.

use std::io;
use std::sync::{Arc, RwLock};

use redb::StorageBackend;

/// A database file held in memory; clones share the bytes.
#[derive(Debug, Clone, Default)]
pub struct MemoryDisk {
    bytes: Arc<RwLock<Vec<u8>>>,
}

impl MemoryDisk {
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }

    /// What a process killed now leaves on this disk: a copy that nothing written later reaches.
    pub fn crash_image(&self) -> MemoryDisk {
        let bytes = self.bytes.read().map(|b| b.clone()).unwrap_or_default();
        MemoryDisk {
            bytes: Arc::new(RwLock::new(bytes)),
        }
    }

    pub(super) fn backend(&self) -> MemoryBackend {
        MemoryBackend(self.clone())
    }
}

/// redb's view of a [`MemoryDisk`].
#[derive(Debug)]
pub(super) struct MemoryBackend(MemoryDisk);

fn poisoned() -> io::Error {
    io::Error::other("the simulated disk's lock is poisoned")
}

impl StorageBackend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.bytes.read().map_err(|_| poisoned())?.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let bytes = self.0.bytes.read().map_err(|_| poisoned())?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(out.len())
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the simulated disk"))?;
        out.copy_from_slice(&bytes[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.0.bytes.write().map_err(|_| poisoned())?.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.0.bytes.write().map_err(|_| poisoned())?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start
            .checked_add(data.len())
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "write past the end of the simulated disk"))?;
        bytes[start..end].copy_from_slice(data);
        Ok(())
    }
}
