//! From oplog entries to change events, as MongoDB 7.0 shapes them: one entry gives at most one event for
//! a stream's scope, plus an `invalidate` when it ends the stream (a watched collection dropped or renamed,
//! a watched database dropped). Pure: what needs storage (`updateLookup`, pre- and post-images) is left as
//! a [`Lookup`] for the cursor to resolve.

use bson::raw::RawDocument;
use bson::{Bson, Document, doc};

use super::token::{ResumeToken, TokenKind};
use crate::repl::OpTime;
use crate::storage::{CommandOp, Namespace, OplogEntry, OplogOp, UpdateChange};

/// What a stream watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Collection(Namespace),
    Database(String),
    /// `allChangesForCluster` on `admin`.
    Cluster,
}

impl Scope {
    /// Whether changes to `ns` belong to the stream. Database and cluster streams leave out `system.*`
    /// collections, and the cluster stream the internal databases, as mongod does.
    pub fn covers(&self, ns: &Namespace) -> bool {
        match self {
            Scope::Collection(watched) => watched == ns,
            Scope::Database(db) => &ns.db == db && !ns.coll.starts_with("system."),
            Scope::Cluster => !is_internal_db(&ns.db) && !ns.coll.starts_with("system."),
        }
    }

    fn covers_db(&self, db: &str) -> bool {
        match self {
            Scope::Collection(_) => false,
            Scope::Database(watched) => watched == db,
            Scope::Cluster => !is_internal_db(db),
        }
    }
}

pub fn is_internal_db(db: &str) -> bool {
    matches!(db, "admin" | "config" | "local")
}

/// What an event still needs from storage before it is returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    None,
    /// An update: the current document (`updateLookup`) or the post-image, and the pre-image.
    Update {
        ns: Namespace,
        id: Bson,
        change: Box<UpdateChange>,
        pre_image: Option<OpTime>,
    },
    /// A delete: its pre-image, if one was recorded.
    Delete {
        pre_image: Option<OpTime>,
    },
    /// A replace: its pre-image, if one was recorded.
    Replace {
        pre_image: Option<OpTime>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub token: ResumeToken,
    pub doc: Document,
    pub lookup: Lookup,
}

/// The events `entry` gives a stream over `scope`: none, one, or one followed by an invalidate.
/// `expanded` is `showExpandedEvents` (DDL events and `collectionUUID`).
pub fn events_of(entry: &OplogEntry, scope: &Scope, expanded: bool) -> Vec<RawEvent> {
    let ts = entry.optime.ts;
    let head = |operation: &str, kind: TokenKind| -> Document {
        let mut doc = doc! {
            "_id": ResumeToken::new(ts, kind).to_document(),
            "operationType": operation,
            "clusterTime": ts,
        };
        if let Some(wall) = entry.wall() {
            doc.insert("wallTime", wall);
        }
        if expanded
            && kind == TokenKind::Event
            && let Some(uuid) = entry.ui
        {
            doc.insert("collectionUUID", uuid);
        }
        doc
    };
    let event = |doc: Document, lookup: Lookup| RawEvent {
        token: ResumeToken::new(ts, TokenKind::Event),
        doc,
        lookup,
    };
    let invalidate = || RawEvent {
        token: ResumeToken::new(ts, TokenKind::Invalidate),
        doc: head("invalidate", TokenKind::Invalidate),
        lookup: Lookup::None,
    };
    let pre_image = pre_image_optime(entry.raw());
    let mut out = Vec::new();
    match &entry.op {
        OplogOp::Insert { ns, id, doc } if scope.covers(ns) => {
            let mut event_doc = head("insert", TokenKind::Event);
            event_doc.insert("fullDocument", doc.clone());
            event_doc.insert("ns", ns_doc(ns));
            event_doc.insert("documentKey", doc! {"_id": id.clone()});
            out.push(event(event_doc, Lookup::None));
        }
        OplogOp::Update { ns, id, change } if scope.covers(ns) => {
            let mut event_doc = head(
                match change {
                    UpdateChange::Replacement(_) => "replace",
                    UpdateChange::Diff(_) => "update",
                },
                TokenKind::Event,
            );
            event_doc.insert("ns", ns_doc(ns));
            event_doc.insert("documentKey", doc! {"_id": id.clone()});
            let lookup = match change {
                UpdateChange::Replacement(replacement) => {
                    let mut full = doc! {"_id": id.clone()};
                    full.extend(
                        replacement
                            .iter()
                            .filter(|(k, _)| *k != "_id")
                            .map(|(k, v)| (k.clone(), v.clone())),
                    );
                    event_doc.insert("fullDocument", full);
                    Lookup::Replace { pre_image }
                }
                UpdateChange::Diff(diff) => {
                    event_doc.insert("updateDescription", update_description(diff, expanded));
                    Lookup::Update {
                        ns: ns.clone(),
                        id: id.clone(),
                        change: Box::new(change.clone()),
                        pre_image,
                    }
                }
            };
            out.push(event(event_doc, lookup));
        }
        OplogOp::Delete { ns, id } if scope.covers(ns) => {
            let mut event_doc = head("delete", TokenKind::Event);
            event_doc.insert("ns", ns_doc(ns));
            event_doc.insert("documentKey", doc! {"_id": id.clone()});
            out.push(event(event_doc, Lookup::Delete { pre_image }));
        }
        OplogOp::Command(command) => command_events(command, scope, expanded, &head, &mut |doc| {
            out.push(event(doc, Lookup::None))
        }),
        _ => {}
    }
    if out.last().is_some_and(|e| ends_stream(&e.doc, scope)) {
        out.push(invalidate());
    }
    out
}

/// Whether an event ends a stream over `scope`: the watched collection dropped or renamed away, the
/// watched database dropped.
fn ends_stream(event: &Document, scope: &Scope) -> bool {
    matches!(
        (scope, event.get_str("operationType").unwrap_or("")),
        (Scope::Collection(_), "drop" | "rename") | (Scope::Database(_), "dropDatabase")
    )
}

fn command_events(
    command: &CommandOp,
    scope: &Scope,
    expanded: bool,
    head: &dyn Fn(&str, TokenKind) -> Document,
    push: &mut dyn FnMut(Document),
) {
    let mut with = |operation: &str, ns: &Namespace, extra: Document| {
        let mut doc = head(operation, TokenKind::Event);
        doc.insert("ns", ns_doc(ns));
        doc.extend(extra);
        push(doc);
    };
    match command {
        CommandOp::Drop { ns } if scope.covers(ns) => with("drop", ns, Document::new()),
        CommandOp::Rename { from, to, .. } if scope.covers(from) => {
            let mut extra = doc! {"to": ns_doc(to)};
            if expanded {
                extra.insert("operationDescription", doc! {"to": ns_doc(to), "dropTarget": false});
            }
            with("rename", from, extra)
        }
        CommandOp::DropDatabase { db } if scope.covers_db(db) => {
            let mut doc = head("dropDatabase", TokenKind::Event);
            doc.insert("ns", doc! {"db": db});
            push(doc);
        }
        CommandOp::Create { ns, options } if expanded && scope.covers(ns) => {
            with("create", ns, doc! {"operationDescription": options.clone()})
        }
        CommandOp::CreateIndexes { ns, spec } if expanded && scope.covers(ns) => with(
            "createIndexes",
            ns,
            doc! {"operationDescription": {"indexes": [spec.clone()]}},
        ),
        CommandOp::DropIndexes { ns, index } if expanded && scope.covers(ns) => with(
            "dropIndexes",
            ns,
            doc! {"operationDescription": {"indexes": [{"name": index.clone()}]}},
        ),
        CommandOp::CollMod { ns, options } if expanded && scope.covers(ns) => {
            with("modify", ns, doc! {"operationDescription": options.clone()})
        }
        _ => {}
    }
}

fn ns_doc(ns: &Namespace) -> Document {
    doc! {"db": ns.db.clone(), "coll": ns.coll.clone()}
}

/// An update's `updateDescription` from its `$v: 2` diff of top-level fields.
fn update_description(diff: &Document, expanded: bool) -> Document {
    let mut updated = Document::new();
    for section in ["u", "i"] {
        if let Ok(fields) = diff.get_document(section) {
            updated.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let removed: Vec<Bson> = diff
        .get_document("d")
        .map(|d| d.keys().map(|k| Bson::String(k.clone())).collect())
        .unwrap_or_default();
    let mut description = doc! {"updatedFields": updated, "removedFields": removed, "truncatedArrays": []};
    if expanded {
        description.insert("disambiguatedPaths", Document::new());
    }
    description
}

/// Where the entry's pre-image was logged (`preImageOpTime`, a no-op entry just before it), for collections
/// with `changeStreamPreAndPostImages` enabled.
fn pre_image_optime(entry: &RawDocument) -> Option<OpTime> {
    let at = entry.get_document("preImageOpTime").ok()?;
    Some(OpTime {
        ts: at.get_timestamp("ts").ok()?,
        term: at.get_i64("t").unwrap_or(-1),
    })
}

#[cfg(test)]
mod tests {
    use bson::Timestamp;

    use super::*;

    fn entry(fields: Document) -> OplogEntry {
        let mut doc = fields;
        doc.insert("ts", Timestamp { time: 10, increment: 2 });
        doc.insert("t", 1i64);
        doc.insert("wall", bson::DateTime::from_millis(5));
        OplogEntry::parse(doc).unwrap()
    }

    fn coll() -> Scope {
        Scope::Collection(Namespace::new("d", "c"))
    }

    fn kinds(events: &[RawEvent]) -> Vec<&str> {
        events.iter().map(|e| e.doc.get_str("operationType").unwrap()).collect()
    }

    #[test]
    fn crud_entries_become_crud_events_in_their_scope_only() {
        let insert = entry(doc! {"op": "i", "ns": "d.c", "o": {"_id": 1, "x": 1}});
        let events = events_of(&insert, &coll(), false);
        assert_eq!(kinds(&events), ["insert"]);
        assert_eq!(
            events[0].doc.get_document("fullDocument").unwrap(),
            &doc! {"_id": 1, "x": 1}
        );
        assert_eq!(events[0].doc.get_document("documentKey").unwrap(), &doc! {"_id": 1});
        assert!(events_of(&insert, &Scope::Collection(Namespace::new("d", "other")), false).is_empty());
        assert_eq!(
            kinds(&events_of(&insert, &Scope::Database("d".into()), false)),
            ["insert"]
        );
        assert_eq!(kinds(&events_of(&insert, &Scope::Cluster, false)), ["insert"]);

        let update = entry(
            doc! {"op": "u", "ns": "d.c", "o": {"$v": 2, "diff": {"u": {"x": 2}, "d": {"y": false}}},
            "o2": {"_id": 1}},
        );
        let events = events_of(&update, &coll(), false);
        assert_eq!(kinds(&events), ["update"]);
        assert_eq!(
            events[0].doc.get_document("updateDescription").unwrap(),
            &doc! {"updatedFields": {"x": 2}, "removedFields": ["y"], "truncatedArrays": []}
        );
        let replace = entry(doc! {"op": "u", "ns": "d.c", "o": {"x": 3}, "o2": {"_id": 1}});
        let events = events_of(&replace, &coll(), false);
        assert_eq!(kinds(&events), ["replace"]);
        assert_eq!(
            events[0].doc.get_document("fullDocument").unwrap(),
            &doc! {"_id": 1, "x": 3}
        );
        let delete = entry(doc! {"op": "d", "ns": "d.c", "o": {"_id": 1}});
        assert_eq!(kinds(&events_of(&delete, &coll(), false)), ["delete"]);
    }

    #[test]
    fn drops_and_renames_invalidate_the_streams_they_end() {
        let drop = entry(doc! {"op": "c", "ns": "d.$cmd", "o": {"drop": "c"}});
        assert_eq!(kinds(&events_of(&drop, &coll(), false)), ["drop", "invalidate"]);
        assert_eq!(kinds(&events_of(&drop, &Scope::Database("d".into()), false)), ["drop"]);
        let rename = entry(doc! {"op": "c", "ns": "d.$cmd", "o": {"renameCollection": "d.c", "to": "d.e"}});
        let events = events_of(&rename, &coll(), false);
        assert_eq!(kinds(&events), ["rename", "invalidate"]);
        assert_eq!(
            events[0].doc.get_document("to").unwrap(),
            &doc! {"db": "d", "coll": "e"}
        );
        assert!(events[0].token < events[1].token);
        let drop_db = entry(doc! {"op": "c", "ns": "d.$cmd", "o": {"dropDatabase": 1}});
        assert!(events_of(&drop_db, &coll(), false).is_empty());
        assert_eq!(
            kinds(&events_of(&drop_db, &Scope::Database("d".into()), false)),
            ["dropDatabase", "invalidate"]
        );
        assert_eq!(kinds(&events_of(&drop_db, &Scope::Cluster, false)), ["dropDatabase"]);
    }

    #[test]
    fn ddl_events_need_show_expanded_events() {
        let create = entry(doc! {"op": "c", "ns": "d.$cmd", "o": {"create": "c"}});
        assert!(events_of(&create, &coll(), false).is_empty());
        assert_eq!(kinds(&events_of(&create, &coll(), true)), ["create"]);
        let index = entry(
            doc! {"op": "c", "ns": "d.$cmd", "o": {"createIndexes": "c", "v": 2, "key": {"x": 1}, "name": "x_1"}},
        );
        assert_eq!(kinds(&events_of(&index, &coll(), true)), ["createIndexes"]);
    }

    #[test]
    fn internal_databases_and_system_collections_stay_out_of_wide_streams() {
        let system = entry(doc! {"op": "i", "ns": "d.system.views", "o": {"_id": 1}});
        assert!(events_of(&system, &Scope::Database("d".into()), false).is_empty());
        let config = entry(doc! {"op": "i", "ns": "config.x", "o": {"_id": 1}});
        assert!(events_of(&config, &Scope::Cluster, false).is_empty());
    }
}
