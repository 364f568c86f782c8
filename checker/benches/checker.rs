//! Criterion benchmarks of the linearizability checker: the external corpora (etcd logs, kv logs) and
//! generated register histories up to one million operations (1,000 keys, 20 processes, 1% crashes), and
//! generated 50-client, 10-key kv histories, valid and with a planted stale get in a random key.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use faultline_checker::formats::Format;
use faultline_checker::generate::{GenSpec, KvSpec, kv_history, register_history};
use faultline_checker::history::History;
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::Validity;

fn porcupine() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/porcupine")
}

fn read(format: Format, path: &PathBuf) -> History {
    let file = std::fs::File::open(path).expect("history file");
    format.read(std::io::BufReader::new(file)).expect("parsable")
}

fn options(model: ModelKind, format: Format) -> LinearOptions {
    let mut o = LinearOptions::new(model);
    o.conventions = format.conventions();
    o
}

fn corpora(c: &mut Criterion) {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(porcupine().join("jepsen"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    let etcd: Vec<History> = paths.iter().map(|p| read(Format::JepsenLog, p)).collect();
    let etcd_options = options(ModelKind::CasRegister, Format::JepsenLog);
    c.bench_function("etcd/all-logs", |b| {
        b.iter(|| {
            etcd.iter()
                .filter(|h| linear::check(h, &etcd_options).is_ok_and(|r| r.valid == Validity::False))
                .count()
        })
    });
    let kv_options = options(ModelKind::KvAppend, Format::PorcupineKv);
    for name in ["c01-ok", "c01-bad", "c10-ok", "c10-bad"] {
        let h = read(Format::PorcupineKv, &porcupine().join(format!("kv/{name}.txt")));
        c.bench_function(&format!("kv/{name}"), |b| {
            b.iter(|| linear::check(&h, &kv_options).map(|r| r.valid).ok())
        });
    }
}

fn generated(c: &mut Criterion) {
    let mut group = c.benchmark_group("generated");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for operations in [10_000u64, 100_000, 1_000_000] {
        let spec = GenSpec {
            keys: 1000,
            processes: 20,
            operations,
            crash_rate: 0.01,
            read_fraction: 0.5,
            seed: 7,
        };
        let h = register_history(&spec);
        let o = LinearOptions::new(ModelKind::Register);
        group.bench_function(format!("register-{operations}"), |b| {
            b.iter(|| linear::check(&h, &o).map(|r| r.valid).ok())
        });
    }
    group.finish();
}

fn generated_kv(c: &mut Criterion) {
    let mut group = c.benchmark_group("generated-kv");
    group.sample_size(10);
    let kv_options = options(ModelKind::KvAppend, Format::PorcupineKv);
    for anomaly in [false, true] {
        for seed in 1..=2u64 {
            // The default shape (50 clients, 10 keys, 2,000 operations), with fewer crashed appends.
            let spec = KvSpec {
                crash_rate: 0.005,
                anomaly,
                seed,
                ..KvSpec::default()
            };
            let h = kv_history(&spec).history;
            let name = format!("c50-{}-{seed}", if anomaly { "bad" } else { "ok" });
            group.bench_function(name, |b| {
                b.iter(|| linear::check(&h, &kv_options).map(|r| r.valid).ok())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, corpora, generated, generated_kv);
criterion_main!(benches);
