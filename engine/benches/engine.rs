//! Criterion benchmarks of the engine's hot paths: the wire codec (decoding an insert of 100 documents,
//! encoding a 101-document reply), filter matching, and oplog application on a secondary (1,000 entries in
//! one storage transaction, as the fetcher applies a batch).

use std::hint::black_box;

use bson::{Document, doc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use faultline_engine::query::filter::Filter;
use faultline_engine::storage::{OpTime, OplogEntry, Storage};
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

/// 1,000 insert entries as a primary would have logged them, parsed as a fetcher parses them.
fn oplog_batch(start: u32) -> Vec<OplogEntry> {
    let ui = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: vec![7; 16],
    };
    (0..1000u32)
        .map(|i| {
            doc! {"op": "i", "ns": "bench.c", "ui": ui.clone(), "o": {"_id": i64::from(start + i), "v": "payload"},
            "ts": bson::Timestamp {time: 1_700_000_000 + start / 1000, increment: i + 1}, "t": 1i64, "v": 2i64,
            "wall": bson::DateTime::now()}
        })
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

criterion_group!(benches, codec, matching, apply);
criterion_main!(benches);
