//! BSON nesting limits: the one place the engine's depth limits are defined, and iterative walks to check them.
//!
//! MongoDB's numbers (`bson/bson_depth.h`): no BSON the server accepts may nest deeper than
//! `BSONDepth::kDefaultMaxAllowableDepth` (200), and a user document may not be *stored* deeper than
//! `getMaxDepthForUserStorage()`, 20 levels less (180), so that the server can still wrap a stored document in
//! an oplog entry or a command reply. A write that would store a deeper document fails with `Overflow` (15).
//! MongoDB documents 100 levels as the supported nesting; 180 is what it enforces.
//!
//! ```text
//! MAX_DOCUMENT_DEPTH  180  every document stored, replicated (as an oplog entry's payload), applied from the
//!                          oplog, or built for a reply by a projection or a pipeline
//! MAX_BSON_DEPTH      200  every BSON blob decoded (from the network or from disk) and every field path
//! ```
//!
//! Depth is counted as MongoDB counts it for storage: the top-level document is level 1 and every non-empty
//! embedded document or array adds a level; empty ones add nothing (`{a: {}}` is 1 deep, `{a: {b: 1}}` 2).
//! Decoding counts every embedded container, empty or not (see [`raw_nesting_within`]).
//!
//! Every walk here is iterative: its stack use does not grow with the depth of its input, so it can be run on
//! anything, including the documents it exists to refuse.
use bson::raw::{RawArrayIter, RawBsonRef, RawDocument, RawIter};
use bson::{Bson, Document};

/// Levels of nesting the server may add around a stored document (oplog entries, replies).
pub const SYSTEM_DEPTH_LEVELS: usize = 20;
/// The deepest BSON accepted anywhere, and the most parts a field path may have
/// (`BSONDepth::kDefaultMaxAllowableDepth`).
pub const MAX_BSON_DEPTH: usize = 200;
/// The deepest document that may be stored, replicated or returned
/// (`BSONDepth::getMaxDepthForUserStorage()`).
pub const MAX_DOCUMENT_DEPTH: usize = MAX_BSON_DEPTH - SYSTEM_DEPTH_LEVELS;
/// The stack each runtime worker thread of a member should have. Commands run on these threads, and what
/// they do is bounded by the limits above: at those bounds the deepest work fits in 1 MiB unoptimised
/// (`tests::bounded_work_fits_a_small_stack`); tokio's default is 2 MiB, this gives eight times the need.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// The embedded documents and arrays still to visit at one level of a walk.
enum Frame<'a> {
    Document(bson::document::Values<'a>),
    Array(std::slice::Iter<'a, Bson>),
}

impl<'a> Frame<'a> {
    /// A frame for a *non-empty* container; `None` for scalars and empty containers, which add no level.
    fn of(value: &'a Bson) -> Option<Frame<'a>> {
        match value {
            Bson::Document(doc) if !doc.is_empty() => Some(Frame::Document(doc.values())),
            Bson::Array(items) if !items.is_empty() => Some(Frame::Array(items.iter())),
            Bson::JavaScriptCodeWithScope(code) if !code.scope.is_empty() => Some(Frame::Document(code.scope.values())),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<&'a Bson> {
        match self {
            Frame::Document(values) => values.next(),
            Frame::Array(items) => items.next(),
        }
    }
}

/// Walks `doc`, stopping early once a level deeper than `stop_past` is seen; returns the depth reached
/// (capped at `stop_past + 1`).
fn walk(doc: &Document, stop_past: usize) -> usize {
    if doc.is_empty() {
        return 0;
    }
    let mut stack = vec![Frame::Document(doc.values())];
    let mut deepest = 1;
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(value) => {
                if let Some(frame) = Frame::of(value) {
                    stack.push(frame);
                    deepest = deepest.max(stack.len());
                    if deepest > stop_past {
                        return deepest;
                    }
                }
            }
        }
    }
    deepest
}

/// MongoDB's depth of `doc` (0 for `{}`, 1 for `{a: 1}`, 2 for `{a: {b: 1}}`).
pub fn document_depth(doc: &Document) -> usize {
    walk(doc, usize::MAX)
}

/// Whether `doc` is at most `limit` levels deep; stops looking as soon as it is not.
pub fn document_within(doc: &Document, limit: usize) -> bool {
    walk(doc, limit) <= limit
}

/// The number of parts of a dotted path (`"a.b.c"` has 3).
pub fn path_parts(path: &str) -> usize {
    path.bytes().filter(|&b| b == b'.').count() + 1
}

/// The embedded containers still to visit at one level of a raw walk.
enum RawFrame<'a> {
    Document(RawIter<'a>),
    Array(RawArrayIter<'a>),
}

/// Walks raw BSON without building it, failing on a malformed element (the error is returned) and returning
/// `Ok(false)` as soon as any embedded document or array (empty or not) sits more than `limit` levels below
/// the top-level document. This is the check to run before turning bytes from the network or from disk into
/// a [`Document`], whose conversion recurses once per level.
pub fn raw_nesting_within(doc: &RawDocument, limit: usize) -> Result<bool, bson::error::Error> {
    let mut stack = vec![RawFrame::Document(doc.iter_elements())];
    while let Some(top) = stack.last_mut() {
        let next = match top {
            RawFrame::Document(elements) => match elements.next() {
                None => None,
                Some(element) => Some(element?.value()?),
            },
            RawFrame::Array(items) => items.next().transpose()?,
        };
        let Some(value) = next else {
            stack.pop();
            continue;
        };
        let frame = match value {
            RawBsonRef::Document(inner) => RawFrame::Document(inner.iter_elements()),
            RawBsonRef::Array(items) => RawFrame::Array(items.into_iter()),
            RawBsonRef::JavaScriptCodeWithScope(code) => RawFrame::Document(code.scope.iter_elements()),
            _ => continue,
        };
        if stack.len() > limit {
            return Ok(false);
        }
        stack.push(frame);
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
