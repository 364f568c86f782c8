//! `insert` through the router: documents grouped by owning shard (consecutive runs when ordered), statement
//! ids kept, StaleConfig answers routed again.

use super::*;

/// What an insert has done so far.
#[derive(Default)]
pub(super) struct InsertOutcome {
    n: i64,
    write_errors: Vec<Document>,
    write_concern_error: Option<Document>,
    /// An ordered insert met an error: nothing after it runs.
    stopped: bool,
}

impl InsertOutcome {
    /// Takes in a shard's reply to the documents `indices` (positions in the client's batch).
    fn merge(&mut self, reply: &Document, indices: &[usize], ordered: bool) {
        self.n += reply.get("n").and_then(crate::bsonx::as_i64).unwrap_or(0);
        if let Ok(errors) = reply.get_array("writeErrors") {
            for error in errors.iter().filter_map(Bson::as_document) {
                let local = error.get("index").and_then(crate::bsonx::as_i64).unwrap_or(0) as usize;
                let mut error = error.clone();
                error.insert("index", indices.get(local).copied().unwrap_or(local) as i32);
                self.write_errors.push(error);
            }
            if ordered && !errors.is_empty() {
                self.stopped = true;
            }
        }
        if self.write_concern_error.is_none()
            && let Ok(error) = reply.get_document("writeConcernError")
        {
            self.write_concern_error = Some(error.clone());
        }
    }

    fn reply(mut self) -> Document {
        // Write counts are 32-bit in mongod's and mongos' replies.
        let mut reply = doc! {"n": super::write_count(self.n)};
        if !self.write_errors.is_empty() {
            self.write_errors
                .sort_by_key(|e| e.get("index").and_then(crate::bsonx::as_i64).unwrap_or(0));
            reply.insert("writeErrors", self.write_errors);
        }
        if let Some(error) = self.write_concern_error {
            reply.insert("writeConcernError", error);
        }
        reply
    }
}

pub(super) async fn insert(router: &Router, db: &str, body: &Document) -> Result<Document> {
    let coll = collection(body, "insert")?;
    let ns = format!("{db}.{coll}");
    let documents = insert_documents(body)?;
    let job = InsertJob {
        body,
        ordered: body.get_bool("ordered").unwrap_or(true),
        statements: statement_ids(body, documents.len()),
        documents,
    };
    let ordered = job.ordered;
    let mut outcome = InsertOutcome::default();
    let mut pending: Vec<usize> = (0..job.documents.len()).collect();
    for _ in 0..=MAX_STALE_RETRIES {
        if pending.is_empty() || outcome.stopped {
            return Ok(outcome.reply());
        }
        match placement(router, db, coll, true).await? {
            Placement::Missing => return Err(Error::internal(format!("database {db} was not created"))),
            Placement::Unsharded(database, shard) => {
                let part = job.part(&pending);
                let reply = shard
                    .client
                    .run(&versioned(&part, &ChunkVersion::unsharded(), Some(&database)))
                    .await?;
                if is_stale(&reply) {
                    note_stale(router, db, &ns, &reply);
                    continue;
                }
                if !reply_ok(&reply) {
                    return Ok(reply);
                }
                outcome.merge(&reply, &pending, ordered);
                pending.clear();
            }
            Placement::Sharded(table) => {
                let batches = job.batches(&table, &pending, &mut outcome);
                pending = job.send(router, &table, batches, &mut outcome).await?;
                if !pending.is_empty() {
                    note_stale(router, db, &ns, &doc! {"insert": &ns});
                }
            }
        }
    }
    if pending.is_empty() || outcome.stopped {
        Ok(outcome.reply())
    } else {
        Err(still_stale(&ns))
    }
}

/// The client's documents, each with an `_id` (generated first in the document when missing).
pub(super) fn insert_documents(body: &Document) -> Result<Vec<Document>> {
    let documents = body
        .get_array("documents")
        .map_err(|_| Error::failed_to_parse("BSON field 'insert.documents' is missing but a required field"))?;
    documents
        .iter()
        .map(|d| match d {
            Bson::Document(d) if d.contains_key("_id") => Ok(d.clone()),
            Bson::Document(d) => {
                let mut with_id = doc! {"_id": ObjectId::new()};
                with_id.extend(d.clone());
                Ok(with_id)
            }
            _ => Err(Error::type_mismatch("insert.documents must be an array of documents")),
        })
        .collect()
}

/// Each document's statement id: the client's `stmtIds`, or `stmtId + i`, or `i`.
pub(super) fn statement_ids(body: &Document, count: usize) -> Vec<i32> {
    if let Ok(ids) = body.get_array("stmtIds") {
        return ids
            .iter()
            .map(|v| crate::bsonx::as_i64(v).unwrap_or(0) as i32)
            .collect();
    }
    let first = body.get("stmtId").and_then(crate::bsonx::as_i64).unwrap_or(0) as i32;
    (0..count as i32).map(|i| first + i).collect()
}

/// One client insert command being routed: its documents (each with an `_id`) and their statement ids.
pub(super) struct InsertJob<'a> {
    body: &'a Document,
    documents: Vec<Document>,
    statements: Vec<i32>,
    ordered: bool,
}

impl InsertJob<'_> {
    /// The insert command for the documents `indices`, with their statement ids when it is a retryable write.
    fn part(&self, indices: &[usize]) -> Document {
        let (body, documents, statements) = (self.body, &self.documents, &self.statements);
        let mut part = Document::new();
        for (key, value) in body {
            if !matches!(key.as_str(), "documents" | "stmtIds" | "stmtId") {
                part.insert(key.clone(), value.clone());
            }
        }
        part.insert(
            "documents",
            indices
                .iter()
                .map(|&i| Bson::Document(documents[i].clone()))
                .collect::<Vec<_>>(),
        );
        if body.contains_key("txnNumber") {
            part.insert(
                "stmtIds",
                indices
                    .iter()
                    .map(|&i| Bson::Int32(statements.get(i).copied().unwrap_or(i as i32)))
                    .collect::<Vec<_>>(),
            );
        }
        part
    }

    /// Groups the pending documents by owning shard: consecutive runs when ordered, one batch per shard
    /// otherwise. A document whose key cannot be extracted is a write error (and stops an ordered insert there).
    fn batches(
        &self,
        table: &RoutingTable,
        pending: &[usize],
        outcome: &mut InsertOutcome,
    ) -> Vec<(String, Vec<usize>)> {
        let (documents, ordered) = (&self.documents, self.ordered);
        let mut batches: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in pending {
            let shard = match table.pattern.extract(&documents[i]) {
                Ok(key) => table.chunk_for(&key).shard.clone(),
                Err(err) => {
                    outcome.write_errors.push(err.to_write_error(i));
                    if ordered {
                        outcome.stopped = true;
                        break;
                    }
                    continue;
                }
            };
            let existing = if ordered {
                batches.last_mut().filter(|(s, _)| *s == shard)
            } else {
                batches.iter_mut().find(|(s, _)| *s == shard)
            };
            match existing {
                Some((_, indices)) => indices.push(i),
                None => batches.push((shard, vec![i])),
            }
        }
        batches
    }

    /// Sends the batches; returns the documents to route again (their shard answered StaleConfig).
    async fn send(
        &self,
        router: &Router,
        table: &RoutingTable,
        batches: Vec<(String, Vec<usize>)>,
        outcome: &mut InsertOutcome,
    ) -> Result<Vec<usize>> {
        let ordered = self.ordered;
        // An ordered insert that met a bad key still sends the documents before it, then stops.
        let stop_after = outcome.stopped;
        outcome.stopped = false;
        let mut again = Vec::new();
        for (k, (shard_id, indices)) in batches.iter().enumerate() {
            let shard = router.catalog.shard(shard_id).await?;
            let part = self.part(indices);
            let reply = shard
                .client
                .run(&versioned(&part, &table.collection_version(), None))
                .await?;
            if is_stale(&reply)
                && router
                    .failpoints
                    .hit(crate::failpoint::ROUTER_IGNORES_STALE_CONFIG)
                    .is_some()
            {
                // The bug: the batch goes to the same shard again, unversioned, instead of being routed again.
                let reply = shard.client.run(&part).await?;
                outcome.merge(&reply, indices, ordered);
                continue;
            }
            if is_stale(&reply) {
                if ordered {
                    again.extend(batches[k..].iter().flat_map(|(_, i)| i.iter().copied()));
                    break;
                }
                again.extend(indices.iter().copied());
                continue;
            }
            if !reply_ok(&reply) {
                let error = error_of_reply(&reply);
                outcome
                    .write_errors
                    .extend(indices.iter().map(|&i| error.to_write_error(i)));
                if ordered {
                    outcome.stopped = true;
                    return Ok(Vec::new());
                }
                continue;
            }
            outcome.merge(&reply, indices, ordered);
            if outcome.stopped {
                return Ok(Vec::new());
            }
        }
        outcome.stopped = stop_after && again.is_empty();
        again.sort_unstable();
        Ok(again)
    }
}
