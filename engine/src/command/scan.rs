//! Storage reads as [`DocStream`]s, the sources of sorted finds and aggregations.
//!
//! A scan reads a chunk at a time (at most [`CHUNK_DOCS`] matches or [`CHUNK_VISITS`] documents looked at)
//! and remembers the last key it visited, so it holds one chunk, never the result. Within one command the
//! chunks come from one snapshot; when the cursor waits for a getMore the snapshot is released
//! ([`DocStream::park`]) and the next chunk resumes after the remembered key in a fresh one, as a MongoDB
//! cursor yields. `_id` keys are unique and visited in order, so no document is seen twice.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;

use bson::Document;

use crate::error::Error;
use crate::query::QueryError;
use crate::query::filter::Filter;
use crate::query::pipeline::DocStream;
use crate::storage::{CollectionMeta, Snapshot, Storage};

/// Matching documents a chunk holds at most.
pub const CHUNK_DOCS: usize = 64;
/// Documents a chunk looks at, at most (a selective filter still returns control regularly).
pub const CHUNK_VISITS: usize = 1024;

pub(super) fn query_error(err: Error) -> QueryError {
    QueryError::new(err.code, err.code_name, err.message)
}

/// One document a chunk looks at: kept when it matches the filter; the chunk pauses once it holds
/// [`CHUNK_DOCS`] matches or has looked at [`CHUNK_VISITS`] documents.
fn visit(filter: &Filter, buffer: &mut VecDeque<Document>, visited: &mut usize, doc: Document) -> ControlFlow<()> {
    *visited += 1;
    if filter.matches(&doc) {
        buffer.push_back(doc);
    }
    if buffer.len() >= CHUNK_DOCS || *visited >= CHUNK_VISITS {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// A collection in `_id` order (or reverse).
pub(super) struct CollectionScan {
    storage: Storage,
    meta: CollectionMeta,
    filter: Arc<Filter>,
    reverse: bool,
    after: Option<Vec<u8>>,
    snapshot: Option<Snapshot>,
    buffer: VecDeque<Document>,
    done: bool,
}

impl CollectionScan {
    pub(super) fn new(storage: Storage, meta: CollectionMeta, filter: Arc<Filter>, reverse: bool) -> CollectionScan {
        CollectionScan {
            storage,
            meta,
            filter,
            reverse,
            after: None,
            snapshot: None,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    fn refill(&mut self) -> Result<(), QueryError> {
        if self.snapshot.is_none() {
            self.snapshot = Some(self.storage.snapshot().map_err(query_error)?);
        }
        let Some(snapshot) = self.snapshot.as_ref() else {
            return Ok(());
        };
        let (filter, buffer) = (&self.filter, &mut self.buffer);
        let (mut visited, mut paused) = (0usize, false);
        let last = snapshot
            .scan_directed(&self.meta, self.after.as_deref(), self.reverse, |doc| {
                let flow = visit(filter, buffer, &mut visited, doc);
                paused = flow.is_break();
                flow
            })
            .map_err(query_error)?;
        if last.is_some() {
            self.after = last;
        }
        self.done = !paused;
        Ok(())
    }
}

impl DocStream for CollectionScan {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        loop {
            if let Some(doc) = self.buffer.pop_front() {
                return Ok(Some(doc));
            }
            if self.done {
                return Ok(None);
            }
            self.refill()?;
        }
    }

    fn park(&mut self) {
        self.snapshot = None;
    }
}

/// The oplog in timestamp order (or reverse), from after `after`.
pub(super) struct OplogScan {
    storage: Storage,
    filter: Arc<Filter>,
    reverse: bool,
    after: Option<u64>,
    snapshot: Option<Snapshot>,
    buffer: VecDeque<Document>,
    done: bool,
}

impl OplogScan {
    pub(super) fn new(storage: Storage, filter: Arc<Filter>, reverse: bool, after: Option<u64>) -> OplogScan {
        OplogScan {
            storage,
            filter,
            reverse,
            after,
            snapshot: None,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    fn refill(&mut self) -> Result<(), QueryError> {
        if self.snapshot.is_none() {
            self.snapshot = Some(self.storage.snapshot().map_err(query_error)?);
        }
        let Some(snapshot) = self.snapshot.as_ref() else {
            return Ok(());
        };
        let (filter, buffer, after) = (&self.filter, &mut self.buffer, &mut self.after);
        let (mut visited, mut paused) = (0usize, false);
        snapshot
            .scan_oplog(*after, self.reverse, |key, doc| {
                *after = Some(key);
                let flow = visit(filter, buffer, &mut visited, doc);
                paused = flow.is_break();
                flow
            })
            .map_err(query_error)?;
        self.done = !paused;
        Ok(())
    }
}

impl DocStream for OplogScan {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        loop {
            if let Some(doc) = self.buffer.pop_front() {
                return Ok(Some(doc));
            }
            if self.done {
                return Ok(None);
            }
            self.refill()?;
        }
    }

    fn park(&mut self) {
        self.snapshot = None;
    }
}
