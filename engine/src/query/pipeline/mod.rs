//! Aggregation pipelines: `$match`, `$project`, `$addFields` / `$set`, `$unset`, `$sort`, `$skip`, `$limit`,
//! `$count`, `$unwind`, `$replaceRoot` / `$replaceWith` and `$group`, run in memory over a `Vec<Document>`.
//!
//! The whole pipeline is parsed before any document is touched, so a malformed later stage fails the command
//! up front as in MongoDB. The Rust driver's `countDocuments` pipeline
//! (`[$match, $skip?, $limit?, {$group: {_id: 1, n: {$sum: 1}}}]`) yields `[{_id: 1, n}]`, or nothing for no
//! matches.
mod group;
mod stages;

use bson::{DateTime, Document};

use super::QueryError;
use stages::Stage;

/// Runs an aggregation pipeline over the input documents. Every document a stage builds is held to the
/// storage depth limit (Overflow, 15), so no stage ever sees, and no reply ever carries, a document nested
/// deeper than [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH).
pub fn run(stages: &[Document], input: Vec<Document>, now: DateTime) -> Result<Vec<Document>, QueryError> {
    let parsed = stages.iter().map(Stage::parse).collect::<Result<Vec<_>, _>>()?;
    let mut docs = input;
    for stage in &parsed {
        docs = stage.run(docs, now)?;
        if stage.builds_documents()
            && !docs
                .iter()
                .all(|doc| crate::depth::document_within(doc, crate::depth::MAX_DOCUMENT_DEPTH))
        {
            return Err(QueryError::document_too_deep());
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests;
