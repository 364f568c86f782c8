//! Documents pulled one at a time through a pipeline, so only blocking stages hold more than one.
//!
//! A [`DocStream`] yields documents on demand. Sources (a collection scan, the oplog, a list) come from the
//! caller; [`super::build`] stacks the stages on top: per-document stages (`$match`, `$project`, `$unwind`,
//! `$skip`, `$limit`, ...) pass documents through as they are pulled, `$count` keeps a number, and the
//! blocking stages (`$sort`, `$group`) drain their input on the first pull under a memory [`Limits`].
use std::collections::VecDeque;
use std::path::PathBuf;

use bson::{Bson, Document};

use super::stages::{Stage, UnwindSpec, count, unwind_one};
use crate::query::QueryError;

/// A source or stage of a pipeline: the next document, or `None` at the end.
pub trait DocStream: Send {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError>;

    /// Called when the cursor holding this stream waits for a getMore: release what only one command may
    /// hold (a storage snapshot). The default has nothing to release.
    fn park(&mut self) {}
}

/// What blocking stages may hold in memory, and where they may spill (mongod's
/// `internalQueryMaxBlockingSortMemoryUsageBytes`, `internalDocumentSourceGroupMaxMemoryBytes`,
/// `internalQueryMaxPushBytes` / `internalQueryMaxAddToSetBytes`, and the command's `allowDiskUse`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub sort_bytes: usize,
    pub group_bytes: usize,
    /// One `$push` array.
    pub push_bytes: usize,
    /// One `$addToSet` array.
    pub add_to_set_bytes: usize,
    pub allow_disk_use: bool,
    /// The temporary directory for spilled runs; without one, `allowDiskUse` cannot spill and the limits hold.
    pub spill_dir: Option<PathBuf>,
}

/// mongod's default for every blocking stage: 100 MiB.
pub const DEFAULT_STAGE_BYTES: usize = 100 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sort_bytes: DEFAULT_STAGE_BYTES,
            group_bytes: DEFAULT_STAGE_BYTES,
            push_bytes: DEFAULT_STAGE_BYTES,
            add_to_set_bytes: DEFAULT_STAGE_BYTES,
            allow_disk_use: false,
            spill_dir: None,
        }
    }
}

impl Limits {
    /// Where to spill, when the command allowed it and there is somewhere to.
    pub(super) fn spill_dir(&self) -> Option<&std::path::Path> {
        self.spill_dir.as_deref().filter(|_| self.allow_disk_use)
    }
}

/// An approximation of the memory a value takes once decoded (what blocking stages count): the enum itself
/// plus what it owns on the heap.
pub(crate) fn approx_size(value: &Bson) -> usize {
    let heap = match value {
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => s.len(),
        Bson::Binary(b) => b.bytes.len(),
        Bson::RegularExpression(r) => r.pattern.len() + r.options.len(),
        Bson::JavaScriptCodeWithScope(c) => c.code.len() + approx_doc_size(&c.scope),
        Bson::Array(items) => items.iter().map(approx_size).sum::<usize>(),
        Bson::Document(doc) => approx_doc_size(doc),
        _ => 0,
    };
    std::mem::size_of::<Bson>() + heap
}

/// [`approx_size`] of a document's fields: each is an index-map entry (hash, key, value, index slot).
pub fn approx_doc_size(doc: &Document) -> usize {
    const ENTRY: usize = std::mem::size_of::<usize>() * 2 + std::mem::size_of::<String>();
    const MAP: usize = 96;
    doc.iter().map(|(k, v)| ENTRY + k.len() + approx_size(v)).sum::<usize>() + MAP
}

/// A list of documents as a stream.
pub struct VecStream(VecDeque<Document>);

impl VecStream {
    pub fn new(docs: impl Into<VecDeque<Document>>) -> VecStream {
        VecStream(docs.into())
    }
}

impl DocStream for VecStream {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        Ok(self.0.pop_front())
    }
}

/// A per-document stage over its input.
pub(super) struct StageStream {
    pub(super) input: Box<dyn DocStream>,
    pub(super) stage: Stage,
    /// `$skip`: still to drop; `$limit`: still to pass.
    pub(super) counter: u64,
    /// `$unwind`: the document being unwound and the next array index.
    pub(super) unwinding: Option<(Document, Vec<Bson>, usize)>,
    pub(super) done: bool,
}

impl StageStream {
    pub(super) fn new(input: Box<dyn DocStream>, stage: Stage) -> StageStream {
        let counter = match &stage {
            Stage::Skip(n) | Stage::Limit(n) => *n,
            _ => 0,
        };
        StageStream {
            input,
            stage,
            counter,
            unwinding: None,
            done: false,
        }
    }
}

/// The next document `$unwind` yields: the rest of the array being unwound, else from the next input.
fn next_unwound(
    input: &mut Box<dyn DocStream>,
    unwinding: &mut Option<(Document, Vec<Bson>, usize)>,
    spec: &UnwindSpec,
) -> Result<Option<Document>, QueryError> {
    loop {
        if let Some((doc, items, next)) = unwinding {
            if *next < items.len() {
                let index = *next;
                *next += 1;
                return Ok(Some(spec.element(
                    doc,
                    std::mem::replace(&mut items[index], Bson::Null),
                    index,
                )));
            }
            *unwinding = None;
        }
        let Some(doc) = input.next_doc()? else {
            return Ok(None);
        };
        match unwind_one(doc, spec) {
            Ok(Some(single)) => return Ok(Some(single)),
            Ok(None) => {}
            Err((doc, items)) => *unwinding = Some((doc, items, 0)),
        }
    }
}

impl DocStream for StageStream {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        if self.done {
            return Ok(None);
        }
        let out = match &self.stage {
            Stage::Match(filter) => loop {
                match self.input.next_doc()? {
                    Some(doc) if !filter.matches(&doc) => continue,
                    other => break other,
                }
            },
            Stage::Project(projection) => self.input.next_doc()?.map(|d| projection.try_apply(&d)).transpose()?,
            Stage::AddFields(fields) => self
                .input
                .next_doc()?
                .map(|d| super::stages::add_fields(&d, fields))
                .transpose()?,
            Stage::ReplaceRoot(expr) => self
                .input
                .next_doc()?
                .map(|d| super::stages::replace_root(&d, expr))
                .transpose()?,
            Stage::Skip(_) => loop {
                match self.input.next_doc()? {
                    Some(_) if self.counter > 0 => self.counter -= 1,
                    other => break other,
                }
            },
            Stage::Limit(_) => {
                if self.counter == 0 {
                    None
                } else {
                    self.counter -= 1;
                    self.input.next_doc()?
                }
            }
            Stage::Count(name) => {
                let mut total = 0usize;
                while self.input.next_doc()?.is_some() {
                    total += 1;
                }
                self.done = true;
                return Ok(count(total, name).pop());
            }
            Stage::Unwind(spec) => next_unwound(&mut self.input, &mut self.unwinding, spec)?,
            Stage::Sort(_) | Stage::Group(_) => {
                return Err(QueryError::new(
                    1,
                    "InternalError",
                    "a blocking stage run as a streaming one",
                ));
            }
        };
        if out.is_none() {
            self.done = true;
        }
        Ok(out)
    }

    fn park(&mut self) {
        self.input.park();
    }
}
