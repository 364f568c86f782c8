//! The blocking sort (`$sort`, and find's `sort`): holds its input as BSON bytes plus sort keys, within
//! mongod's 100 MiB `internalQueryMaxBlockingSortMemoryUsageBytes`.
//!
//! ```text
//! input ─► entries (key, sequence number, bytes) ──over the limit──► allowDiskUse? sorted run on disk
//!                                                                    otherwise     error 292
//! end   ─► no runs: sort in memory, yield   │   runs: k-way merge of the runs, yield
//! ```
//! With a limit (`$sort` then `$limit`, or find's `limit`), only the first `k` are kept (top-k): the entries
//! are cut back to `k` whenever they reach `2k`, so the memory is that of `k` documents, not of the input.
//! Equal keys keep their input order (the sequence number), as the in-memory sort always did.
//!
//! When the cursor holding a sorted result waits for a getMore ([`DocStream::park`]) and more than
//! [`PARK_IN_MEMORY_BYTES`] of it is left in memory, the rest is written to one run under the member's
//! temporary directory (whatever `allowDiskUse` says: it bounds what a query may hold while it runs, this is
//! what an idle cursor keeps), so an idle or abandoned cursor holds a file and one document, not its result.
//! If the write fails the result stays in memory.
use std::cmp::Ordering;
use std::collections::VecDeque;

use bson::{Bson, Document};

use super::stream::{DocStream, Limits, approx_size};
use crate::query::QueryError;
use crate::query::sort::SortSpec;
use crate::spill::{RunReader, RunWriter, decode};

/// One buffered input document.
struct Entry {
    key: Vec<Bson>,
    seq: u64,
    bytes: Box<[u8]>,
}

impl Entry {
    fn size(&self) -> usize {
        self.bytes.len() + self.key.iter().map(approx_size).sum::<usize>() + std::mem::size_of::<Entry>() + 16
    }
}

/// One run's next document during a merge.
struct Head {
    key: Vec<Bson>,
    seq: u64,
    doc: Document,
}

enum Output {
    /// The input has not been read yet.
    Pending,
    Memory(VecDeque<Box<[u8]>>),
    Merge {
        runs: Vec<RunReader>,
        heads: Vec<Option<Head>>,
    },
    Done,
}

/// What a parked sorted cursor keeps in memory at most; the rest waits on disk.
pub const PARK_IN_MEMORY_BYTES: usize = 1024 * 1024;

/// The code and message mongod gives when a blocking sort outgrows its limit without `allowDiskUse`.
pub fn sort_memory_error(limit: usize) -> QueryError {
    QueryError::new(
        292,
        "QueryExceededMemoryLimitNoDiskUseAllowed",
        format!(
            "Sort exceeded memory limit of {limit} bytes, but did not opt in to external sorting. Aborting \
             operation. Pass allowDiskUse:true to opt in."
        ),
    )
}

/// A blocking sort over its input.
pub struct SortStream {
    spec: SortSpec,
    /// Only this many documents are wanted (a following `$limit`, or find's skip + limit).
    top: Option<usize>,
    limits: Limits,
    input: Option<Box<dyn DocStream>>,
    output: Output,
    /// Documents yielded so far (a merge stops at `top`).
    yielded: usize,
    /// Runs written (for tests and logs).
    spilled_runs: usize,
}

impl SortStream {
    pub fn new(input: Box<dyn DocStream>, spec: SortSpec, top: Option<usize>, limits: Limits) -> SortStream {
        SortStream {
            spec,
            top,
            limits,
            input: Some(input),
            output: Output::Pending,
            yielded: 0,
            spilled_runs: 0,
        }
    }

    /// How many sorted runs were written to disk.
    pub fn spilled_runs(&self) -> usize {
        self.spilled_runs
    }

    fn order(&self, a: &Entry, b: &Entry) -> Ordering {
        self.spec.compare_keys(&a.key, &b.key).then(a.seq.cmp(&b.seq))
    }

    /// Sorts the entries and keeps the first `top` of them.
    fn sort_and_cut(&self, entries: &mut Vec<Entry>) -> usize {
        entries.sort_by(|a, b| self.order(a, b));
        if let Some(k) = self.top {
            entries.truncate(k);
        }
        entries.iter().map(Entry::size).sum()
    }

    fn write_run(&mut self, entries: &mut Vec<Entry>, runs: &mut Vec<RunReader>) -> Result<(), QueryError> {
        let dir = self
            .limits
            .spill_dir()
            .ok_or_else(|| sort_memory_error(self.limits.sort_bytes))?
            .to_path_buf();
        self.sort_and_cut(entries);
        let mut writer = RunWriter::create(&dir)?;
        for entry in entries.drain(..) {
            writer.write_raw(entry.seq, &entry.bytes)?;
        }
        runs.push(writer.finish()?);
        self.spilled_runs += 1;
        Ok(())
    }

    /// Reads the whole input, in memory or into runs.
    fn drain(&mut self) -> Result<(), QueryError> {
        let Some(mut input) = self.input.take() else {
            return Ok(());
        };
        let limit = self.limits.sort_bytes;
        let mut entries: Vec<Entry> = Vec::new();
        let mut used = 0usize;
        let mut runs = Vec::new();
        let mut seq = 0u64;
        while let Some(doc) = input.next_doc()? {
            if self.top == Some(0) {
                continue;
            }
            let entry = Entry {
                key: self.spec.key_of(&doc),
                seq,
                bytes: doc
                    .to_vec()
                    .map_err(|e| QueryError::bad_value(e.to_string()))?
                    .into_boxed_slice(),
            };
            drop(doc);
            seq += 1;
            used += entry.size();
            entries.push(entry);
            if let Some(k) = self.top
                && entries.len() >= k.saturating_mul(2).max(64)
            {
                used = self.sort_and_cut(&mut entries);
            }
            if used > limit {
                if self.top.is_some_and(|k| entries.len() > k) {
                    used = self.sort_and_cut(&mut entries);
                }
                if used > limit {
                    self.write_run(&mut entries, &mut runs)?;
                    used = 0;
                }
            }
        }
        drop(input);
        if runs.is_empty() {
            self.sort_and_cut(&mut entries);
            self.output = Output::Memory(entries.into_iter().map(|e| e.bytes).collect());
            return Ok(());
        }
        if !entries.is_empty() {
            self.write_run(&mut entries, &mut runs)?;
        }
        let mut heads = Vec::with_capacity(runs.len());
        for run in &mut runs {
            heads.push(self.read_head(run)?);
        }
        self.output = Output::Merge { runs, heads };
        Ok(())
    }

    /// Moves a sorted remainder held in memory to a run on disk.
    fn park_on_disk(&mut self, dir: &std::path::Path) -> Result<(), QueryError> {
        let Output::Memory(docs) = &self.output else {
            return Ok(());
        };
        let mut writer = RunWriter::create(dir)?;
        for (i, bytes) in docs.iter().enumerate() {
            writer.write_raw(i as u64, bytes)?;
        }
        let mut run = writer.finish()?;
        let head = self.read_head(&mut run)?;
        self.output = Output::Merge {
            runs: vec![run],
            heads: vec![head],
        };
        Ok(())
    }

    fn read_head(&self, run: &mut RunReader) -> Result<Option<Head>, QueryError> {
        Ok(run.next_record()?.map(|(seq, doc)| Head {
            key: self.spec.key_of(&doc),
            seq,
            doc,
        }))
    }
}

impl DocStream for SortStream {
    fn next_doc(&mut self) -> Result<Option<Document>, QueryError> {
        if matches!(self.output, Output::Pending) {
            self.drain()?;
        }
        if self.top.is_some_and(|k| self.yielded >= k) {
            self.output = Output::Done;
        }
        let next = match &mut self.output {
            Output::Pending | Output::Done => None,
            Output::Memory(docs) => docs.pop_front().map(|bytes| decode(&bytes)).transpose()?,
            Output::Merge { runs, heads } => {
                let mut best: Option<usize> = None;
                for (i, head) in heads.iter().enumerate() {
                    let Some(head) = head else { continue };
                    let better = match best.and_then(|b| heads[b].as_ref()) {
                        None => true,
                        Some(current) => {
                            self.spec
                                .compare_keys(&head.key, &current.key)
                                .then(head.seq.cmp(&current.seq))
                                == Ordering::Less
                        }
                    };
                    if better {
                        best = Some(i);
                    }
                }
                match best {
                    None => None,
                    Some(i) => {
                        let refill = match runs[i].next_record()? {
                            None => None,
                            Some((seq, doc)) => Some(Head {
                                key: self.spec.key_of(&doc),
                                seq,
                                doc,
                            }),
                        };
                        std::mem::replace(&mut heads[i], refill).map(|h| h.doc)
                    }
                }
            }
        };
        match next {
            Some(doc) => {
                self.yielded += 1;
                Ok(Some(doc))
            }
            None => {
                self.output = Output::Done;
                Ok(None)
            }
        }
    }

    fn park(&mut self) {
        if let Some(input) = self.input.as_mut() {
            input.park();
        }
        if let Output::Memory(docs) = &self.output
            && docs.iter().map(|d| d.len()).sum::<usize>() > PARK_IN_MEMORY_BYTES
            && let Some(dir) = self.limits.spill_dir.clone()
            && let Err(err) = self.park_on_disk(&dir)
        {
            tracing::warn!(error = %err, "a parked sorted cursor stays in memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;
    use crate::query::pipeline::stream::VecStream;

    fn input(n: i64) -> Box<dyn DocStream> {
        // A permutation of 0..n, with a tie on every `g`.
        let docs: Vec<Document> = (0..n)
            .map(|i| doc! {"_id": i, "k": (i * 7919) % n, "g": i % 3, "pad": "x".repeat(100)})
            .collect();
        Box::new(VecStream::new(docs))
    }

    fn collect(mut stream: impl DocStream) -> Result<Vec<Document>, QueryError> {
        let mut out = Vec::new();
        while let Some(doc) = stream.next_doc()? {
            out.push(doc);
        }
        Ok(out)
    }

    fn limits(bytes: usize, spill: Option<&std::path::Path>) -> Limits {
        Limits {
            sort_bytes: bytes,
            allow_disk_use: spill.is_some(),
            spill_dir: spill.map(|p| p.to_path_buf()),
            ..Limits::default()
        }
    }

    fn spec(d: Document) -> SortSpec {
        SortSpec::parse(&d).expect("sort spec")
    }

    #[test]
    fn over_the_limit_without_disk_use_is_292() {
        let sort = SortStream::new(input(1000), spec(doc! {"k": 1}), None, limits(50_000, None));
        let err = collect(sort).expect_err("over the limit");
        assert_eq!(
            (err.code, err.code_name),
            (292, "QueryExceededMemoryLimitNoDiskUseAllowed")
        );
        assert!(
            err.message.contains("Sort exceeded memory limit of 50000 bytes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn top_k_fits_where_the_whole_sort_does_not() {
        let sort = SortStream::new(input(1000), spec(doc! {"k": -1}), Some(5), limits(50_000, None));
        let out = collect(sort).expect("top 5 fit");
        let keys: Vec<i64> = out.iter().map(|d| d.get_i64("k").unwrap_or(-1)).collect();
        assert_eq!(keys, vec![999, 998, 997, 996, 995]);
    }

    #[test]
    fn a_parked_result_waits_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut limits = limits(usize::MAX, None);
        limits.spill_dir = Some(dir.path().to_path_buf());
        let expected = collect(SortStream::new(
            input(20_000),
            spec(doc! {"k": 1}),
            None,
            limits.clone(),
        ))
        .expect("in memory");
        let mut sort = SortStream::new(input(20_000), spec(doc! {"k": 1}), None, limits);
        let mut out = vec![sort.next_doc().expect("first").expect("a document")];
        sort.park();
        assert!(matches!(sort.output, Output::Merge { .. }), "parked on disk");
        assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 1);
        out.extend(collect(sort).expect("the rest"));
        assert_eq!(out, expected);
        assert_eq!(
            std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0),
            0,
            "run removed"
        );
    }

    #[test]
    fn spilled_runs_merge_into_the_in_memory_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (sort_spec, top) in [
            (doc! {"k": 1}, None),
            (doc! {"g": 1}, None),
            (doc! {"g": -1}, Some(700)),
        ] {
            let expected = collect(SortStream::new(
                input(1000),
                spec(sort_spec.clone()),
                top,
                limits(usize::MAX, None),
            ))
            .expect("in memory");
            let mut spilling = SortStream::new(input(1000), spec(sort_spec), top, limits(20_000, Some(dir.path())));
            let first = spilling.next_doc().expect("first").expect("a document");
            assert!(spilling.spilled_runs() > 1, "{}", spilling.spilled_runs());
            let mut out = vec![first];
            out.extend(collect(spilling).expect("merged"));
            assert_eq!(out, expected);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0),
            0,
            "runs removed"
        );
    }
}
