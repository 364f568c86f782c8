//! The catalog: which collections exist, their UUIDs, options and index specifications.
//!
//! Stored in the `catalog` table as `ns → BSON`, in the same transactions as the data it describes. Readers
//! keep the entries they decoded in a [`DecodedCatalog`], keyed by the stored bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use bson::{Bson, Document, doc, spec::BinarySubtype};

/// A namespace `db.collection`, split once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    pub db: String,
    pub coll: String,
}

impl Namespace {
    pub fn new(db: &str, coll: &str) -> Namespace {
        Namespace {
            db: db.to_string(),
            coll: coll.to_string(),
        }
    }

    /// Parses `db.coll` (the collection part may itself contain dots).
    pub fn parse(full: &str) -> Option<Namespace> {
        let (db, coll) = full.split_once('.')?;
        (!db.is_empty() && !coll.is_empty()).then(|| Namespace::new(db, coll))
    }

    pub fn full(&self) -> String {
        format!("{}.{}", self.db, self.coll)
    }

    /// The namespaces the engine serves from its own tables rather than a collection: the oplog, the
    /// replica-set config, the feature compatibility version and the retryable-write sessions. Clients
    /// read them; they are neither written, renamed nor cloned as collections.
    pub fn is_engine_view(&self) -> bool {
        matches!(
            (self.db.as_str(), self.coll.as_str()),
            ("local", "oplog.rs")
                | ("local", "system.replset")
                | ("admin", "system.version")
                | ("config", "transactions")
        )
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// One index: its key pattern and name, and whether the engine enforces uniqueness.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub key: Document,
    pub unique: bool,
    pub sparse: bool,
    /// The full specification as the client gave it (returned by listIndexes).
    pub spec: Document,
}

impl IndexSpec {
    pub fn id_index() -> IndexSpec {
        IndexSpec {
            name: "_id_".into(),
            key: doc! {"_id": 1},
            unique: true,
            sparse: false,
            spec: doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        }
    }

    pub fn is_id_index(&self) -> bool {
        self.name == "_id_"
    }

    /// The fields of the key pattern, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.key.keys().map(String::as_str)
    }
}

/// A collection's catalog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionMeta {
    pub ns: Namespace,
    pub uuid: bson::Uuid,
    pub options: Document,
    pub indexes: Vec<IndexSpec>,
}

impl CollectionMeta {
    pub fn new(ns: Namespace, options: Document) -> CollectionMeta {
        CollectionMeta {
            ns,
            uuid: bson::Uuid::new(),
            options,
            indexes: vec![IndexSpec::id_index()],
        }
    }

    pub fn uuid_bson(&self) -> Bson {
        Bson::Binary(bson::Binary {
            subtype: BinarySubtype::Uuid,
            bytes: self.uuid.bytes().to_vec(),
        })
    }

    pub fn index(&self, name: &str) -> Option<&IndexSpec> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The secondary unique indexes (the `_id` index is the document table itself).
    pub fn unique_indexes(&self) -> impl Iterator<Item = &IndexSpec> {
        self.indexes.iter().filter(|i| i.unique && !i.is_id_index())
    }

    pub fn to_document(&self) -> Document {
        let indexes: Vec<Bson> = self.indexes.iter().map(|i| Bson::Document(i.spec.clone())).collect();
        doc! {"ns": self.ns.full(), "uuid": self.uuid_bson(), "options": self.options.clone(), "indexes": indexes}
    }

    pub fn from_document(doc: &Document) -> Option<CollectionMeta> {
        let ns = Namespace::parse(doc.get_str("ns").ok()?)?;
        let uuid = match doc.get("uuid")? {
            Bson::Binary(b) => bson::Uuid::from_bytes(b.bytes.clone().try_into().ok()?),
            _ => return None,
        };
        let options = doc.get_document("options").cloned().unwrap_or_default();
        let mut indexes = Vec::new();
        for spec in doc.get_array("indexes").ok()? {
            indexes.push(index_from_spec(spec.as_document()?)?);
        }
        Some(CollectionMeta {
            ns,
            uuid,
            options,
            indexes,
        })
    }
}

/// Reads an index specification as sent to createIndexes (`{key, name, unique?, sparse?, ...}`).
pub fn index_from_spec(spec: &Document) -> Option<IndexSpec> {
    let key = spec.get_document("key").ok()?.clone();
    let name = spec.get_str("name").ok()?.to_string();
    let unique = matches!(spec.get("unique"), Some(Bson::Boolean(true)) | Some(Bson::Int32(1)));
    let sparse = matches!(spec.get("sparse"), Some(Bson::Boolean(true)) | Some(Bson::Int32(1)));
    let is_id = name == "_id_";
    let mut full = doc! {"v": 2, "key": key.clone(), "name": name.clone()};
    for (k, v) in spec {
        if !matches!(k.as_str(), "v" | "key" | "name" | "ns") {
            full.insert(k.clone(), v.clone());
        }
    }
    Some(IndexSpec {
        name,
        key,
        unique: unique || is_id,
        sparse,
        spec: full,
    })
}

/// The catalog entries readers have decoded, each with the bytes it was decoded from. Every read resolves its
/// collection, and decoding the entry was a twentieth of a member's CPU under a driver's reads (#14); a hit
/// only compares the stored bytes, so it is exact whatever snapshot the bytes came from.
#[derive(Default)]
pub(super) struct DecodedCatalog {
    entries: Mutex<HashMap<String, DecodedEntry>>,
}

/// A catalog entry's stored bytes and what they decode to.
type DecodedEntry = (Box<[u8]>, CollectionMeta);

/// More namespaces than this and the cache starts again (a member with thousands of collections).
const DECODED_CATALOG_ENTRIES: usize = 1024;

impl DecodedCatalog {
    /// The entry for `ns` stored as `bytes`: the cached one when its bytes are these, else `decode(bytes)`.
    pub(super) fn get<E>(
        &self,
        ns: &str,
        bytes: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<Option<CollectionMeta>, E>,
    ) -> Result<Option<CollectionMeta>, E> {
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((stored, meta)) = entries.get(ns)
                && **stored == *bytes
            {
                return Ok(Some(meta.clone()));
            }
        }
        let meta = decode(bytes)?;
        if let Some(meta) = &meta {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= DECODED_CATALOG_ENTRIES && !entries.contains_key(ns) {
                entries.clear();
            }
            entries.insert(ns.to_string(), (bytes.into(), meta.clone()));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_entry_is_reused_only_for_the_same_bytes() {
        let cache = DecodedCatalog::default();
        let mut meta = CollectionMeta::new(Namespace::new("db", "c"), Document::new());
        let first = meta.to_document().to_vec().expect("encodes");
        let decoded = std::cell::Cell::new(0);
        let read = |bytes: &[u8]| {
            cache.get("db.c", bytes, |b| {
                decoded.set(decoded.get() + 1);
                Ok::<_, String>(CollectionMeta::from_document(&Document::from_reader(b).expect("bson")))
            })
        };
        let once = read(&first).expect("decodes").expect("an entry");
        let twice = read(&first).expect("decodes").expect("an entry");
        assert_eq!(once.indexes.len(), 1);
        assert_eq!(twice.indexes.len(), 1);
        meta.indexes.push(IndexSpec {
            name: "x_1".into(),
            key: doc! {"x": 1},
            unique: false,
            sparse: false,
            spec: doc! {"v": 2, "key": {"x": 1}, "name": "x_1"},
        });
        let changed = meta.to_document().to_vec().expect("encodes");
        let after = read(&changed).expect("decodes").expect("an entry");
        assert_eq!(after.indexes.len(), 2, "new bytes are decoded again");
        assert_eq!(decoded.get(), 2);
    }

    #[test]
    fn namespace_splits_at_the_first_dot() {
        let ns = Namespace::parse("local.oplog.rs").expect("valid");
        assert_eq!((ns.db.as_str(), ns.coll.as_str()), ("local", "oplog.rs"));
        assert!(Namespace::parse("nodot").is_none());
        assert!(Namespace::parse(".x").is_none());
    }

    #[test]
    fn catalog_entry_round_trips() {
        let mut meta = CollectionMeta::new(Namespace::new("db", "c"), doc! {"capped": false});
        meta.indexes
            .push(index_from_spec(&doc! {"key": {"a": 1}, "name": "a_1", "unique": true}).expect("spec"));
        let back = CollectionMeta::from_document(&meta.to_document()).expect("decodes");
        assert_eq!(back, meta);
        assert_eq!(back.unique_indexes().count(), 1);
    }
}
