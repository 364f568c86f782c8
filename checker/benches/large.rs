//! Criterion benchmarks of large histories (issue 17): a streamed check of one million generated register
//! operations over 1,000 keys (valid, and with a stale read planted in a random key), and a single-key
//! history of 100,000 operations by 50 processes under a 10 s time budget (decided, or `unknown` when the
//! time or the memory budget runs out). The full-size figures (10 M operations) come from
//! `bench/large-histories.sh`, which times the `faultline` binary itself.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use faultline_checker::formats::jsonl;
use faultline_checker::generate::{GenSpec, StaleReadPlanter, register_events, register_history};
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::stream;

fn spec(keys: u64, operations: u64) -> GenSpec {
    GenSpec {
        keys,
        processes: 50,
        operations,
        crash_rate: 0.01,
        read_fraction: 0.5,
        seed: 17,
    }
}

/// The spec's history as JSONL, with a planted stale read when `planted`.
fn jsonl_text(spec: &GenSpec, planted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let events = register_events(spec);
    let fresh = events.fresh_process();
    let ops: Box<dyn Iterator<Item = _>> = if planted {
        Box::new(StaleReadPlanter::new(events, fresh, spec.seed))
    } else {
        Box::new(events)
    };
    for op in ops {
        jsonl::write_op(&op, &mut out).expect("in memory");
    }
    out
}

fn streamed(c: &mut Criterion) {
    let mut group = c.benchmark_group("large");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    let options = LinearOptions::new(ModelKind::CasRegister);
    for planted in [false, true] {
        let text = jsonl_text(&spec(1000, 1_000_000), planted);
        let name = format!("stream-1m-ops-1k-keys-{}", if planted { "bad" } else { "ok" });
        group.bench_function(name, |b| {
            b.iter(|| {
                stream::check_jsonl(text.as_slice(), &options)
                    .map(|s| s.result.valid)
                    .ok()
            })
        });
    }
    group.finish();
}

fn single_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("large");
    group.sample_size(10).measurement_time(Duration::from_secs(60));
    let history = register_history(&spec(1, 100_000));
    let mut options = LinearOptions::new(ModelKind::CasRegister);
    options.timeout = Some(Duration::from_secs(10));
    if let Ok(result) = linear::check(&history, &options) {
        eprintln!(
            "single key, 100,000 operations, 50 processes: {} {}",
            result.valid, result.details
        );
    }
    group.bench_function("single-key-100k-ops-50-processes-timeout-10s", |b| {
        b.iter(|| linear::check(&history, &options).map(|r| r.valid).ok())
    });
    group.finish();
}

criterion_group!(benches, streamed, single_key);
criterion_main!(benches);
