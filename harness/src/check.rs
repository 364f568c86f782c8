//! `faultline check`: the command-line front of the checker library.
//!
//! Reads a history (JSONL, EDN, Jepsen text log or Porcupine kv log; detected from the file unless
//! `--format` is given), runs the chosen checkers, prints a human summary naming the first bad operation (or
//! the JSON result with `--json`) and returns the exit code of DESIGN §2: 0 valid, 1 invalid, 2 unknown,
//! 254 bad arguments or an unreadable history.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use faultline_checker::formats::{Format, edn_value::EdnReader};
use faultline_checker::history::{self, Conventions, History};
use faultline_checker::linear::{self, LinearOptions, ModelKind};
use faultline_checker::result::{CheckResult, compose};
use faultline_checker::{session, set, stale};
use serde_json::Value;

/// Exit code for bad arguments or unreadable input.
const BAD_ARGUMENTS: i32 = 254;

/// `--threads`.
const THREADS: crate::input::Whole = crate::input::Whole {
    what: "number of threads",
    min: 0,
    max: 1024,
    why: " (0: one per core)",
};

/// Flags of `faultline check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The history file to check.
    pub history: std::path::PathBuf,
    /// History format: jsonl, edn, jepsen-log or porcupine-kv (default: detected from the file).
    #[arg(long)]
    pub format: Option<String>,
    /// Model: cas-register, register, kv-append, set, mutex or multi-register
    /// (default: kv-append for Porcupine kv logs, cas-register otherwise).
    #[arg(long)]
    pub model: Option<String>,
    /// Initial value of the register or of each key, as JSON or EDN (`nil`, `0`, `""`); default per format.
    #[arg(long)]
    pub initial: Option<String>,
    /// Time budget for the linearizability search, e.g. `30s`, `500ms` (default: none).
    #[arg(long, allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Checkers to run, comma-separated: linearizable, stale-reads, sessions, set (default: linearizable).
    #[arg(long, value_delimiter = ',')]
    pub checker: Vec<String>,
    /// Worker threads for the linearizability search, up to 1024 (default, 0: one per core).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = THREADS.parser::<usize>())]
    pub threads: usize,
    /// Print the result as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Also write the interactive counterexample viewer (one self-contained HTML page) to this file.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<std::path::PathBuf>,
}

/// Runs `faultline check` and returns the process exit code (0 valid, 1 invalid, 2 unknown).
pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    match prepare(args) {
        Ok(plan) => execute(args, plan),
        Err(message) => {
            eprintln!("faultline check: {message}");
            Ok(BAD_ARGUMENTS)
        }
    }
}

struct Plan {
    format: Format,
    model: ModelKind,
    conventions: Conventions,
    timeout: Option<Duration>,
    checkers: Vec<String>,
    history: History,
    read_time: Duration,
}

fn prepare(args: &CheckArgs) -> Result<Plan, String> {
    let path = &args.history;
    let format = match &args.format {
        Some(name) => Format::from_name(name).ok_or_else(|| format!("unknown --format {name:?}"))?,
        None => detect(path)?,
    };
    let model = match &args.model {
        Some(name) => ModelKind::from_name(name).ok_or_else(|| format!("unknown --model {name:?}"))?,
        None if format == Format::PorcupineKv => ModelKind::KvAppend,
        None => ModelKind::CasRegister,
    };
    let mut conventions = format.conventions();
    if let Some(text) = &args.initial {
        conventions.initial = parse_initial(text)?;
    }
    let timeout = args.timeout.as_deref().map(parse_duration).transpose()?;
    let checkers = if args.checker.is_empty() {
        vec!["linearizable".to_string()]
    } else {
        args.checker.clone()
    };
    if let Some(bad) = checkers
        .iter()
        .find(|c| !matches!(c.as_str(), "linearizable" | "stale-reads" | "sessions" | "set"))
    {
        return Err(format!("unknown --checker {bad:?}"));
    }
    let started = Instant::now();
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let history = format
        .read(BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Plan {
        format,
        model,
        conventions,
        timeout,
        checkers,
        history,
        read_time: started.elapsed(),
    })
}

/// Guesses the format from the file name and its first non-blank line (read leniently: a binary file is
/// left for the format's reader to reject with a line number).
fn detect(path: &Path) -> Result<Format, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = Vec::new();
    let mut reader = BufReader::new(file.take(64 * 1024));
    while String::from_utf8_lossy(&head).trim().is_empty() {
        head.clear();
        if reader
            .read_until(b'\n', &mut head)
            .map_err(|e| format!("{}: {e}", path.display()))?
            == 0
        {
            break;
        }
    }
    Ok(Format::detect(&path.to_string_lossy(), &String::from_utf8_lossy(&head)))
}

fn parse_initial(text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .or_else(|_| EdnReader::new(text, 1).read_value())
        .map_err(|_| format!("--initial {text:?} is neither JSON nor EDN"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad --timeout {text:?} (use e.g. 30s, 500ms, 2m)");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

fn execute(args: &CheckArgs, plan: Plan) -> anyhow::Result<i32> {
    let started = Instant::now();
    let paired = match history::pair(&plan.history) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("faultline check: {}: {e}", args.history.display());
            return Ok(BAD_ARGUMENTS);
        }
    };
    let mut results = Vec::new();
    for checker in &plan.checkers {
        let result = match checker.as_str() {
            "linearizable" => {
                let mut options = LinearOptions::new(plan.model);
                options.conventions = plan.conventions.clone();
                options.timeout = plan.timeout;
                options.threads = args.threads;
                match linear::check_paired(&plan.history, &paired, &options) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("faultline check: {}: {e}", args.history.display());
                        return Ok(BAD_ARGUMENTS);
                    }
                }
            }
            "stale-reads" => stale::check(&plan.history, &paired, &plan.conventions),
            "sessions" => session::check(&plan.history, &paired),
            _ => set::check(&plan.history, &paired),
        };
        results.push(result);
    }
    let result = if results.len() == 1 {
        results.remove(0)
    } else {
        compose("composite", results)
    };
    if let Some(out) = &args.html {
        write_viewer(args, &plan, &paired, out);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_summary(args, &plan, &result, started.elapsed());
    }
    Ok(result.valid.exit_code())
}

/// Writes the `--html` viewer page; a failure is reported but does not change the verdict.
fn write_viewer(args: &CheckArgs, plan: &Plan, paired: &history::PairedHistory, out: &Path) {
    let mut options = LinearOptions::new(plan.model);
    options.conventions = plan.conventions.clone();
    options.timeout = plan.timeout;
    let title = args.history.display().to_string();
    if let Err(e) = faultline_reports::viewer::write_page(out, &title, &plan.history, paired, &options) {
        eprintln!("faultline check: --html {}: {e}", out.display());
    }
}

fn print_summary(args: &CheckArgs, plan: &Plan, result: &CheckResult, check_time: Duration) {
    println!(
        "{}: {} events, format {:?}, model {}, initial {}",
        args.history.display(),
        plan.history.len(),
        plan.format,
        plan.model.name(),
        plan.conventions.initial
    );
    let checks = if result.children.is_empty() {
        std::slice::from_ref(result)
    } else {
        &result.children[..]
    };
    for r in checks {
        let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  {}: {} ({})", r.checker, r.valid, counts.join(", "));
        if let Some(first) = r.examples.first() {
            println!(
                "    first bad operation: {} [op indices {:?}]",
                first.description, first.ops
            );
        }
        if let Some(reason) = r.details.get("unknown-reason") {
            println!("    undecided: {reason}");
        }
        if let Some(prefix) = r.details.pointer("/counterexample/prefix").and_then(Value::as_array) {
            let shown = prefix.len().saturating_sub(5);
            if !prefix.is_empty() {
                println!("    end of the longest linearizable prefix ({} ops):", prefix.len());
            }
            for step in &prefix[shown..] {
                println!(
                    "      #{} process {} {} {} -> state {}",
                    step["index"],
                    step["process"],
                    step["f"].as_str().unwrap_or("?"),
                    step["value"],
                    step["state"]
                );
            }
        }
    }
    println!(
        "verdict: {} (exit {}); read {:.1} ms, checked {:.1} ms",
        result.valid,
        result.valid.exit_code(),
        plan.read_time.as_secs_f64() * 1e3,
        check_time.as_secs_f64() * 1e3
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(path: &Path) -> CheckArgs {
        CheckArgs {
            history: path.to_path_buf(),
            format: None,
            model: None,
            initial: None,
            timeout: None,
            checker: Vec::new(),
            threads: 1,
            json: true,
            html: None,
        }
    }

    /// Writes `content` to `name` in a fresh directory and returns `prepare`'s error for it.
    fn rejection(name: &str, content: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("written");
        assert_eq!(run(&args(&path)).expect("runs"), BAD_ARGUMENTS, "{name}");
        match prepare(&args(&path)) {
            Ok(_) => panic!("{name} was accepted as a history"),
            Err(message) => message,
        }
    }

    const OP: &str = r#"{"index":0,"time":1,"type":"invoke","process":1,"f":"read","value":null}"#;

    #[test]
    fn files_that_are_not_histories_exit_254_with_the_line_named() {
        let binary = rejection("h.jsonl", b"\x7fELF\x02\x01\x01\x00\xff\xfe");
        assert!(
            binary.ends_with("line 1: byte 9 is not UTF-8 text: a binary file, not a history"),
            "{binary}"
        );
        let binary = rejection("history", b"\x00\x9f\x92\x96 garbage");
        assert!(binary.contains("line 1: byte 2 is not UTF-8 text"), "{binary}");
        let empty = rejection("h.jsonl", b"");
        assert!(
            empty.ends_with("no history events: the input is empty or blank"),
            "{empty}"
        );
        let blank = rejection("h.edn", b"\n  \n");
        assert!(
            blank.ends_with("no history events: the input is empty or blank"),
            "{blank}"
        );
        let array = rejection("h.json", format!("[{OP}]\n").as_bytes());
        assert!(
            array.ends_with("line 1: a JSON array, not JSON Lines (expected one op object per line)"),
            "{array}"
        );
        let truncated = format!("{OP}\n{OP}\n{}", &OP[..30]);
        let truncated = rejection("h.jsonl", truncated.as_bytes());
        assert!(
            truncated.ends_with("line 3: the op ends early at column 30 (truncated line?)"),
            "{truncated}"
        );
    }

    #[test]
    fn a_valid_history_is_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("h.jsonl");
        let done = OP.replace("invoke", "ok").replace("\"index\":0", "\"index\":1");
        std::fs::write(&path, format!("{OP}\n{done}\n")).expect("written");
        assert_eq!(run(&args(&path)).expect("runs"), 0);
    }
}
