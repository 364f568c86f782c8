//! Criterion benchmarks of the engine's hot paths: the wire codec (decoding an insert of 100 documents,
//! encoding a 101-document reply), filter matching, the storage commit path (one insert committed in memory
//! and durably, and 32 concurrent durable inserts sharing one group commit), oplog application on a secondary
//! (1,000 entries in one storage transaction, as the fetcher applies a batch, and one entry applied durably,
//! as it applies a single write), and the fetcher's handling of a `getMore` reply (decode, take the batch,
//! parse the entries).

use std::hint::black_box;

use bson::raw::RawDocumentBuf;
use bson::{Document, doc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use faultline_engine::query::filter::Filter;
use faultline_engine::storage::{EncodedBatch, JobSize, Namespace, OpTime, OplogEntry, Storage};
use faultline_engine::wire::client::{ClientError, CommandChannel, OplogTail, TailSpec};
use faultline_engine::wire::{self, Header, Request};

fn insert_message(docs: usize) -> Vec<u8> {
    let documents: Vec<Document> = (0..docs)
        .map(|i| doc! {"_id": i as i64, "name": format!("item-{i}"), "qty": i as i32})
        .collect();
    let body = doc! {"insert": "items", "documents": documents, "ordered": true, "$db": "shop"};
    wire::try_encode_msg(7, 0, 0, &body).expect("encodes")
}

fn codec(c: &mut Criterion) {
    let message = insert_message(100);
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("decode OP_MSG insert, 100 documents", |b| {
        b.iter(|| {
            let header = Header::parse(message[..16].try_into().expect("header"));
            match wire::decode_request(&header, black_box(&message[16..])) {
                Ok(Request::Msg(msg)) => msg.body.len(),
                _ => panic!("decodes"),
            }
        })
    });
    let batch: Vec<Document> = (0..101).map(|i| doc! {"_id": i, "v": "x".repeat(64)}).collect();
    let reply = doc! {"cursor": {"firstBatch": batch, "id": 0i64, "ns": "shop.items"}, "ok": 1.0};
    group.bench_function("encode reply, 101 documents", |b| {
        b.iter(|| wire::encode_msg_reply(1, 7, black_box(&reply)).len())
    });
    // A primary's answer to a secondary's getMore: stored oplog entries spliced into the reply as they are.
    let mut stored = faultline_engine::command::StoredBatch::default();
    for i in 0..1000u32 {
        let entry = doc! {
            "ts": bson::Timestamp { time: 1, increment: i }, "t": 1_i64, "op": "i", "ns": "shop.items",
            "wall": bson::DateTime::from_millis(0), "o": {"_id": i as i64, "v": "x".repeat(64)},
        };
        stored
            .push(u64::from(i) + 1, &entry.to_vec().expect("encodes"))
            .expect("a document");
    }
    let body = doc! {"cursor": {"id": 9_i64, "ns": "local.oplog.rs"}, "ok": 1.0, "$replData": {"term": 1_i64}};
    let oplog_reply = faultline_engine::command::Reply::with_stored_batch(body, stored);
    let reply_bytes = oplog_reply.to_bson().expect("encodes").len();
    group.throughput(Throughput::Bytes(reply_bytes as u64));
    group.bench_function("encode a getMore reply of 1,000 stored oplog entries", |b| {
        b.iter(|| wire::encode_msg_reply_bson(1, 7, black_box(&oplog_reply).to_bson()).len())
    });
    group.finish();
}

fn matching(c: &mut Criterion) {
    let docs: Vec<Document> = (0..1000)
        .map(|i| doc! {"_id": i, "tags": ["a", "b"], "n": i % 17, "d": {"x": i}})
        .collect();
    let filter = Filter::parse(&doc! {"n": {"$gte": 5, "$lt": 9}, "tags": "b", "d.x": {"$ne": 3}}).expect("filter");
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("match 1,000 documents", |b| {
        b.iter(|| docs.iter().filter(|d| filter.matches(d)).count())
    });
    group.finish();
}

/// One insert entry as a primary would have logged it: document `id` at `ts`.
fn insert_entry(id: u64, ts: bson::Timestamp) -> Document {
    let ui = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: vec![7; 16],
    };
    doc! {"op": "i", "ns": "bench.c", "ui": ui, "o": {"_id": id as i64, "v": "payload"},
    "ts": ts, "t": 1i64, "v": 2i64, "wall": bson::DateTime::now()}
}

/// 1,000 insert entry documents as a primary would have logged them.
fn oplog_documents(start: u32) -> Vec<Document> {
    (0..1000u32)
        .map(|i| {
            let ts = bson::Timestamp {
                time: 1_700_000_000 + start / 1000,
                increment: i + 1,
            };
            insert_entry(u64::from(start + i), ts)
        })
        .collect()
}

/// 1,000 insert entries as a primary would have logged them, parsed as a fetcher parses them.
fn oplog_batch(start: u32) -> Vec<OplogEntry> {
    oplog_documents(start)
        .into_iter()
        .map(|entry| OplogEntry::parse(entry).expect("entry with ts"))
        .collect()
}

fn apply(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path()).expect("storage");
    let mut next = 0u32;
    let mut group = c.benchmark_group("oplog");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    group.bench_function("apply 1,000 insert entries (one transaction)", |b| {
        b.iter_batched(
            || {
                next += 1000;
                oplog_batch(next)
            },
            |batch| {
                runtime
                    .block_on(storage.write(false, move |w| -> faultline_engine::Result<OpTime> {
                        let mut last = OpTime::null();
                        for entry in &batch {
                            w.apply_entry(entry)?;
                            last = w.append_entry(entry)?;
                        }
                        Ok(last)
                    }))
                    .expect("storage")
                    .expect("applied")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    storage.shutdown();
}

/// One small document, as `faultline bench throughput` inserts it.
fn small_document(i: u64) -> Document {
    doc! {"_id": i as i64, "p": "x".repeat(64)}
}

/// The storage commit path: what one insert costs in the writer, in memory and with the fsync `j: true`
/// asks for, and how 32 concurrent durable inserts share one group commit.
fn commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path()).expect("storage");
    let ns = Namespace::new("bench", "commit");
    let meta = runtime
        .block_on(storage.write(true, move |w| w.ensure_collection(&ns)))
        .expect("storage")
        .expect("collection");
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let insert = |storage: &Storage, durable: bool| {
        let (storage, meta) = (storage.clone(), meta.clone());
        let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            storage
                .write(durable, move |w| w.insert(&meta, small_document(id), None))
                .await
        }
    };
    let mut group = c.benchmark_group("storage");
    group.sample_size(30);
    group.bench_function("commit one insert in memory (j: false)", |b| {
        b.iter(|| {
            runtime
                .block_on(insert(&storage, false))
                .expect("storage")
                .expect("inserted")
        })
    });
    group.bench_function("commit one insert durably (j: true, fsync)", |b| {
        b.iter(|| {
            runtime
                .block_on(insert(&storage, true))
                .expect("storage")
                .expect("inserted")
        })
    });
    group.bench_function("commit one insert in memory, then an empty durable commit", |b| {
        b.iter(|| {
            runtime.block_on(async {
                insert(&storage, false).await.expect("storage").expect("inserted");
                storage.flush().await.expect("flushed")
            })
        })
    });
    group.throughput(Throughput::Elements(32));
    group.bench_function("commit 32 concurrent durable inserts (group commit)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let writes: Vec<_> = (0..32)
                    .map(|_| {
                        let write = insert(&storage, true);
                        tokio::spawn(write)
                    })
                    .collect();
                for write in writes {
                    write.await.expect("task").expect("storage").expect("inserted");
                }
            })
        })
    });
    group.finish();
    storage.shutdown();
}

/// One insert entry with the next increment.
fn next_insert_entry(next: &mut u64) -> OplogEntry {
    *next += 1;
    let ts = bson::Timestamp {
        time: 1_700_000_000,
        increment: *next as u32,
    };
    OplogEntry::parse(insert_entry(*next, ts)).expect("entry")
}

/// One entry applied and appended durably, as a secondary applies a single replicated write (the step between
/// fetching it and reporting it durable): in one durable job, and as a secondary takes it, journaled before it
/// is applied (the fsync beside the apply) until the durable position reaches it.
fn apply_one_durably(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path()).expect("storage");
    let mut next = 0u64;
    let mut group = c.benchmark_group("oplog");
    group.sample_size(30);
    group.bench_function("apply 1 insert entry durably (fsync)", |b| {
        b.iter_batched(
            || next_insert_entry(&mut next),
            |entry| {
                runtime
                    .block_on(storage.write(true, move |w| -> faultline_engine::Result<OpTime> {
                        w.apply_entry(&entry)?;
                        w.append_entry(&entry)
                    }))
                    .expect("storage")
                    .expect("applied")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("apply 1 insert entry journaled first, until durable", |b| {
        b.iter_batched(
            || next_insert_entry(&mut next),
            |entry| {
                let optime = entry.optime;
                let batch = vec![entry];
                let encoded = EncodedBatch::new(&batch).expect("encode");
                let appended = encoded.clone();
                runtime.block_on(async {
                    let mut positions = storage.watch_positions();
                    storage
                        .apply_prejournaled(encoded, JobSize::Small, move |w| -> faultline_engine::Result<()> {
                            w.apply_entry(&batch[0])?;
                            w.append_encoded(&batch[0], appended.entry(0))?;
                            Ok(())
                        })
                        .await
                        .expect("storage")
                        .expect("applied");
                    positions.wait_for(|p| p.last_durable >= optime).await.expect("durable");
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    storage.shutdown();
}

/// A sync source that answers every `getMore` with the same encoded reply, which the tail checks as the wire
/// client checks a reply.
struct CannedSource {
    reply: Vec<u8>,
}

impl CommandChannel for CannedSource {
    type Error = ClientError;

    fn raw_command<'a>(
        &'a mut self,
        _body: &'a Document,
        _timeout: std::time::Duration,
    ) -> impl std::future::Future<Output = Result<RawDocumentBuf, ClientError>> + Send + 'a {
        let reply = RawDocumentBuf::from_bytes(self.reply.clone())
            .map_err(|e| ClientError::Protocol(e.to_string()))
            .and_then(|reply| {
                let within =
                    faultline_engine::depth::raw_nesting_within(&reply, faultline_engine::depth::MAX_BSON_DEPTH);
                match within {
                    Ok(true) => Ok(reply),
                    _ => Err(ClientError::Protocol("malformed or too deep".into())),
                }
            });
        std::future::ready(reply)
    }
}

/// The fetcher's handling of one batch before it is applied: the `getMore` reply decoded, the batch and its
/// `$replData` taken out, the entries parsed.
fn fetch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("fetcher");
    for size in [1usize, 1000] {
        let entries: Vec<Document> = oplog_documents(0).into_iter().take(size).collect();
        let optime = doc! {"ts": bson::Timestamp {time: 1, increment: 1}, "t": 1i64};
        let reply = |field: &str| {
            doc! {"cursor": {field: entries.clone(), "id": 42i64, "ns": "local.oplog.rs"},
            "$replData": {"term": 1i64, "lastOpCommitted": optime.clone(), "lastOpApplied": optime.clone(),
                "rbid": 1, "primaryIndex": 0},
            "ok": 1.0}
        };
        let first = CannedSource {
            reply: reply("firstBatch").to_vec().expect("encodes"),
        };
        let (mut tail, _) = runtime
            .block_on(OplogTail::open(first, TailSpec::new(doc! {})))
            .expect("open");
        tail.channel().reply = reply("nextBatch").to_vec().expect("encodes");
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("handle a getMore reply of {size} entries"), |b| {
            b.iter(|| {
                let batch = runtime.block_on(tail.next_batch()).expect("batch");
                black_box(batch.rollback_id());
                OplogEntry::from_raw_all(batch.entries).expect("entries").len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec, matching, commit, apply, apply_one_durably, fetch);
criterion_main!(benches);
