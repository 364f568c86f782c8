//! Aggregation pipelines: `$match`, `$project`, `$addFields` / `$set`, `$unset`, `$sort`, `$skip`, `$limit`,
//! `$count`, `$unwind`, `$replaceRoot` / `$replaceWith` and `$group`, pulled document by document.
//!
//! The whole pipeline is parsed before any document is touched, so a malformed later stage fails the command
//! up front as in MongoDB. [`build`] stacks the stages on a source [`DocStream`]: per-document stages pass
//! documents through as they are pulled, and only `$sort` and `$group` hold documents, within [`Limits`]
//! (spilling to disk under `allowDiskUse`). A `$sort` followed by `$limit` (with `$skip`s between) keeps only
//! the top k, as mongod does. The Rust driver's `countDocuments` pipeline
//! (`[$match, $skip?, $limit?, {$group: {_id: 1, n: {$sum: 1}}}]`) yields `[{_id: 1, n}]`, or nothing for no
//! matches.
mod group;
mod sorter;
mod stages;
mod stream;

use bson::{DateTime, Document};

use super::QueryError;
pub use sorter::{SortStream, sort_memory_error};
use stages::Stage;
pub use stream::{DEFAULT_STAGE_BYTES, DocStream, Limits, VecStream, approx_doc_size};

/// Parses `stages` and stacks them on `input`; nothing is read until the result is pulled.
pub fn build(
    stages: &[Document],
    input: Box<dyn DocStream>,
    _now: DateTime,
    limits: &Limits,
) -> Result<Box<dyn DocStream>, QueryError> {
    let parsed = stages.iter().map(Stage::parse).collect::<Result<Vec<_>, _>>()?;
    let mut stream = input;
    for (i, stage) in parsed.iter().enumerate() {
        stream = match stage {
            Stage::Sort(spec) => Box::new(SortStream::new(
                stream,
                spec.clone(),
                top_k(&parsed[i + 1..]),
                limits.clone(),
            )),
            Stage::Group(spec) => Box::new(DepthChecked(Box::new(group::GroupStream::new(
                stream,
                spec.clone(),
                limits.clone(),
            )))),
            other if other.builds_documents() => {
                Box::new(DepthChecked(Box::new(stream::StageStream::new(stream, other.clone()))))
            }
            other => Box::new(stream::StageStream::new(stream, other.clone())),
        };
    }
    Ok(stream)
}

/// How many documents a `$sort` must produce when `$skip`s and a `$limit` follow it.
fn top_k(after: &[Stage]) -> Option<usize> {
    let mut skipped: u64 = 0;
    for stage in after {
        match stage {
            Stage::Skip(n) => skipped = skipped.saturating_add(*n),
            Stage::Limit(n) => return usize::try_from(skipped.saturating_add(*n)).ok(),
            _ => return None,
        }
    }
    None
}

/// The stages a pipeline-style update may run.
const UPDATE_STAGES: [&str; 6] = [
    "$addFields",
    "$set",
    "$project",
    "$unset",
    "$replaceRoot",
    "$replaceWith",
];

/// Checks a pipeline-style update: every stage parses, and is one an update may run (InvalidOptions, 72,
/// otherwise).
pub fn check_update_pipeline(stages: &[Document]) -> Result<(), QueryError> {
    for stage in stages {
        Stage::parse(stage)?;
    }
    for stage in stages {
        let name = stage.keys().next().map(String::as_str).unwrap_or("");
        if !UPDATE_STAGES.contains(&name) {
            return Err(QueryError::new(
                72,
                "InvalidOptions",
                format!("{name} is not allowed to be used within an update"),
            ));
        }
    }
    Ok(())
}

/// Runs an aggregation pipeline over a list of documents, in memory within the default limits.
pub fn run(stages: &[Document], input: Vec<Document>, now: DateTime) -> Result<Vec<Document>, QueryError> {
    let mut stream = build(stages, Box::new(VecStream::new(input)), now, &Limits::default())?;
    let mut out = Vec::new();
    while let Some(doc) = stream.next_doc()? {
        out.push(doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

/// Holds every document a stage builds to the storage depth limit (Overflow, 15): no later stage sees, and no
/// reply carries, a document nested deeper than [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH).
struct DepthChecked(Box<dyn DocStream>);

impl DocStream for DepthChecked {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        match self.0.next_doc()? {
            Some(doc) if !crate::depth::document_within(&doc, crate::depth::MAX_DOCUMENT_DEPTH) => {
                Err(QueryError::document_too_deep())
            }
            other => Ok(other),
        }
    }

    fn park(&mut self) {
        self.0.park();
    }
}
