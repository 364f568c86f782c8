//! Typed oplog entries: an entry is parsed once (when fetched from a sync source or read back from storage)
//! into an [`OplogOp`] with its [`OpTime`], and [`OplogOp::step`] is the one definition of what a CRUD entry
//! does to a document, shared by sequential apply and the parallel per-document fold.
//!
//! Entries follow MongoDB's oplog format: `{op, ns, ui, o, o2?, ts, t, v: 2, wall, lsid?,
//! txnNumber?, stmtId?}`. Updates are logged as a `$v: 2` diff of top-level fields computed from the pre- and
//! post-images ([`UpdateChange::between`]), so every entry is idempotent: `$inc` and `$push` appear as the
//! values they produced. An entry this member cannot apply (an unknown kind, a missing `_id`, an unsupported
//! command) still parses, as [`OplogOp::Unusable`]: applying it is skipped with a warning, and it is kept in
//! the oplog as it came.

use std::fmt;

use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::{Bson, Document, doc};

use super::catalog::Namespace;
use super::write_ctx::{RetryImage, SessionStatement};
use crate::depth::MAX_BSON_DEPTH;
use crate::error::{Error, Result};
use crate::repl::OpTime;

/// The kind of an entry, as its `op` field spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Insert,
    Update,
    Delete,
    Command,
    Noop,
}

impl OpKind {
    /// The `op` field's value.
    pub fn code(self) -> &'static str {
        match self {
            OpKind::Insert => "i",
            OpKind::Update => "u",
            OpKind::Delete => "d",
            OpKind::Command => "c",
            OpKind::Noop => "n",
        }
    }

    pub fn from_code(code: &str) -> Option<OpKind> {
        Some(match code {
            "i" => OpKind::Insert,
            "u" => OpKind::Update,
            "d" => OpKind::Delete,
            "c" => OpKind::Command,
            "n" => OpKind::Noop,
            _ => return None,
        })
    }
}

/// What an update entry's `o` holds: a `$v: 2` diff of top-level fields, or a whole replacement document.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateChange {
    /// The diff: `d` deleted fields, `u` updated fields, `i` inserted fields.
    Diff(Document),
    /// The document's new version (its `_id` is kept).
    Replacement(Document),
}

impl UpdateChange {
    /// The diff that turns `before` into `after` (what a primary logs for every update).
    pub fn between(before: &Document, after: &Document) -> UpdateChange {
        let mut updated = Document::new();
        let mut deleted = Document::new();
        for (key, value) in after {
            if before.get(key) != Some(value) {
                updated.insert(key.clone(), value.clone());
            }
        }
        for key in before.keys() {
            if !after.contains_key(key) {
                deleted.insert(key.clone(), false);
            }
        }
        let mut diff = Document::new();
        if !deleted.is_empty() {
            diff.insert("d", deleted);
        }
        if !updated.is_empty() {
            diff.insert("u", updated);
        }
        UpdateChange::Diff(diff)
    }

    /// Reads an update entry's `o`: a diff when it has `$v`, else a replacement.
    pub fn parse(o: &Document) -> UpdateChange {
        if o.contains_key("$v") {
            UpdateChange::Diff(o.get_document("diff").cloned().unwrap_or_default())
        } else {
            UpdateChange::Replacement(o.clone())
        }
    }

    /// The entry's `o` field.
    pub fn into_document(self) -> Document {
        match self {
            UpdateChange::Diff(diff) => doc! {"$v": 2, "diff": diff},
            UpdateChange::Replacement(doc) => doc,
        }
    }

    /// The document after the change. Applying a diff twice is harmless (it sets values, never increments).
    pub fn apply(&self, mut current: Document) -> Document {
        match self {
            UpdateChange::Diff(diff) => {
                if let Ok(deleted) = diff.get_document("d") {
                    for key in deleted.keys() {
                        current.remove(key);
                    }
                }
                for section in ["u", "i"] {
                    if let Ok(fields) = diff.get_document(section) {
                        for (key, value) in fields {
                            current.insert(key.clone(), value.clone());
                        }
                    }
                }
                current
            }
            UpdateChange::Replacement(replacement) => {
                let id = current.get("_id").cloned().unwrap_or(Bson::Null);
                let mut next = replacement.clone();
                next.insert("_id", id);
                next
            }
        }
    }
}

/// A replicated catalog change (`op: "c"`).
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOp {
    Create {
        ns: Namespace,
        options: Document,
    },
    Drop {
        ns: Namespace,
    },
    DropDatabase {
        db: String,
    },
    CreateIndexes {
        ns: Namespace,
        spec: Document,
    },
    /// `uuid` (the entry's `ui`) finds the source even when a replay finds it already renamed.
    Rename {
        from: Namespace,
        to: Namespace,
        stay_temp: bool,
    },
    /// `collMod`: `options` (validator, validationLevel, validationAction) replace the collection's own.
    CollMod {
        ns: Namespace,
        options: Document,
    },
    /// `index` is an index name, or `*` for all but `_id`.
    DropIndexes {
        ns: Namespace,
        index: String,
    },
}

impl CommandOp {
    /// Reads a command entry's `o` (`db` is the database of its `ns`).
    fn parse(db: &str, o: &Document) -> std::result::Result<CommandOp, String> {
        let (name, value) = o.iter().next().ok_or("empty command entry")?;
        let ns = Namespace::new(db, value.as_str().unwrap_or(""));
        let rest = || -> Document { o.iter().skip(1).map(|(k, v)| (k.clone(), v.clone())).collect() };
        Ok(match name.as_str() {
            "create" => CommandOp::Create { ns, options: rest() },
            "drop" => CommandOp::Drop { ns },
            "dropDatabase" => CommandOp::DropDatabase { db: db.to_string() },
            "createIndexes" => CommandOp::CreateIndexes { ns, spec: rest() },
            "collMod" => CommandOp::CollMod { ns, options: rest() },
            "renameCollection" => CommandOp::Rename {
                from: o
                    .get_str("renameCollection")
                    .ok()
                    .and_then(Namespace::parse)
                    .ok_or("renameCollection entry without a source namespace")?,
                to: o
                    .get_str("to")
                    .ok()
                    .and_then(Namespace::parse)
                    .ok_or("renameCollection entry without a target namespace")?,
                stay_temp: o.get_bool("stayTemp").unwrap_or(false),
            },
            "dropIndexes" => CommandOp::DropIndexes {
                ns,
                index: o.get_str("index").unwrap_or("*").to_string(),
            },
            other => return Err(format!("unsupported command in oplog: {other}")),
        })
    }
}

/// What an entry does.
#[derive(Debug, Clone, PartialEq)]
pub enum OplogOp {
    /// Inserts `doc` (whose `_id` is `id`); an existing document with that `_id` is replaced.
    Insert {
        ns: Namespace,
        id: Bson,
        doc: Document,
    },
    /// Changes the document with `_id` `id`; a missing document stays missing.
    Update {
        ns: Namespace,
        id: Bson,
        change: UpdateChange,
    },
    /// Deletes the document with `_id` `id`, if there is one.
    Delete {
        ns: Namespace,
        id: Bson,
    },
    Command(CommandOp),
    Noop,
    /// An entry this member cannot apply, and why.
    Unusable(String),
}

impl OplogOp {
    /// Reads what an entry does. Only the document an entry carries (`o`) is decoded, and only for the kinds
    /// that need it; the rest is read where it lies.
    pub fn parse(entry: &RawDocument) -> OplogOp {
        let Ok(code) = entry.get_str("op") else {
            return OplogOp::Unusable("oplog entry without op".into());
        };
        let Some(kind) = OpKind::from_code(code) else {
            return OplogOp::Unusable(format!("unknown oplog op type '{code}'"));
        };
        let ns_text = entry.get_str("ns").unwrap_or("");
        let o = entry.get_document("o").ok();
        let crud_ns = || Namespace::parse(ns_text).ok_or_else(|| format!("bad namespace in oplog entry: '{ns_text}'"));
        let id_in = |field: &str, doc: Option<&RawDocument>| {
            let value = doc
                .and_then(|d| d.get("_id").ok().flatten())
                .ok_or_else(|| format!("oplog entry without {field}._id"))?;
            Bson::try_from(value).map_err(|e| format!("oplog entry with a malformed {field}._id: {e}"))
        };
        let decoded =
            |o: &RawDocument| crate::bsonx::to_document(o).map_err(|e| format!("oplog entry with a malformed o: {e}"));
        let parsed = match kind {
            OpKind::Noop => Ok(OplogOp::Noop),
            OpKind::Command => {
                let db = ns_text.split('.').next().unwrap_or("");
                let o = o.map(decoded).transpose().map(Option::unwrap_or_default);
                o.and_then(|o| CommandOp::parse(db, &o).map(OplogOp::Command))
            }
            OpKind::Insert => crud_ns().and_then(|ns| {
                let id = id_in("o", o)?;
                let doc = o.map(decoded).transpose()?.unwrap_or_default();
                Ok(OplogOp::Insert { ns, id, doc })
            }),
            OpKind::Update => crud_ns().and_then(|ns| {
                let id = id_in("o2", entry.get_document("o2").ok())?;
                let o = decoded(o.ok_or("update entry without o")?)?;
                Ok(OplogOp::Update {
                    ns,
                    id,
                    change: UpdateChange::parse(&o),
                })
            }),
            OpKind::Delete => crud_ns().and_then(|ns| Ok(OplogOp::Delete { ns, id: id_in("o", o)? })),
        };
        parsed.unwrap_or_else(OplogOp::Unusable)
    }

    /// The kind of entry; `None` for an unusable one.
    pub fn kind(&self) -> Option<OpKind> {
        Some(match self {
            OplogOp::Insert { .. } => OpKind::Insert,
            OplogOp::Update { .. } => OpKind::Update,
            OplogOp::Delete { .. } => OpKind::Delete,
            OplogOp::Command(_) => OpKind::Command,
            OplogOp::Noop => OpKind::Noop,
            OplogOp::Unusable(_) => return None,
        })
    }

    /// The document a CRUD entry touches, `(namespace, _id)`; `None` for commands and no-ops.
    pub fn target(&self) -> Option<(&Namespace, &Bson)> {
        match self {
            OplogOp::Insert { ns, id, .. } | OplogOp::Update { ns, id, .. } | OplogOp::Delete { ns, id } => {
                Some((ns, id))
            }
            _ => None,
        }
    }

    /// The step: the version of the [`target`](Self::target) document after this entry, given its version
    /// before (`None`: missing, or deleted). An insert replaces, an update of a missing document does
    /// nothing, a delete removes; other entries leave the document as it is. Pure, so sequential apply and
    /// the parallel per-document fold give the same result.
    pub fn step(&self, current: Option<Document>) -> Option<Document> {
        match self {
            OplogOp::Insert { doc, .. } => Some(doc.clone()),
            OplogOp::Update { change, .. } => current.map(|doc| change.apply(doc)),
            OplogOp::Delete { .. } => None,
            OplogOp::Command(_) | OplogOp::Noop | OplogOp::Unusable(_) => current,
        }
    }
}

/// The final state of one document after its entries (in oplog order) are applied to `pre`: `None` when it
/// ends deleted.
pub fn fold_document(pre: Option<Document>, entries: &[&OplogEntry]) -> Option<Document> {
    entries.iter().fold(pre, |doc, entry| entry.op.step(doc))
}

/// The `(namespace, _id)` a CRUD entry document touches; `None` for commands, no-ops and unusable entries.
pub fn crud_target(entry: &Document) -> Option<(Namespace, Bson)> {
    let raw = RawDocumentBuf::try_from(entry).ok()?;
    OplogOp::parse(&raw).target().map(|(ns, id)| (ns.clone(), id.clone()))
}

/// One oplog entry, parsed: its position, what it does, and its bytes as they came (appended verbatim).
#[derive(Debug, Clone)]
pub struct OplogEntry {
    pub optime: OpTime,
    pub op: OplogOp,
    /// The collection's UUID (`ui`).
    pub ui: Option<bson::Uuid>,
    /// The retryable-write statement that wrote it (`lsid`, `txnNumber`, `stmtId`).
    pub session: Option<SessionStatement>,
    raw: RawDocumentBuf,
}

impl OplogEntry {
    /// Parses an entry as it came from another member or from storage: its bytes are kept and appended as they
    /// are. Only an entry without a position (`ts`) is refused: it cannot be placed in the oplog. One that
    /// cannot be applied parses as [`OplogOp::Unusable`].
    pub fn from_raw(raw: RawDocumentBuf) -> Result<OplogEntry> {
        let optime = optime_of_raw(&raw).ok_or_else(|| Error::bad_value("oplog entry without ts"))?;
        Ok(OplogEntry {
            optime,
            op: OplogOp::parse(&raw),
            ui: uuid_of(&raw),
            session: session_of(&raw),
            raw,
        })
    }

    /// Parses an entry held as stored bytes (one whole BSON document). Like every stored document read back,
    /// it is first checked for malformed elements and for nesting past [`MAX_BSON_DEPTH`], which the decoding
    /// of its `o` could not survive.
    pub fn from_bytes(bytes: &[u8]) -> Result<OplogEntry> {
        let malformed = |e: &dyn fmt::Display| Error::bad_value(format!("stored oplog entry: {e}"));
        let raw = RawDocumentBuf::from_bytes(bytes.to_vec()).map_err(|e| malformed(&e))?;
        if !crate::depth::raw_nesting_within(&raw, MAX_BSON_DEPTH).map_err(|e| malformed(&e))? {
            return Err(malformed(&format_args!("nested past {MAX_BSON_DEPTH} levels")));
        }
        OplogEntry::from_raw(raw)
    }

    /// Parses an entry document (encoding it once).
    pub fn parse(document: Document) -> Result<OplogEntry> {
        let raw = RawDocumentBuf::try_from(&document)
            .map_err(|e| Error::bad_value(format!("oplog entry cannot be encoded: {e}")))?;
        OplogEntry::from_raw(raw)
    }

    /// [`OplogEntry::from_raw`] of a batch (in order).
    pub fn from_raw_all(entries: Vec<RawDocumentBuf>) -> Result<Vec<OplogEntry>> {
        entries.into_iter().map(OplogEntry::from_raw).collect()
    }

    /// Parses a batch of entry documents (in order).
    pub fn parse_all(documents: Vec<Document>) -> Result<Vec<OplogEntry>> {
        documents.into_iter().map(OplogEntry::parse).collect()
    }

    /// The optime `{ts, t}` of an entry document (term -1 when it has none).
    pub fn optime_of(entry: &Document) -> Option<OpTime> {
        let ts = entry.get_timestamp("ts").ok()?;
        let term = match entry.get("t") {
            Some(Bson::Int64(t)) => *t,
            Some(Bson::Int32(t)) => i64::from(*t),
            _ => -1,
        };
        Some(OpTime { ts, term })
    }

    /// The entry's bytes as they came.
    pub fn raw(&self) -> &RawDocument {
        &self.raw
    }

    /// The entry as a document (decoded on each call).
    pub fn to_document(&self) -> Result<Document> {
        crate::bsonx::to_document(self.raw.as_ref())
            .map_err(|e| Error::bad_value(format!("malformed oplog entry: {e}")))
    }

    /// The primary's wall-clock time when it wrote the entry.
    pub fn wall(&self) -> Option<bson::DateTime> {
        self.raw.get_datetime("wall").ok()
    }
}

impl fmt::Display for OplogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_document() {
            Ok(document) => document.fmt(f),
            Err(_) => write!(f, "{:?}", self.raw),
        }
    }
}

/// [`OplogEntry::optime_of`] of an entry's bytes: its `ts` and `t`, read without decoding the rest.
pub(super) fn optime_of_raw(entry: &RawDocument) -> Option<OpTime> {
    let ts = entry.get_timestamp("ts").ok()?;
    let term = match entry.get("t") {
        Ok(Some(RawBsonRef::Int64(t))) => t,
        Ok(Some(RawBsonRef::Int32(t))) => i64::from(t),
        _ => -1,
    };
    Some(OpTime { ts, term })
}

fn uuid_of(entry: &RawDocument) -> Option<bson::Uuid> {
    let binary = entry.get_binary("ui").ok()?;
    binary.bytes.try_into().ok().map(bson::Uuid::from_bytes)
}

fn session_of(entry: &RawDocument) -> Option<SessionStatement> {
    let lsid = crate::bsonx::to_document(entry.get_document("lsid").ok()?).ok()?;
    let txn_number = entry.get_i64("txnNumber").ok()?;
    let stmt_id = match entry.get("stmtId") {
        Ok(Some(RawBsonRef::Int32(n))) => n,
        Ok(Some(RawBsonRef::Int64(n))) => n as i32,
        _ => return None,
    };
    Some(SessionStatement {
        lsid,
        txn_number,
        stmt_id,
        retry_image: entry.get_str("needsRetryImage").ok().and_then(RetryImage::parse),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bson::{Timestamp, doc};
    use proptest::prelude::*;

    use super::*;
    use crate::storage::{Storage, keystring};

    fn entry(op: &str, o: Document, o2: Option<Document>) -> OplogEntry {
        let mut e = doc! {"op": op, "ns": "db.c", "o": o, "ts": Timestamp { time: 1, increment: 1 }, "t": 1i64};
        if let Some(o2) = o2 {
            e.insert("o2", o2);
        }
        OplogEntry::parse(e).expect("an entry with ts parses")
    }

    #[test]
    fn folding_follows_oplog_order_per_document() {
        let insert = entry("i", doc! {"_id": 1, "n": 1, "gone": true}, None);
        let diff = UpdateChange::between(&doc! {"_id": 1, "n": 1, "gone": true}, &doc! {"_id": 1, "n": 2});
        let update = entry("u", diff.into_document(), Some(doc! {"_id": 1}));
        let replace = entry("u", doc! {"r": 1}, Some(doc! {"_id": 1}));
        let delete = entry("d", doc! {"_id": 1}, None);
        assert_eq!(fold_document(None, &[&insert, &update]), Some(doc! {"_id": 1, "n": 2}));
        assert_eq!(
            fold_document(None, &[&insert, &update, &replace]),
            Some(doc! {"r": 1, "_id": 1})
        );
        assert_eq!(fold_document(None, &[&insert, &delete]), None);
        assert_eq!(
            fold_document(None, &[&delete, &insert]),
            Some(doc! {"_id": 1, "n": 1, "gone": true})
        );
        // An update of a missing document is a no-op (idempotent apply), as in sequential apply.
        assert_eq!(fold_document(None, &[&update]), None);
        assert_eq!(
            crud_target(&update.to_document().expect("decodes")).map(|(ns, id)| (ns.full(), id)),
            Some(("db.c".to_string(), Bson::Int32(1)))
        );
        assert_eq!(
            crud_target(&entry("n", doc! {"msg": "x"}, None).to_document().expect("decodes")),
            None
        );
    }

    #[test]
    fn entries_parse_into_their_kinds() {
        let create = entry("c", doc! {"create": "things", "capped": true}, None);
        assert_eq!(
            create.op,
            OplogOp::Command(CommandOp::Create {
                ns: Namespace::new("db", "things"),
                options: doc! {"capped": true}
            })
        );
        let coll_mod = entry("c", doc! {"collMod": "things", "validationAction": "warn"}, None);
        assert_eq!(
            coll_mod.op,
            OplogOp::Command(CommandOp::CollMod {
                ns: Namespace::new("db", "things"),
                options: doc! {"validationAction": "warn"}
            })
        );
        let rename = entry(
            "c",
            doc! {"renameCollection": "db.a", "to": "db.b", "stayTemp": true},
            None,
        );
        assert_eq!(
            rename.op,
            OplogOp::Command(CommandOp::Rename {
                from: Namespace::new("db", "a"),
                to: Namespace::new("db", "b"),
                stay_temp: true
            })
        );
        assert_eq!(
            entry("c", doc! {"dropIndexes": "c"}, None).op.kind(),
            Some(OpKind::Command)
        );
        assert_eq!(entry("n", doc! {}, None).op, OplogOp::Noop);
        assert_eq!(entry("d", doc! {"_id": 4}, None).optime, OpTime::new(1, 1, 1));
        for (op, o, o2) in [
            ("x", doc! {}, None),
            ("i", doc! {"no_id": 1}, None),
            ("u", doc! {"$v": 2, "diff": {}}, None),
            ("c", doc! {"applyOps": []}, None),
            ("c", doc! {"renameCollection": "db.a"}, None),
        ] {
            let parsed = entry(op, o, o2);
            assert!(matches!(parsed.op, OplogOp::Unusable(_)), "{parsed} is unusable");
            assert_eq!(parsed.op.step(Some(doc! {"_id": 1})), Some(doc! {"_id": 1}));
        }
        assert!(
            OplogEntry::parse(doc! {"op": "n", "o": {}}).is_err(),
            "no ts, no place in the oplog"
        );
    }

    #[test]
    fn stored_bytes_nested_past_the_limit_are_refused_before_they_are_decoded() {
        let mut o = doc! {"_id": 1};
        for _ in 0..crate::depth::MAX_BSON_DEPTH {
            o = doc! {"_id": 1, "a": o};
        }
        let entry = doc! {"ts": Timestamp { time: 1, increment: 1 }, "op": "i", "ns": "db.c", "o": o};
        let bytes = entry.to_vec().expect("encodes");
        let refused = OplogEntry::from_bytes(&bytes);
        assert!(refused.is_err(), "{refused:?}");
        std::mem::forget(entry);
    }

    #[test]
    fn an_entry_keeps_the_bytes_it_came_as_and_reads_its_fields_from_them() {
        // Another member's entry, in its own field order, with a 32-bit term, a session and a field this
        // member does not know: appended verbatim, and parsed as the same entry decoded would be.
        let uuid = bson::Uuid::from_bytes([7; 16]);
        let sent = doc! {
            "wall": bson::DateTime::from_millis(1_700_000_000_123), "t": 3, "ts": Timestamp { time: 9, increment: 2 },
            "o": {"_id": 5i64, "x": [1, {"y": "z"}]}, "ns": "db.c", "op": "i", "future": {"a": 1},
            "ui": uuid, "lsid": {"id": uuid}, "txnNumber": 4i64, "stmtId": 0, "needsRetryImage": "postImage",
        };
        let bytes = sent.to_vec().expect("encodes");
        let entry = OplogEntry::from_bytes(&bytes).expect("parses");
        assert_eq!(entry.raw().as_bytes(), bytes.as_slice());
        assert_eq!(entry.optime, OpTime::new(9, 2, 3));
        assert_eq!(entry.wall(), Some(bson::DateTime::from_millis(1_700_000_000_123)));
        assert_eq!(entry.ui, Some(uuid));
        assert_eq!(
            entry.op,
            OplogOp::Insert {
                ns: Namespace::new("db", "c"),
                id: Bson::Int64(5),
                doc: doc! {"_id": 5i64, "x": [1, {"y": "z"}]},
            }
        );
        let session = entry.session.as_ref().expect("a retryable write's entry");
        assert_eq!((session.txn_number, session.stmt_id), (4, 0));
        assert_eq!(session.retry_image, Some(RetryImage::Post));
        assert_eq!(entry.to_document().ok(), Some(sent.clone()));
        let batch = crate::storage::EncodedBatch::new(std::slice::from_ref(&entry)).expect("a batch");
        assert_eq!(batch.entry(0), bytes.as_slice());
        let decoded = OplogEntry::parse(sent).expect("parses");
        assert_eq!(
            (decoded.optime, &decoded.op, decoded.raw()),
            (entry.optime, &entry.op, entry.raw())
        );
        // From another member, a malformed `o` makes the entry unusable, not the batch unreadable.
        let mut broken = doc! {"ts": Timestamp { time: 1, increment: 1 }, "op": "i", "ns": "db.c", "o": {"_id": 1}}
            .to_vec()
            .expect("encodes");
        // From the end: the entry's NUL, `o`'s NUL, `_id`'s int32, its name "_id\0", then its type byte.
        let id_type = broken.len() - 1 - 1 - 4 - 4 - 1;
        assert_eq!(broken[id_type], 0x10, "the type byte of o._id");
        broken[id_type] = 0x7e;
        assert!(
            OplogEntry::from_bytes(&broken).is_err(),
            "stored bytes are checked whole"
        );
        let broken = RawDocumentBuf::from_bytes(broken).expect("framed");
        let broken = OplogEntry::from_raw(broken).expect("still has its ts");
        assert!(
            matches!(&broken.op, OplogOp::Unusable(why) if why.contains("o._id")),
            "{:?}",
            broken.op
        );
    }

    #[test]
    fn diff_round_trips_and_reapplies_harmlessly() {
        let before = doc! {"_id": 1, "a": 1, "b": [1, 2], "gone": true};
        let after = doc! {"_id": 1, "a": 2, "b": [1, 2, 3], "new": "x"};
        let change = UpdateChange::parse(&UpdateChange::between(&before, &after).into_document());
        let once = change.apply(before.clone());
        assert!(same_fields(&once, &after), "{once} is {after}");
        assert_eq!(change.apply(once.clone()), once);
    }

    /// Equal as sets of fields (a diff puts new fields last, whatever their place in the post-image).
    fn same_fields(a: &Document, b: &Document) -> bool {
        a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
    }

    fn value() -> impl Strategy<Value = Bson> {
        prop_oneof![
            any::<i32>().prop_map(Bson::Int32),
            "[a-z]{0,3}".prop_map(Bson::String),
            prop::collection::vec(0..3i32, 0..3).prop_map(|v| Bson::Array(v.into_iter().map(Bson::Int32).collect())),
            (0..3i32).prop_map(|n| Bson::Document(doc! {"n": n})),
        ]
    }

    /// A document's fields besides `_id`: a subset of `a`, `b`, `c`.
    fn fields() -> impl Strategy<Value = Vec<(String, Bson)>> {
        prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), value()), 0..4)
            .prop_map(|v| v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// One primary write: give document `id` these fields (insert or replace), or delete it (`None`).
    type Write = (i32, Option<Vec<(String, Bson)>>);

    fn write() -> impl Strategy<Value = Write> {
        (0..4i32, prop::option::weighted(0.8, fields()))
    }

    proptest! {
        #[test]
        fn a_diff_turns_the_pre_image_into_the_post_image(before in fields(), after in fields()) {
            let before: Document = std::iter::once(("_id".to_string(), Bson::Int32(1))).chain(before).collect();
            let after: Document = std::iter::once(("_id".to_string(), Bson::Int32(1))).chain(after).collect();
            let logged = UpdateChange::between(&before, &after).into_document();
            let op = OplogOp::Update { ns: Namespace::new("db", "c"), id: Bson::Int32(1), change: UpdateChange::parse(&logged) };
            let once = op.step(Some(before)).expect("an update keeps the document");
            prop_assert!(same_fields(&once, &after), "{} is {}", once, after);
            prop_assert_eq!(op.step(Some(once.clone())), Some(once));
        }
    }

    fn documents(storage: &Storage, ns: &Namespace) -> Vec<Document> {
        let snapshot = storage.snapshot().expect("snapshot");
        let Some(meta) = snapshot.collection(ns).expect("catalog") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        snapshot
            .scan(&meta, None, |doc| {
                out.push(doc);
                std::ops::ControlFlow::Continue(())
            })
            .expect("scan");
        out
    }

    fn oplog(storage: &Storage) -> Vec<Document> {
        let mut out = Vec::new();
        storage
            .snapshot()
            .expect("snapshot")
            .scan_oplog(None, false, |_, entry| {
                out.push(entry);
                std::ops::ControlFlow::Continue(())
            })
            .expect("scan oplog");
        out
    }

    fn same_documents(a: &[Document], b: &[Document]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_fields(a, b))
    }

    /// What the writer logs for random writes, parsed and applied on other members, gives the primary's data:
    /// entry by entry, again on top (idempotent re-apply), and folded by document; the oplog is copied
    /// verbatim.
    fn replay_matches_the_primary(writes: Vec<Write>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let open = |i: usize| Storage::open(dirs[i].path()).expect("open storage");
        let (primary, sequential, folded) = (open(0), open(1), open(2));
        let ns = Namespace::new("db", "c");
        runtime.block_on(async {
            let target = ns.clone();
            primary
                .write(false, move |w| -> Result<()> {
                    let meta = w.ensure_collection(&target)?;
                    for (id, fields) in writes {
                        let before = w.get_by_id(&meta, &Bson::Int32(id))?;
                        let after = fields.map(|fields| {
                            std::iter::once(("_id".to_string(), Bson::Int32(id)))
                                .chain(fields)
                                .collect::<Document>()
                        });
                        match (before, after) {
                            (Some(before), Some(after)) => w.replace(&meta, &before, after, None)?,
                            (None, Some(after)) => w.insert(&meta, after, None)?,
                            (Some(before), None) => w.delete(&meta, &before, None)?,
                            (None, None) => {}
                        }
                    }
                    Ok(())
                })
                .await
                .expect("job ran")
                .expect("primary writes");
            let logged = oplog(&primary);
            let entries = OplogEntry::parse_all(logged.clone()).expect("the writer's entries parse");
            let replay = entries.clone();
            sequential
                .write(false, move |w| -> Result<()> {
                    for entry in &replay {
                        w.apply_entry(entry)?;
                        w.append_entry(entry)?;
                    }
                    Ok(())
                })
                .await
                .expect("job ran")
                .expect("sequential apply");
            assert!(same_documents(&documents(&sequential, &ns), &documents(&primary, &ns)));
            assert_eq!(oplog(&sequential), logged, "entries are appended verbatim");
            let again = entries.clone();
            sequential
                .write(false, move |w| -> Result<()> {
                    for entry in &again {
                        w.apply_entry(entry)?;
                    }
                    Ok(())
                })
                .await
                .expect("job ran")
                .expect("re-apply");
            assert!(
                same_documents(&documents(&sequential, &ns), &documents(&primary, &ns)),
                "re-applying every entry changes nothing"
            );
            folded
                .write(false, move |w| -> Result<()> {
                    let mut groups: HashMap<Vec<u8>, (Namespace, Bson, Vec<&OplogEntry>)> = HashMap::new();
                    for entry in &entries {
                        if let OplogOp::Command(CommandOp::Create { ns, options }) = &entry.op {
                            w.create_collection_with_uuid(ns, options.clone(), entry.ui)?;
                        }
                        if let Some((ns, id)) = entry.op.target() {
                            groups
                                .entry(keystring::encode(id))
                                .or_insert_with(|| (ns.clone(), id.clone(), Vec::new()))
                                .2
                                .push(entry);
                        }
                    }
                    for (ns, id, group) in groups.into_values() {
                        w.install_folded(&ns, &id, fold_document(None, &group), &group)?;
                    }
                    Ok(())
                })
                .await
                .expect("job ran")
                .expect("folded apply");
            assert!(same_documents(&documents(&folded, &ns), &documents(&primary, &ns)));
        });
        for storage in [primary, sequential, folded] {
            storage.shutdown();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn what_the_writer_logs_replays_to_the_same_data(writes in prop::collection::vec(write(), 1..40)) {
            replay_matches_the_primary(writes);
        }
    }
}
