//! The Faultline half of `bench/porcupine-side-by-side.sh`: times the in-process linearizability check of
//! each history in a list, and writes the generated 50-client key-value histories the comparison adds.
//!
//! - `side_by_side generate DIR`: writes generated Porcupine kv logs (50 clients, 10 keys; valid ones and
//!   ones with a planted stale get) into DIR and prints their list rows (`path format model initial`).
//! - `side_by_side time LIST`: for each row of LIST (the `expected.tsv` layout; paths relative to the
//!   list's directory unless absolute) prints `path  verdict  milliseconds`, the fastest of repeated runs
//!   of `linear::check` (reading and parsing the file excluded, as on Porcupine's side). The minimum is
//!   the figure least disturbed by other load on the machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_checker::formats::{Format, porcupine_kv};
use faultline_checker::generate::{KvSpec, kv_history};
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::Validity;
use serde_json::Value;

/// Runs of one history continue until this much time has been spent on it.
const MIN_TOTAL: Duration = Duration::from_millis(300);

fn initial(text: &str) -> Value {
    match text {
        "nil" => Value::Null,
        "\"\"" => Value::String(String::new()),
        other => serde_json::from_str(other).unwrap_or_else(|_| Value::String(other.to_string())),
    }
}

fn generate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for seed in 1..=4u64 {
        for anomaly in [false, true] {
            // The default shape (50 clients, 10 keys, 2,000 operations), with fewer crashed appends.
            let spec = KvSpec {
                crash_rate: 0.005,
                anomaly,
                seed,
                ..KvSpec::default()
            };
            let generated = kv_history(&spec);
            let name = format!("gen-c50-{}-{seed}.txt", if anomaly { "bad" } else { "ok" });
            let path = dir.join(name);
            porcupine_kv::write(
                &generated.history,
                std::io::BufWriter::new(std::fs::File::create(&path)?),
            )?;
            let expected = generated.anomaly_key.is_none();
            println!("{}\tporcupine-kv\tkv-append\t\"\"\t{expected}", path.display());
        }
    }
    Ok(())
}

fn time(list: &Path) -> Result<(), String> {
    let base = list.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let table = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    for row in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [path, format, model, init, ..] = cols[..] else {
            return Err(format!("bad row {row:?}"));
        };
        let format = Format::from_name(format).ok_or(format!("format {format}"))?;
        let model = ModelKind::from_name(model).ok_or(format!("model {model}"))?;
        let mut options = LinearOptions::new(model);
        options.conventions = format.conventions();
        options.conventions.initial = initial(init);
        let file = std::fs::File::open(base.join(path)).map_err(|e| format!("{path}: {e}"))?;
        let history = format
            .read(std::io::BufReader::new(file))
            .map_err(|e| format!("{path}: {e}"))?;
        let started = Instant::now();
        let mut fastest: Option<Duration> = None;
        let mut verdict = Validity::Unknown;
        while fastest.is_none() || started.elapsed() < MIN_TOTAL {
            let run = Instant::now();
            verdict = linear::check(&history, &options)
                .map_err(|e| format!("{path}: {e}"))?
                .valid;
            let took = run.elapsed();
            fastest = Some(fastest.map_or(took, |f| f.min(took)));
        }
        let ms = fastest.unwrap_or_default().as_secs_f64() * 1000.0;
        let verdict = match verdict {
            Validity::True => "true",
            Validity::False => "false",
            Validity::Unknown => "unknown",
        };
        println!("{path}\t{verdict}\t{ms:.3}");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["generate", dir] => generate(Path::new(dir)).map_err(|e| e.to_string()),
        ["time", list] => time(Path::new(list)),
        _ => Err("usage: side_by_side generate DIR | side_by_side time LIST".to_string()),
    };
    if let Err(message) = outcome {
        eprintln!("side_by_side: {message}");
        std::process::exit(2);
    }
}
