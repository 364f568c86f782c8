//! Measures the checker on the external corpora and a generated one-million-operation history, and prints
//! the figures for the closing note: `cargo run -p faultline-checker --release --example measure`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faultline_checker::formats::Format;
use faultline_checker::generate::{GenSpec, register_history};
use faultline_checker::history::History;
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::Validity;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/porcupine")
}

fn read(format: Format, path: &PathBuf) -> History {
    let file = std::fs::File::open(path).expect("history file");
    format.read(std::io::BufReader::new(file)).expect("parsable")
}

fn check(h: &History, model: ModelKind, format: Format) -> Validity {
    let mut options = LinearOptions::new(model);
    options.conventions = format.conventions();
    linear::check(h, &options).expect("checkable").valid
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// `measure` runs everything; `measure write FILE` writes the generated 1M-op history as JSONL;
/// `measure check FILE [TIMEOUT_S]` reads a JSONL history and checks it (for a clean peak-memory figure).
/// `measure write FILE [OPS KEYS PROCESSES]` sets the generated history's shape (default 1M, 1000, 20).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("write"), Some(path)) => {
            let number = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
            let spec = GenSpec {
                operations: number(3, 1_000_000),
                keys: number(4, 1000),
                processes: number(5, 20),
                crash_rate: 0.01,
                read_fraction: 0.5,
                seed: 7,
            };
            let file = std::io::BufWriter::new(std::fs::File::create(path).expect("output file"));
            faultline_checker::formats::jsonl::write(&register_history(&spec), file).expect("written");
        }
        (Some("check"), Some(path)) => {
            let t = Instant::now();
            let h = read(Format::Jsonl, &PathBuf::from(path));
            let parsed = t.elapsed();
            let mut options = LinearOptions::new(ModelKind::Register);
            options.timeout = args.get(3).and_then(|a| a.parse().ok()).map(Duration::from_secs_f64);
            let v = linear::check(&h, &options).expect("checkable").valid;
            let total = t.elapsed().as_secs_f64();
            println!(
                "{path}: {v:?}; parse {:.2} s, total {total:.2} s, peak RSS {:.0} MiB",
                parsed.as_secs_f64(),
                peak_rss_mib()
            );
        }
        _ => measure_all(),
    }
}

fn measure_all() {
    let mut etcd: Vec<PathBuf> = std::fs::read_dir(testdata().join("jepsen"))
        .expect("etcd logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    etcd.sort();
    let started = Instant::now();
    let mut slowest = (0.0, String::new());
    for path in &etcd {
        let t = Instant::now();
        let h = read(Format::JepsenLog, path);
        check(&h, ModelKind::CasRegister, Format::JepsenLog);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if ms > slowest.0 {
            slowest = (
                ms,
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    println!(
        "etcd: {} logs in {:.1} ms including parsing (slowest {} {:.1} ms)",
        etcd.len(),
        started.elapsed().as_secs_f64() * 1e3,
        slowest.1,
        slowest.0
    );
    for name in ["c01-ok", "c01-bad", "c10-ok", "c10-bad"] {
        let t = Instant::now();
        let h = read(Format::PorcupineKv, &testdata().join(format!("kv/{name}.txt")));
        let v = check(&h, ModelKind::KvAppend, Format::PorcupineKv);
        println!(
            "kv {name}: {v:?} in {:.2} ms including parsing",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    for crash_rate in [0.0, 0.01] {
        let spec = GenSpec {
            keys: 1000,
            processes: 20,
            operations: 1_000_000,
            crash_rate,
            read_fraction: 0.5,
            seed: 7,
        };
        let t = Instant::now();
        let h = register_history(&spec);
        let generated = t.elapsed();
        let t = Instant::now();
        let v = check(&h, ModelKind::Register, Format::Jsonl);
        println!(
            "generated 1M ops, 1000 keys, 20 processes, crash rate {crash_rate}: {v:?} in {:.2} s (generation {:.2} s)",
            t.elapsed().as_secs_f64(),
            generated.as_secs_f64()
        );
        let mut jsonl = Vec::new();
        faultline_checker::formats::jsonl::write(&h, &mut jsonl).expect("in memory");
        let t = Instant::now();
        let h = Format::Jsonl.read(jsonl.as_slice()).expect("re-read");
        let parse = t.elapsed();
        let v = check(&h, ModelKind::Register, Format::Jsonl);
        println!(
            "  same history from JSONL ({} MB): parse {:.2} s, parse+check {:.2} s, {v:?}",
            jsonl.len() / 1_000_000,
            parse.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}
