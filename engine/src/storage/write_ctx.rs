//! What a write job can do inside the writer's group transaction.
//!
//! Every method that changes data also appends its oplog entry in the same transaction. Methods check
//! before they write (duplicate keys, existing namespaces), so a method that returns an error has changed
//! nothing. A storage failure (I/O, corruption) is recorded as fatal and rolls back the whole group.

use std::collections::HashMap;

use bson::raw::RawDocument;
use bson::{Bson, Document, Timestamp, doc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::capped::{OplogAccount, OplogDelta};
use super::catalog::{CollectionMeta, IndexSpec, Namespace, index_from_spec};
use super::keystring;
use super::oplog::{NewEntry, OpTime, TimestampAllocator, ts_to_u64};
use super::oplog_entry::{OpKind, UpdateChange};
use super::{CATALOG, META, OPLOG, SESSION_STATEMENTS, SESSIONS, docs_table_name, index_table_name, storage_error};
use crate::clock::Clock;
use crate::depth::{MAX_BSON_DEPTH, MAX_DOCUMENT_DEPTH};
use crate::error::{Error, Result, code};

/// How far ahead of this member's wall clock a cluster time may take its oplog timestamps: mongod's
/// `maxAcceptableLogicalClockDriftSecs` default, one year.
pub const MAX_CLOCK_DRIFT_SECS: u64 = 365 * 24 * 60 * 60;

/// The retryable-write identity of one statement: written into its oplog entry and the session table.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatement {
    pub lsid: Document,
    pub txn_number: i64,
    pub stmt_id: i32,
    /// The image of its document a findAndModify statement returns, which every member that applies its
    /// entry stores for a retry.
    pub retry_image: Option<RetryImage>,
}

/// Which version of the document a retried findAndModify must get back: logged as the entry's
/// `needsRetryImage` (MongoDB 5.0's field and values). MongoDB logs it on updates and deletes only; an
/// upsert that returns the new document logs `postImage` on its insert too, as that member has no other
/// way to find the inserted version later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryImage {
    Pre,
    Post,
}

impl RetryImage {
    pub fn name(self) -> &'static str {
        match self {
            RetryImage::Pre => "preImage",
            RetryImage::Post => "postImage",
        }
    }

    pub fn parse(name: &str) -> Option<RetryImage> {
        match name {
            "preImage" => Some(RetryImage::Pre),
            "postImage" => Some(RetryImage::Post),
            _ => None,
        }
    }
}

impl SessionStatement {
    /// This statement, with the document image its entry asks appliers to keep.
    pub fn with_retry_image(&self, image: Option<RetryImage>) -> SessionStatement {
        SessionStatement {
            retry_image: image,
            ..self.clone()
        }
    }

    fn oplog_fields(&self) -> Document {
        let mut fields = doc! {"lsid": self.lsid.clone(), "txnNumber": self.txn_number, "stmtId": self.stmt_id};
        if let Some(image) = self.retry_image {
            fields.insert("needsRetryImage", image.name());
        }
        fields
    }
}

/// The transaction a write job runs in.
pub struct WriteCtx<'a> {
    pub(super) txn: &'a WriteTransaction,
    pub(super) timestamps: &'a mut TimestampAllocator,
    /// The member's wall clock: oplog timestamps and `wall` times, `lastWrite` dates.
    clock: &'a Clock,
    term: i64,
    fatal: Option<Error>,
    pub(super) last_optime: Option<OpTime>,
    /// The `wall` time (ms since the epoch) of the entry at `last_optime`.
    pub(super) last_wall_ms: i64,
    /// Applying entries from another member's oplog: data changes are not logged again.
    pub(super) replaying: bool,
    /// Set when the oplog was truncated (rollback): the newest optime is now this, even if older.
    pub(super) position_reset: Option<OpTime>,
    /// The oplog's committed figures, and how this transaction moves them (capped.rs).
    pub(super) account: &'a OplogAccount,
    pub(super) oplog_delta: OplogDelta,
    /// The group's oplog entries as they are stored (BSON back to back), kept for the journal
    /// (`journal.rs`) when the writer has one.
    pub(super) journaled: Option<Vec<u8>>,
    /// Whether replaying [`journaled`](Self::journaled) through the oplog's apply path reproduces every
    /// change of the transaction; cleared by a change the oplog does not carry (metadata, the `local`
    /// database, initial sync's copies, rollback), which only a durable checkpoint makes durable.
    pub(super) covered: bool,
    /// Whether the group's journal record is to be fsynced at once rather than within the journal interval
    /// ([`sync_soon`](Self::sync_soon)).
    pub(super) sync_soon: bool,
    /// Set while a job whose entries the journal already holds runs (`Storage::apply_prejournaled`): its
    /// appended entries are not journaled again.
    pub(super) prejournaled: bool,
    /// The collections this transaction has read or written, as its catalog holds them (decoding a catalog
    /// entry per write was a fifth of a secondary's CPU under load); kept in step by every catalog change.
    catalog_cache: HashMap<Namespace, CollectionMeta>,
}

impl<'a> WriteCtx<'a> {
    pub(super) fn new(
        txn: &'a WriteTransaction,
        timestamps: &'a mut TimestampAllocator,
        clock: &'a Clock,
        term: i64,
        account: &'a OplogAccount,
    ) -> WriteCtx<'a> {
        WriteCtx {
            txn,
            timestamps,
            clock,
            term,
            fatal: None,
            last_optime: None,
            last_wall_ms: 0,
            replaying: false,
            position_reset: None,
            account,
            oplog_delta: OplogDelta::default(),
            journaled: None,
            covered: true,
            sync_soon: false,
            prejournaled: false,
            catalog_cache: HashMap::new(),
        }
    }

    /// Starts the transaction from the collections the writer's earlier committed groups left it (see
    /// [`WriteCtx::take_catalog_cache`]).
    pub(super) fn with_catalog_cache(mut self, cache: HashMap<Namespace, CollectionMeta>) -> Self {
        self.catalog_cache = cache;
        self
    }

    /// The collections this transaction read or wrote, as its catalog holds them: valid after the transaction
    /// commits (every catalog change goes through this context), to be dropped if it does not.
    pub(super) fn take_catalog_cache(&mut self) -> HashMap<Namespace, CollectionMeta> {
        std::mem::take(&mut self.catalog_cache)
    }

    /// Marks the transaction as holding a change its oplog entries do not reproduce.
    pub(super) fn uncovered(&mut self) {
        self.covered = false;
    }

    /// Asks for the group's journal record to be fsynced as soon as it is written, without making the job wait
    /// for it: a secondary's applied batch, whose durable position the primary's commit point waits for. The
    /// request goes with the record itself, so the fsync starts without a round trip through the caller.
    pub fn sync_soon(&mut self) {
        self.sync_soon = true;
    }

    /// Keeps the transaction's oplog entries out of the journal, so that only the next periodic checkpoint
    /// (within a second) makes them durable and a crash before it loses them: what the `skipJournalFsync` fail
    /// point does to the writes it acknowledges early. The journal is written at every group, and a killed
    /// process loses nothing the kernel already has, so skipping the fsync alone would lose data only on a
    /// power failure, which a test on one machine cannot cause. The change is deliberately not marked
    /// uncovered (which would checkpoint it within the journal interval): the planted bug's window stays open
    /// as long as the checkpoint interval, and records journaled after it still replay (apply is idempotent).
    pub fn withhold_from_journal(&mut self) {
        self.journaled = None;
    }

    /// Keeps a stored oplog entry for the journal.
    pub(super) fn journal_entry(&mut self, bytes: &[u8]) {
        if self.prejournaled {
            return;
        }
        if let Some(journaled) = &mut self.journaled {
            journaled.extend_from_slice(bytes);
        }
    }

    /// The member's wall clock (for `$currentDate` and `$$NOW` in the job).
    pub fn clock(&self) -> &Clock {
        self.clock
    }

    pub(super) fn oplog_delta(&self) -> OplogDelta {
        self.oplog_delta
    }

    pub(super) fn take_fatal(&mut self) -> Option<Error> {
        self.fatal.take()
    }

    pub(super) fn last_optime(&self) -> Option<OpTime> {
        self.last_optime
    }

    pub(super) fn last_wall_ms(&self) -> i64 {
        self.last_wall_ms
    }

    pub(super) fn position_reset(&self) -> Option<OpTime> {
        self.position_reset
    }

    /// Records a storage failure: the whole group will roll back.
    pub(super) fn fatal(&mut self, context: &str, err: impl std::fmt::Display) -> Error {
        let err = storage_error(context, err);
        if self.fatal.is_none() {
            self.fatal = Some(err.clone());
        }
        err
    }

    pub(super) fn table(&mut self, name: &str) -> Result<redb::Table<'a, &'static [u8], &'static [u8]>> {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
        // The definition's name only needs to live for the call; redb copies it.
        let txn = self.txn;
        txn.open_table(def).map_err(|e| self.fatal(name, e))
    }

    // ---- oplog -------------------------------------------------------------------------------------

    /// Appends an oplog entry and returns its optime. Writes to the `local` database are not logged.
    pub fn log(&mut self, entry: NewEntry) -> Result<OpTime> {
        self.log_with(entry, None)
    }

    /// [`WriteCtx::log`], with the entry's `o` already encoded (`encoded_o`, an inserted document's bytes).
    fn log_with(&mut self, entry: NewEntry, encoded_o: Option<&RawDocument>) -> Result<OpTime> {
        if self.replaying {
            return Ok(self.last_optime.unwrap_or_else(OpTime::null));
        }
        let ts = self.timestamps.next(self.clock.now_secs());
        let optime = OpTime { ts, term: self.term };
        let wall = self.clock.now();
        // Entries wrap documents already held to MAX_DOCUMENT_DEPTH, so this cannot fail; if it did, the data
        // change is already in the transaction, so the whole group must roll back rather than commit unlogged.
        let bytes = entry
            .encode(optime, wall, encoded_o)
            .map_err(|e| self.fatal("encode oplog entry", e.message))?
            .into_bytes();
        let txn = self.txn;
        let mut oplog = txn.open_table(OPLOG).map_err(|e| self.fatal("oplog", e))?;
        let replaced = oplog
            .insert(ts_to_u64(ts), bytes.as_slice())
            .map_err(|e| self.fatal("oplog insert", e))?
            .map(|old| old.value().len());
        drop(oplog);
        self.count_oplog_insert(bytes.len(), replaced);
        self.journal_entry(&bytes);
        self.last_optime = Some(optime);
        self.last_wall_ms = wall.timestamp_millis();
        Ok(optime)
    }

    /// Writes a no-op entry (`op: "n"`) carrying `msg`.
    /// Logs a no-op whose timestamp is after `ts` (a cluster time another member's clock produced), so a read
    /// waiting for `ts` can be satisfied; a `ts` more than [`MAX_CLOCK_DRIFT_SECS`] ahead of this member's
    /// wall clock is not followed (the no-op takes the next timestamp as usual).
    pub fn noop_after(&mut self, ts: Timestamp, msg: Document) -> Result<OpTime> {
        if u64::from(ts.time) <= u64::from(self.clock.now_secs()) + MAX_CLOCK_DRIFT_SECS {
            self.timestamps.observe(ts);
        }
        self.noop(msg)
    }

    pub fn noop(&mut self, msg: Document) -> Result<OpTime> {
        self.log(NewEntry {
            op: OpKind::Noop,
            ns: String::new(),
            ui: None,
            o: msg,
            o2: None,
            session: None,
        })
    }

    /// On a collection with `changeStreamPreAndPostImages: {enabled: true}`, logs `before` (the pre-image of
    /// an update or delete) as a no-op entry and returns the field the update or delete entry carries to
    /// point at it, `preImageOpTime` (read by change streams, `changestream/`).
    fn log_pre_image(&mut self, meta: &CollectionMeta, before: &Document) -> Result<Option<Document>> {
        let enabled = meta
            .options
            .get_document("changeStreamPreAndPostImages")
            .is_ok_and(|o| o.get_bool("enabled").unwrap_or(false));
        if !enabled || meta.ns.db == "local" || self.replaying {
            return Ok(None);
        }
        let at = self.log(NewEntry {
            op: OpKind::Noop,
            ns: meta.ns.full(),
            ui: Some(meta.uuid_bson()),
            o: before.clone(),
            o2: None,
            session: None,
        })?;
        Ok(Some(doc! {"preImageOpTime": {"ts": at.ts, "t": at.term}}))
    }

    fn log_data(&mut self, meta: &CollectionMeta, entry: NewEntry) -> Result<()> {
        self.log_data_with(meta, entry, None)
    }

    /// [`WriteCtx::log_data`], with the entry's `o` already encoded.
    fn log_data_with(&mut self, meta: &CollectionMeta, entry: NewEntry, encoded_o: Option<&RawDocument>) -> Result<()> {
        if meta.ns.db == "local" {
            self.uncovered();
        } else {
            let entry = NewEntry {
                ui: Some(meta.uuid_bson()),
                ..entry
            };
            self.log_with(entry, encoded_o)?;
        }
        Ok(())
    }

    fn log_command(&mut self, ns: &Namespace, ui: Option<Bson>, o: Document) -> Result<()> {
        if ns.db == "local" {
            self.uncovered();
        } else {
            self.log(NewEntry {
                op: OpKind::Command,
                ns: format!("{}.$cmd", ns.db),
                ui,
                o,
                o2: None,
                session: None,
            })?;
        }
        Ok(())
    }

    // ---- metadata ----------------------------------------------------------------------------------

    pub fn put_meta(&mut self, key: &str, value: &Document) -> Result<()> {
        let bytes = super::encode(value, MAX_BSON_DEPTH, || {
            format!("metadata exceeds {MAX_BSON_DEPTH} levels of nesting")
        })?;
        self.uncovered();
        let txn = self.txn;
        let mut table = txn.open_table(META).map_err(|e| self.fatal("meta", e))?;
        table
            .insert(key, bytes.as_slice())
            .map_err(|e| self.fatal("meta insert", e))?;
        Ok(())
    }

    pub fn get_meta(&mut self, key: &str) -> Result<Option<Document>> {
        let txn = self.txn;
        let table = txn.open_table(META).map_err(|e| self.fatal("meta", e))?;
        let value = table.get(key).map_err(|e| self.fatal("meta get", e))?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(
                super::decode(v.value()).map_err(|e| self.fatal("decode meta", e))?,
            )),
        }
    }

    // ---- catalog -----------------------------------------------------------------------------------

    pub fn collection(&mut self, ns: &Namespace) -> Result<Option<CollectionMeta>> {
        if let Some(meta) = self.catalog_cache.get(ns) {
            return Ok(Some(meta.clone()));
        }
        let txn = self.txn;
        let table = txn.open_table(CATALOG).map_err(|e| self.fatal("catalog", e))?;
        let value = table
            .get(ns.full().as_str())
            .map_err(|e| self.fatal("catalog get", e))?;
        match value {
            None => Ok(None),
            Some(v) => {
                let doc = super::decode(v.value()).map_err(|e| self.fatal("decode catalog", e))?;
                let meta = CollectionMeta::from_document(&doc).ok_or_else(|| self.fatal("catalog entry", ns.full()))?;
                self.catalog_cache.insert(ns.clone(), meta.clone());
                Ok(Some(meta))
            }
        }
    }

    fn put_collection(&mut self, meta: &CollectionMeta) -> Result<()> {
        let bytes = super::encode(&meta.to_document(), MAX_BSON_DEPTH, || {
            format!("catalog entry exceeds {MAX_BSON_DEPTH} levels of nesting")
        })
        .map_err(|e| self.fatal("encode catalog", e.message))?;
        let txn = self.txn;
        let mut table = txn.open_table(CATALOG).map_err(|e| self.fatal("catalog", e))?;
        table
            .insert(meta.ns.full().as_str(), bytes.as_slice())
            .map_err(|e| self.fatal("catalog insert", e))?;
        self.catalog_cache.insert(meta.ns.clone(), meta.clone());
        Ok(())
    }

    /// All collections of one database (or of all databases).
    pub fn collections(&mut self, db: Option<&str>) -> Result<Vec<CollectionMeta>> {
        let txn = self.txn;
        let table = txn.open_table(CATALOG).map_err(|e| self.fatal("catalog", e))?;
        let mut out = Vec::new();
        let iter = table.iter().map_err(|e| self.fatal("catalog scan", e))?;
        for item in iter {
            let (_, value) = item.map_err(|e| self.fatal("catalog scan", e))?;
            let doc = super::decode(value.value()).map_err(|e| self.fatal("decode catalog", e))?;
            if let Some(meta) = CollectionMeta::from_document(&doc)
                && db.is_none_or(|d| meta.ns.db == d)
            {
                out.push(meta);
            }
        }
        Ok(out)
    }

    /// Creates a collection; `NamespaceExists` (48) if it already exists.
    pub fn create_collection(&mut self, ns: &Namespace, options: Document) -> Result<CollectionMeta> {
        self.create_collection_with_uuid(ns, options, None)
    }

    /// Creates a collection with a given UUID (a secondary replicating the primary's create).
    pub fn create_collection_with_uuid(
        &mut self,
        ns: &Namespace,
        options: Document,
        uuid: Option<bson::Uuid>,
    ) -> Result<CollectionMeta> {
        if self.collection(ns)?.is_some() {
            return Err(Error::new(
                code::NAMESPACE_EXISTS,
                format!("Collection {ns} already exists."),
            ));
        }
        let mut meta = CollectionMeta::new(ns.clone(), options.clone());
        if let Some(uuid) = uuid {
            meta.uuid = uuid;
        }
        self.put_collection(&meta)?;
        self.table(&docs_table_name(&meta))?;
        let mut o = doc! {"create": &ns.coll};
        o.extend(options);
        self.log_command(ns, Some(meta.uuid_bson()), o)?;
        Ok(meta)
    }

    /// The collection, created implicitly (as an insert or upsert does) when missing.
    pub fn ensure_collection(&mut self, ns: &Namespace) -> Result<CollectionMeta> {
        match self.collection(ns)? {
            Some(meta) => Ok(meta),
            None => self.create_collection(ns, Document::new()),
        }
    }

    /// Drops a collection with its documents and indexes; false when it did not exist.
    pub fn drop_collection(&mut self, ns: &Namespace) -> Result<bool> {
        let Some(meta) = self.collection(ns)? else {
            return Ok(false);
        };
        let txn = self.txn;
        for index in meta.unique_indexes() {
            let name = index_table_name(&meta, &index.name);
            txn.delete_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                .map_err(|e| self.fatal("drop index", e))?;
        }
        let name = docs_table_name(&meta);
        txn.delete_table(TableDefinition::<&[u8], &[u8]>::new(&name))
            .map_err(|e| self.fatal("drop docs", e))?;
        {
            let mut catalog = txn.open_table(CATALOG).map_err(|e| self.fatal("catalog", e))?;
            catalog
                .remove(ns.full().as_str())
                .map_err(|e| self.fatal("catalog remove", e))?;
        }
        self.catalog_cache.remove(ns);
        self.log_command(ns, Some(meta.uuid_bson()), doc! {"drop": &ns.coll})?;
        Ok(true)
    }

    /// Renames a collection, within or across databases, in one step: it keeps its UUID, documents and
    /// indexes (their tables are named by UUID). An existing target is dropped first when `drop_target`,
    /// else `NamespaceExists` (48); a missing source is `NamespaceNotFound` (26). Logged as one entry in
    /// MongoDB's shape: `{renameCollection, to, stayTemp, dropTarget: <dropped UUID>?}` with `o2.numRecords`
    /// of the dropped target. Without `stay_temp` the `temp` option is cleared, as mongod does.
    pub fn rename_collection(
        &mut self,
        from: &Namespace,
        to: &Namespace,
        drop_target: bool,
        stay_temp: bool,
    ) -> Result<()> {
        let Some(mut meta) = self.collection(from)? else {
            return Err(Error::new(
                code::NAMESPACE_NOT_FOUND,
                format!("Source collection {from} does not exist"),
            ));
        };
        let mut dropped = None;
        if let Some(target) = self.collection(to)? {
            if !drop_target {
                return Err(Error::new(code::NAMESPACE_EXISTS, "target namespace exists"));
            }
            let records = self.count_documents(to)?;
            let uuid = target.uuid_bson();
            self.unlogged(|w| w.drop_collection(to))?;
            dropped = Some((uuid, records));
        }
        {
            let txn = self.txn;
            let mut catalog = txn.open_table(CATALOG).map_err(|e| self.fatal("catalog", e))?;
            catalog
                .remove(from.full().as_str())
                .map_err(|e| self.fatal("catalog remove", e))?;
        }
        self.catalog_cache.remove(from);
        meta.ns = to.clone();
        if !stay_temp {
            meta.options.remove("temp");
        }
        self.put_collection(&meta)?;
        let mut o = doc! {"renameCollection": from.full(), "to": to.full(), "stayTemp": stay_temp};
        let mut o2 = None;
        if let Some((uuid, records)) = dropped {
            o.insert("dropTarget", uuid);
            o2 = Some(doc! {"numRecords": records as i64});
        }
        if from.db != "local" && to.db != "local" {
            self.log(NewEntry {
                op: OpKind::Command,
                ns: format!("{}.$cmd", from.db),
                ui: Some(meta.uuid_bson()),
                o,
                o2,
                session: None,
            })?;
        }
        Ok(())
    }

    /// Drops every collection of a database.
    pub fn drop_database(&mut self, db: &str) -> Result<usize> {
        let metas = self.collections(Some(db))?;
        for meta in &metas {
            self.drop_collection(&meta.ns)?;
        }
        self.log_command(&Namespace::new(db, "$cmd"), None, doc! {"dropDatabase": 1})?;
        Ok(metas.len())
    }

    /// `collMod`: sets each of `options` (validator, validationLevel, validationAction) in the collection's
    /// options and logs the change. False when the collection does not exist.
    pub fn modify_collection_options(&mut self, ns: &Namespace, options: &Document) -> Result<bool> {
        let Some(mut meta) = self.collection(ns)? else {
            return Ok(false);
        };
        for (key, value) in options {
            meta.options.insert(key.clone(), value.clone());
        }
        self.put_collection(&meta)?;
        let mut o = doc! {"collMod": &ns.coll};
        o.extend(options.clone());
        self.log_command(ns, Some(meta.uuid_bson()), o)?;
        Ok(true)
    }

    /// Creates an index. Returns false when an identical index already exists.
    pub fn create_index(&mut self, ns: &Namespace, spec: &Document) -> Result<bool> {
        let index = index_from_spec(spec)
            .ok_or_else(|| Error::failed_to_parse("an index specification needs a 'key' document and a 'name'"))?;
        if index.key.is_empty() {
            return Err(Error::new(code::BAD_VALUE, "Index keys cannot be empty."));
        }
        let mut meta = self.ensure_collection(ns)?;
        if let Some(existing) = meta.index(&index.name) {
            if existing.key == index.key && existing.unique == index.unique {
                return Ok(false);
            }
            return Err(Error::new(
                code::INDEX_KEY_SPECS_CONFLICT,
                format!(
                    "An existing index has the same name as the requested index: {}",
                    index.name
                ),
            ));
        }
        if let Some(existing) = meta.indexes.iter().find(|i| i.key == index.key) {
            return Err(Error::new(
                code::INDEX_OPTIONS_CONFLICT,
                format!("Index already exists with a different name: {}", existing.name),
            ));
        }
        if index.unique {
            self.build_unique_index(&meta, &index)?;
        }
        meta.indexes.push(index.clone());
        self.put_collection(&meta)?;
        let mut o = doc! {"createIndexes": &ns.coll};
        o.extend(index.spec.clone());
        self.log_command(ns, Some(meta.uuid_bson()), o)?;
        Ok(true)
    }

    fn build_unique_index(&mut self, meta: &CollectionMeta, index: &IndexSpec) -> Result<()> {
        let mut entries: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
        for doc in self.scan(meta, |_| true, usize::MAX)? {
            let Some(key) = index_key(index, &doc) else { continue };
            let id = keystring::encode(doc.get("_id").unwrap_or(&Bson::Null));
            if entries.insert(key, id).is_some() {
                return Err(duplicate_key_error(meta, index, &doc));
            }
        }
        let mut table = self.table(&index_table_name(meta, &index.name))?;
        for (key, id) in entries {
            table
                .insert(key.as_slice(), id.as_slice())
                .map_err(|e| self.fatal("index insert", e))?;
        }
        Ok(())
    }

    /// Drops one index by name, or every index but `_id_` for `"*"`. Returns the number dropped.
    pub fn drop_index(&mut self, ns: &Namespace, name: &str) -> Result<usize> {
        let Some(mut meta) = self.collection(ns)? else {
            return Err(Error::new(code::NAMESPACE_NOT_FOUND, format!("ns not found {ns}")));
        };
        if name == "_id_" {
            return Err(Error::new(code::INVALID_OPTIONS, "cannot drop _id index"));
        }
        let doomed: Vec<IndexSpec> = meta
            .indexes
            .iter()
            .filter(|i| !i.is_id_index() && (name == "*" || i.name == name))
            .cloned()
            .collect();
        if doomed.is_empty() && name != "*" {
            return Err(Error::new(
                code::INDEX_NOT_FOUND,
                format!("index not found with name [{name}]"),
            ));
        }
        let txn = self.txn;
        for index in &doomed {
            if index.unique {
                let table = index_table_name(&meta, &index.name);
                txn.delete_table(TableDefinition::<&[u8], &[u8]>::new(&table))
                    .map_err(|e| self.fatal("drop index", e))?;
            }
        }
        meta.indexes.retain(|i| !doomed.iter().any(|d| d.name == i.name));
        self.put_collection(&meta)?;
        self.log_command(
            ns,
            Some(meta.uuid_bson()),
            doc! {"dropIndexes": &ns.coll, "index": name},
        )?;
        Ok(doomed.len())
    }

    // ---- documents ---------------------------------------------------------------------------------

    pub fn get_by_id(&mut self, meta: &CollectionMeta, id: &Bson) -> Result<Option<Document>> {
        let table = self.table(&docs_table_name(meta))?;
        let value = table
            .get(keystring::encode(id).as_slice())
            .map_err(|e| self.fatal("get", e))?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(
                super::decode(v.value()).map_err(|e| self.fatal("decode document", e))?,
            )),
        }
    }

    /// The documents for which `keep` is true, in `_id` order, at most `limit`.
    pub fn scan(
        &mut self,
        meta: &CollectionMeta,
        mut keep: impl FnMut(&Document) -> bool,
        limit: usize,
    ) -> Result<Vec<Document>> {
        let table = self.table(&docs_table_name(meta))?;
        let mut out = Vec::new();
        let iter = table.iter().map_err(|e| self.fatal("scan", e))?;
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (_, value) = item.map_err(|e| self.fatal("scan", e))?;
            let doc = super::decode(value.value()).map_err(|e| self.fatal("decode document", e))?;
            if keep(&doc) {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// Inserts a document that already has an `_id`. DuplicateKey (11000) if `_id` or a unique index clashes.
    pub fn insert(&mut self, meta: &CollectionMeta, doc: Document, session: Option<&SessionStatement>) -> Result<()> {
        self.insert_document(meta, doc, session, true)
    }

    /// [`WriteCtx::insert`] of a document whose `_id` the caller has just found missing in this transaction:
    /// it is not looked up again (replication's apply reads each document's current version first).
    pub(super) fn insert_missing(&mut self, meta: &CollectionMeta, doc: Document) -> Result<()> {
        self.insert_document(meta, doc, None, false)
    }

    fn insert_document(
        &mut self,
        meta: &CollectionMeta,
        doc: Document,
        session: Option<&SessionStatement>,
        check_id: bool,
    ) -> Result<()> {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let bytes = super::encode(&doc, MAX_DOCUMENT_DEPTH, || {
            format!("cannot insert document because it exceeds {MAX_DOCUMENT_DEPTH} levels of nesting")
        })?;
        let id_key = keystring::encode(&id);
        let mut docs = self.table(&docs_table_name(meta))?;
        if check_id && docs.get(id_key.as_slice()).map_err(|e| self.fatal("get", e))?.is_some() {
            return Err(duplicate_key_error(meta, &IndexSpec::id_index(), &doc));
        }
        let index_keys = self.check_unique(meta, &doc, &id_key)?;
        docs.insert(id_key.as_slice(), bytes.as_slice())
            .map_err(|e| self.fatal("insert", e))?;
        drop(docs);
        self.write_index_keys(meta, &index_keys, &id_key)?;
        let session = session.map(SessionStatement::oplog_fields);
        let encoded = RawDocument::from_bytes(&bytes).map_err(|e| self.fatal("encoded document", e))?;
        self.log_data_with(
            meta,
            NewEntry {
                op: OpKind::Insert,
                ns: meta.ns.full(),
                ui: None,
                o: doc,
                o2: None,
                session,
            },
            Some(encoded),
        )
    }

    /// Replaces `before` by `after` (same `_id`), keeping unique indexes in step; logs a diff.
    pub fn replace(
        &mut self,
        meta: &CollectionMeta,
        before: &Document,
        after: Document,
        session: Option<&SessionStatement>,
    ) -> Result<()> {
        self.replace_as(meta, before, after, session, false)
    }

    /// [`replace`](Self::replace), logging the whole new document when `whole` (a replacement-style update,
    /// which change streams report as a `replace` event, as MongoDB does).
    pub fn replace_as(
        &mut self,
        meta: &CollectionMeta,
        before: &Document,
        after: Document,
        session: Option<&SessionStatement>,
        whole: bool,
    ) -> Result<()> {
        let bytes = super::encode(&after, MAX_DOCUMENT_DEPTH, || {
            format!("Document exceeds maximum nesting depth of {MAX_DOCUMENT_DEPTH}")
        })?;
        let id = before.get("_id").cloned().unwrap_or(Bson::Null);
        let id_key = keystring::encode(&id);
        let new_keys = self.check_unique(meta, &after, &id_key)?;
        self.remove_index_keys(meta, before)?;
        self.write_index_keys(meta, &new_keys, &id_key)?;
        let mut docs = self.table(&docs_table_name(meta))?;
        docs.insert(id_key.as_slice(), bytes.as_slice())
            .map_err(|e| self.fatal("update", e))?;
        drop(docs);
        let change = if whole {
            UpdateChange::Replacement(after)
        } else {
            UpdateChange::between(before, &after)
        };
        let diff = change.into_document();
        let session = with_pre_image(
            session.map(SessionStatement::oplog_fields),
            self.log_pre_image(meta, before)?,
        );
        let o2 = Some(doc! {"_id": id});
        self.log_data(
            meta,
            NewEntry {
                op: OpKind::Update,
                ns: meta.ns.full(),
                ui: None,
                o: diff,
                o2,
                session,
            },
        )
    }

    /// Deletes a document (by its `_id`).
    pub fn delete(&mut self, meta: &CollectionMeta, doc: &Document, session: Option<&SessionStatement>) -> Result<()> {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        self.remove_index_keys(meta, doc)?;
        let mut docs = self.table(&docs_table_name(meta))?;
        docs.remove(keystring::encode(&id).as_slice())
            .map_err(|e| self.fatal("delete", e))?;
        drop(docs);
        let session = with_pre_image(
            session.map(SessionStatement::oplog_fields),
            self.log_pre_image(meta, doc)?,
        );
        self.log_data(
            meta,
            NewEntry {
                op: OpKind::Delete,
                ns: meta.ns.full(),
                ui: None,
                o: doc! {"_id": id},
                o2: None,
                session,
            },
        )
    }

    /// Checks `doc` against every unique index and returns the keys to write. A key already owned by `id_key`
    /// (the previous version of the same document, when `doc` replaces it) is not a conflict.
    fn check_unique(&mut self, meta: &CollectionMeta, doc: &Document, id_key: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut keys = Vec::new();
        for index in meta.unique_indexes() {
            let Some(key) = index_key(index, doc) else { continue };
            let table = self.table(&index_table_name(meta, &index.name))?;
            let owner = table.get(key.as_slice()).map_err(|e| self.fatal("index get", e))?;
            if let Some(owner) = owner
                && owner.value() != id_key
            {
                return Err(duplicate_key_error(meta, index, doc));
            }
            keys.push((index.name.clone(), key));
        }
        Ok(keys)
    }

    fn write_index_keys(&mut self, meta: &CollectionMeta, keys: &[(String, Vec<u8>)], id_key: &[u8]) -> Result<()> {
        for (name, key) in keys {
            let mut table = self.table(&index_table_name(meta, name))?;
            table
                .insert(key.as_slice(), id_key)
                .map_err(|e| self.fatal("index insert", e))?;
        }
        Ok(())
    }

    fn remove_index_keys(&mut self, meta: &CollectionMeta, doc: &Document) -> Result<()> {
        for index in meta.unique_indexes() {
            let Some(key) = index_key(index, doc) else { continue };
            let mut table = self.table(&index_table_name(meta, &index.name))?;
            table
                .remove(key.as_slice())
                .map_err(|e| self.fatal("index remove", e))?;
        }
        Ok(())
    }

    // ---- sessions (retryable writes) ---------------------------------------------------------------

    /// The stored result of a statement already executed under this session and transaction number.
    /// `TransactionTooOld` (225) when the session has moved on to a newer transaction number.
    pub fn executed_statement(&mut self, stmt: &SessionStatement) -> Result<Option<Document>> {
        let Some(record) = self.session_record(&stmt.lsid)? else {
            return Ok(None);
        };
        let stored_txn = record.get_i64("txnNumber").unwrap_or(-1);
        if stmt.txn_number < stored_txn {
            return Err(Error::new(
                code::TRANSACTION_TOO_OLD,
                format!(
                    "Retryable write with txnNumber {} is prohibited on session because a newer retryable write \
                     with txnNumber {stored_txn} has already started on this session.",
                    stmt.txn_number
                ),
            ));
        }
        if stmt.txn_number > stored_txn {
            return Ok(None);
        }
        let key = statement_key(&stmt.lsid, stmt.stmt_id);
        let txn = self.txn;
        let table = txn
            .open_table(SESSION_STATEMENTS)
            .map_err(|e| self.fatal("session statements", e))?;
        let value = table
            .get(key.as_slice())
            .map_err(|e| self.fatal("session statements get", e))?;
        if let Some(v) = value {
            return Ok(Some(
                Document::from_reader(v.value()).map_err(|e| self.fatal("decode statement", e))?,
            ));
        }
        // Records written before statements had rows of their own kept them inline.
        let stmts = record.get_document("stmts").ok();
        Ok(stmts.and_then(|s| s.get_document(stmt.stmt_id.to_string()).ok().cloned()))
    }

    /// Records that a statement executed, with the result a retry must get back: one row for the statement,
    /// and the session's record rewritten (small, constant size) with a new transaction number, whose older
    /// statements are deleted then.
    pub fn record_statement(&mut self, stmt: &SessionStatement, result: Document) -> Result<()> {
        let record = self.session_record(&stmt.lsid)?;
        let stored_txn = record.as_ref().and_then(|r| r.get_i64("txnNumber").ok());
        let txn = self.txn;
        if stored_txn != Some(stmt.txn_number) {
            let (from, to) = statement_range(&stmt.lsid);
            let mut stmts = txn
                .open_table(SESSION_STATEMENTS)
                .map_err(|e| self.fatal("session statements", e))?;
            stmts
                .retain_in(from.as_slice()..=to.as_slice(), |_, _| false)
                .map_err(|e| self.fatal("session statements truncate", e))?;
            drop(stmts);
            let record = doc! {"lsid": stmt.lsid.clone(), "txnNumber": stmt.txn_number, "lastWrite": self.clock.now()};
            let bytes = record.to_vec()?;
            let key = keystring::encode(&Bson::Document(stmt.lsid.clone()));
            let mut table = txn.open_table(SESSIONS).map_err(|e| self.fatal("sessions", e))?;
            table
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(|e| self.fatal("sessions insert", e))?;
        }
        let bytes = result.to_vec()?;
        let key = statement_key(&stmt.lsid, stmt.stmt_id);
        let mut stmts = txn
            .open_table(SESSION_STATEMENTS)
            .map_err(|e| self.fatal("session statements", e))?;
        stmts
            .insert(key.as_slice(), bytes.as_slice())
            .map_err(|e| self.fatal("session statements insert", e))?;
        Ok(())
    }

    fn session_record(&mut self, lsid: &Document) -> Result<Option<Document>> {
        let key = keystring::encode(&Bson::Document(lsid.clone()));
        let txn = self.txn;
        let table = txn.open_table(SESSIONS).map_err(|e| self.fatal("sessions", e))?;
        let value = table.get(key.as_slice()).map_err(|e| self.fatal("sessions get", e))?;
        match value {
            None => Ok(None),
            Some(v) => Ok(Some(
                super::decode(v.value()).map_err(|e| self.fatal("decode session", e))?,
            )),
        }
    }
}

/// `len(session key) ++ session key`: the prefix of every statement row of one session (the length keeps
/// one session's range from covering another's).
/// An entry's extra fields: its session statement's, and `preImageOpTime` when a pre-image was logged.
fn with_pre_image(session: Option<Document>, pre_image: Option<Document>) -> Option<Document> {
    match (session, pre_image) {
        (Some(mut fields), Some(pre)) => {
            fields.extend(pre);
            Some(fields)
        }
        (session, pre) => session.or(pre),
    }
}

fn session_prefix(lsid: &Document) -> Vec<u8> {
    let session = keystring::encode(&Bson::Document(lsid.clone()));
    let mut out = Vec::with_capacity(session.len() + 8);
    out.extend_from_slice(&(session.len() as u32).to_be_bytes());
    out.extend_from_slice(&session);
    out
}

/// The row key of statement `stmt_id` of a session: the prefix, then the id order-preserving.
fn statement_key(lsid: &Document, stmt_id: i32) -> Vec<u8> {
    let mut out = session_prefix(lsid);
    out.extend_from_slice(&((stmt_id as u32) ^ 0x8000_0000).to_be_bytes());
    out
}

/// The first and last possible statement keys of a session.
fn statement_range(lsid: &Document) -> (Vec<u8>, Vec<u8>) {
    let prefix = session_prefix(lsid);
    let mut from = prefix.clone();
    from.extend_from_slice(&[0u8; 4]);
    let mut to = prefix;
    to.extend_from_slice(&[0xffu8; 4]);
    (from, to)
}

/// The key of `doc` in a unique index: the values of its fields (missing = null); None when a sparse index
/// skips the document.
pub(crate) fn index_key(index: &IndexSpec, doc: &Document) -> Option<Vec<u8>> {
    let values: Vec<Bson> = index
        .fields()
        .map(|f| crate::query::path::lookup(doc, f).cloned().unwrap_or(Bson::Null))
        .collect();
    if index.sparse && index.fields().all(|f| crate::query::path::lookup(doc, f).is_none()) {
        return None;
    }
    Some(keystring::encode_compound(values.iter()))
}

fn duplicate_key_error(meta: &CollectionMeta, index: &IndexSpec, doc: &Document) -> Error {
    let mut key_value = Document::new();
    for field in index.fields() {
        key_value.insert(
            field,
            crate::query::path::lookup(doc, field).cloned().unwrap_or(Bson::Null),
        );
    }
    let shown: Vec<String> = key_value.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Error::new(
        code::DUPLICATE_KEY,
        format!(
            "E11000 duplicate key error collection: {} index: {} dup key: {{ {} }}",
            meta.ns,
            index.name,
            shown.join(", ")
        ),
    )
    .with_extra(doc! {"keyPattern": index.key.clone(), "keyValue": key_value})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn stmt(lsid: &Document, txn_number: i64, stmt_id: i32) -> SessionStatement {
        SessionStatement {
            lsid: lsid.clone(),
            txn_number,
            stmt_id,
            retry_image: None,
        }
    }

    /// A retryable batch of n statements stores n small rows: the session's own record stays the same size
    /// whatever n is (it used to hold every statement and was rewritten per statement: O(n²) bytes).
    #[test]
    fn a_batch_of_statements_costs_one_row_each() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let storage = Storage::open(dir.path())?;
        let lsid = doc! {"id": bson::Uuid::new()};
        let other = doc! {"id": bson::Uuid::new()};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::internal(e.to_string()))?;
        let (lsid2, other2) = (lsid.clone(), other.clone());
        let (record_len, found, other_found) = runtime.block_on(storage.write(false, move |w| -> Result<_> {
            w.record_statement(&stmt(&other2, 1, 0), doc! {"n": 7})?;
            for i in 0..2_000 {
                w.record_statement(&stmt(&lsid2, 5, i), doc! {"n": 1, "i": i})?;
            }
            let record_len = w
                .session_record(&lsid2)?
                .map(|r| r.to_vec().map(|b| b.len()))
                .transpose()?;
            let found = w.executed_statement(&stmt(&lsid2, 5, 1_999))?;
            let other_found = w.executed_statement(&stmt(&other2, 1, 0))?;
            Ok((record_len, found, other_found))
        }))??;
        assert!(
            record_len.is_some_and(|len| len < 100),
            "session record of {record_len:?} bytes"
        );
        assert_eq!(found, Some(doc! {"n": 1, "i": 1_999}));
        assert_eq!(other_found, Some(doc! {"n": 7}), "sessions do not share statements");
        let lsid3 = lsid.clone();
        let (stale, too_old) = runtime.block_on(storage.write(false, move |w| -> Result<_> {
            w.record_statement(&stmt(&lsid3, 6, 0), doc! {"n": 2})?;
            let stale = w.executed_statement(&stmt(&lsid3, 6, 1_999))?;
            let too_old = w.executed_statement(&stmt(&lsid3, 5, 0)).err().map(|e| e.code);
            Ok((stale, too_old))
        }))??;
        assert_eq!(stale, None, "a new transaction number drops the old statements");
        assert_eq!(too_old, Some(225), "TransactionTooOld");
        storage.shutdown();
        Ok(())
    }

    /// A replacement may keep the unique keys its previous version owns, may not take another document's,
    /// and frees the keys it drops.
    #[test]
    fn a_replacement_reuses_its_own_unique_keys_only() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let storage = Storage::open(dir.path())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::internal(e.to_string()))?;
        let codes = runtime.block_on(storage.write(false, |w| -> Result<_> {
            let ns = Namespace::new("db", "people");
            w.create_index(&ns, &doc! {"key": {"email": 1}, "name": "email_1", "unique": true})?;
            let meta = w.collection(&ns)?.ok_or_else(|| Error::internal("created"))?;
            let (one, two) = (doc! {"_id": 1, "email": "a"}, doc! {"_id": 2, "email": "b"});
            w.insert(&meta, one.clone(), None)?;
            w.insert(&meta, two, None)?;
            let kept = doc! {"_id": 1, "email": "a", "x": 1};
            let keep_own = w.replace(&meta, &one, kept.clone(), None).map_err(|e| e.code);
            let take_other = w
                .replace(&meta, &kept, doc! {"_id": 1, "email": "b"}, None)
                .map_err(|e| e.code);
            let move_on = w
                .replace(&meta, &kept, doc! {"_id": 1, "email": "c"}, None)
                .map_err(|e| e.code);
            let freed = w.insert(&meta, doc! {"_id": 3, "email": "a"}, None).map_err(|e| e.code);
            Ok([keep_own, take_other, move_on, freed])
        }))??;
        assert_eq!(codes, [Ok(()), Err(11000), Ok(()), Ok(())]);
        storage.shutdown();
        Ok(())
    }
}
