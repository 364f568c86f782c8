//! `faultline check`: the command-line front of the checker library.
//!
//! Takes one or more inputs, each a history (JSONL, EDN, Jepsen text log or Porcupine kv log; detected from
//! the file unless `--format` is given) or a stored run directory (its `history.jsonl`, re-checked with the
//! checkers of the workload its `test.toml` names, unless `--checker` says otherwise, and its
//! `change-stream.jsonl` if it has one). Every flag is checked
//! before any input is read. One input gets a human summary naming the first bad operation; several get one
//! line each and a total, so a corpus is checked in one process. `--json` prints one JSON record per input
//! per line instead. A JSONL history of [`STREAM_ABOVE_BYTES`] or more checked for linearizability alone is
//! checked streamed (`faultline_checker::stream`): never loaded whole, same verdict. Exit code (ARCHITECTURE §2): 0 valid, 1 invalid, 2 unknown — the worst over the inputs — or
//! 254 for bad arguments or any unreadable input (each named on one line of stderr).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline::support::durations::parse_seconds;
use faultline::support::errors::BAD_ARGUMENTS;
use faultline_checker::change_stream;
use faultline_checker::formats::{Format, edn_value::EdnReader};
use faultline_checker::history::{self, Conventions, History, PairedHistory};
use faultline_checker::linear::witness::LinearWitness;
use faultline_checker::linear::{LinearOptions, ModelKind};
use faultline_checker::registry::Checker;
use faultline_checker::result::{CheckResult, Validity, compose};
use faultline_checker::{stream, summary};
use faultline_reports::RunDir;
use faultline_workloads::Workload;
use serde_json::{Value, json};

/// JSONL histories this large or larger are checked streamed when only linearizability is asked for.
pub const STREAM_ABOVE_BYTES: u64 = 64 << 20;

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
    /// Histories to check (any supported format) or stored run directories (`store/<test>/<time>`).
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
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
    /// Time budget for the linearizability search of each input, e.g. `30s`, `500ms` (default: none).
    #[arg(long, allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Checkers to run, comma-separated: linearizable, stale-reads, sessions, set, counter (default:
    /// linearizable for a history file, the workload's checkers for a run directory).
    #[arg(long, value_delimiter = ',')]
    pub checker: Vec<String>,
    /// Worker threads for the linearizability search, up to 1024 (default, 0: one per core).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = THREADS.parser::<usize>())]
    pub threads: usize,
    /// Print one JSON record per input per line instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Also write the interactive counterexample viewer (one self-contained HTML page) to this file.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<std::path::PathBuf>,
}

/// Runs `faultline check` and returns the process exit code (0 valid, 1 invalid, 2 unknown, 254 bad input).
pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    let flags = match Flags::parse(args) {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("faultline check: {message}");
            return Ok(BAD_ARGUMENTS);
        }
    };
    let mut outcomes = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        let outcome = check_input(&flags, path);
        match &outcome {
            Err(message) => eprintln!("faultline check: {message}"),
            Ok(checked) if args.json => println!("{}", json_record(path, checked)),
            Ok(checked) if args.inputs.len() == 1 => print_summary(path, checked),
            Ok(checked) => println!("{}", one_line(path, checked)),
        }
        if args.json
            && let Err(message) = &outcome
        {
            println!("{}", json!({"file": path.display().to_string(), "error": message}));
        }
        outcomes.push(outcome);
    }
    let code = exit_code(&outcomes);
    if args.inputs.len() > 1 && !args.json {
        println!("{}", total_line(&outcomes, code));
    }
    Ok(code)
}

/// The flags, parsed and checked once for every input.
struct Flags {
    format: Option<Format>,
    model: Option<ModelKind>,
    initial: Option<Value>,
    timeout: Option<Duration>,
    checkers: Option<Vec<Checker>>,
    threads: usize,
    /// Where to write the counterexample viewer (`--html`; one input only).
    html: Option<PathBuf>,
    /// Whether results are shown in full (a single input's summary, or `--json`): only then is the
    /// counterexample's prefix built.
    full_results: bool,
    /// JSONL files of this many bytes or more are checked streamed (when only linearizability is asked).
    stream_above: u64,
}

impl Flags {
    fn parse(args: &CheckArgs) -> Result<Flags, String> {
        let format = args
            .format
            .as_deref()
            .map(|name| Format::from_name(name).ok_or_else(|| format!("unknown --format {name:?}")))
            .transpose()?;
        let model = args
            .model
            .as_deref()
            .map(|name| ModelKind::from_name(name).ok_or_else(|| format!("unknown --model {name:?}")))
            .transpose()?;
        let initial = args.initial.as_deref().map(parse_initial).transpose()?;
        let timeout = args
            .timeout
            .as_deref()
            .map(|text| {
                let seconds = parse_seconds(text).map_err(|e| format!("--timeout: {e}"))?;
                Duration::try_from_secs_f64(seconds).map_err(|e| format!("--timeout: {text:?}: {e}"))
            })
            .transpose()?;
        let checkers = if args.checker.is_empty() {
            None
        } else {
            let parsed = args.checker.iter().map(|name| {
                Checker::from_name(name)
                    .ok_or_else(|| format!("unknown --checker {name:?} (known: {})", Checker::names()))
            });
            Some(parsed.collect::<Result<Vec<_>, _>>()?)
        };
        if args.html.is_some() && args.inputs.len() > 1 {
            return Err(format!(
                "--html writes one page: give one input, not {}",
                args.inputs.len()
            ));
        }
        Ok(Flags {
            format,
            model,
            initial,
            timeout,
            checkers,
            threads: args.threads,
            html: args.html.clone(),
            full_results: args.json || args.inputs.len() == 1,
            stream_above: STREAM_ABOVE_BYTES,
        })
    }
}

/// One input, checked.
struct Checked {
    /// The history's format.
    format: Format,
    /// The linearizability model.
    model: ModelKind,
    /// The conventions the history was read with.
    conventions: Conventions,
    /// The workload, for a run directory.
    workload: Option<Workload>,
    /// History events.
    events: usize,
    result: CheckResult,
    read_time: Duration,
    check_time: Duration,
    /// For a history checked streamed: the bytes its compact partitions took.
    streamed_bytes: Option<usize>,
}

/// Reads and checks one input; the error is the one line that names the input and what is wrong with it.
fn check_input(flags: &Flags, path: &Path) -> Result<Checked, String> {
    let started = Instant::now();
    let (history_path, format, workload) = if path.is_dir() {
        let (history, workload) = open_run(flags, path)?;
        (history, Format::Jsonl, workload)
    } else {
        let format = match flags.format {
            Some(format) => format,
            None => detect(path)?,
        };
        (path.to_path_buf(), format, None)
    };
    let model = match flags.model {
        Some(model) => model,
        None if format == Format::PorcupineKv => ModelKind::KvAppend,
        None => ModelKind::CasRegister,
    };
    let mut conventions = format.conventions();
    if let Some(initial) = &flags.initial {
        conventions.initial = initial.clone();
    }
    let checkers: Vec<Checker> = match (&flags.checkers, workload) {
        (Some(checkers), _) => checkers.clone(),
        (None, Some(workload)) => workload.checkers().to_vec(),
        (None, None) => vec![Checker::Linearizable],
    };
    let mut options = LinearOptions::new(model);
    options.conventions = conventions.clone();
    options.timeout = flags.timeout;
    options.threads = flags.threads;
    if streams(flags, &history_path, format, model, &checkers) {
        let streamed = check_streamed(&history_path, &options)?;
        return Ok(Checked {
            format,
            model,
            conventions,
            workload,
            events: streamed.events,
            result: combine(workload, vec![streamed.result]),
            read_time: streamed.read_time,
            check_time: streamed.check_time,
            streamed_bytes: Some(streamed.stored_bytes),
        });
    }
    let history = read_history(&history_path, format)?;
    let read_time = started.elapsed();
    let started = Instant::now();
    let paired = history::pair(&history).map_err(|e| format!("{}: {e}", history_path.display()))?;
    let mut results = Vec::with_capacity(checkers.len());
    for checker in checkers {
        let result = checker
            .run(&history, &paired, &options)
            .map_err(|e| format!("{}: {e}", history_path.display()))?;
        results.push(result);
    }
    if path.is_dir()
        && flags.checkers.is_none()
        && let Some(stream) = stored_change_stream(path, &history, &paired)?
    {
        results.push(stream);
    }
    let mut result = combine(workload, results);
    if flags.full_results {
        result.expand(&history, &paired);
    }
    if let Some(out) = &flags.html {
        write_viewer(out, &history_path, &history, &paired, &options, &result);
    }
    Ok(Checked {
        format,
        model,
        conventions,
        workload,
        events: history.len(),
        result,
        read_time,
        check_time: started.elapsed(),
        streamed_bytes: None,
    })
}

/// The checkers' results as one: the workload's composite, or the single checker's own result.
fn combine(workload: Option<Workload>, mut results: Vec<CheckResult>) -> CheckResult {
    match workload {
        Some(workload) => compose(workload.name(), results),
        None if results.len() == 1 => results.remove(0),
        None => compose("composite", results),
    }
}

/// Whether an input is checked streamed: a large JSONL file, linearizability alone, a per-key model and no
/// viewer to draw (which needs the whole history).
fn streams(flags: &Flags, path: &Path, format: Format, model: ModelKind, checkers: &[Checker]) -> bool {
    format == Format::Jsonl
        && checkers == [Checker::Linearizable]
        && flags.html.is_none()
        && stream::supports(model)
        && std::fs::metadata(path).is_ok_and(|m| m.len() >= flags.stream_above)
}

fn check_streamed(path: &Path, options: &LinearOptions) -> Result<stream::Streamed, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    stream::check_jsonl(BufReader::with_capacity(1 << 20, file), options)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A stored run: its history file and the workload its spec names (needed unless `--checker` is given).
fn open_run(flags: &Flags, dir: &Path) -> Result<(PathBuf, Option<Workload>), String> {
    let run = RunDir::new(dir);
    if !RunDir::is_run(dir) {
        return Err(format!(
            "{}: a directory, but not a run directory (no {})",
            dir.display(),
            faultline_reports::run_dir::names::HISTORY
        ));
    }
    if let Some(format) = flags.format
        && format != Format::Jsonl
    {
        return Err(format!(
            "{}: a run directory's history is JSONL, not --format {format:?}",
            dir.display()
        ));
    }
    let workload = match run.read_meta() {
        Ok(meta) => match meta.workload {
            Some(name) => Some(
                Workload::from_name(&name)
                    .ok_or_else(|| format!("{}: unknown workload {name:?}", run.spec().display()))?,
            ),
            None => None,
        },
        Err(e) => {
            if flags.checkers.is_none() {
                return Err(format!("{e} (give --checker to check the history anyway)"));
            }
            None
        }
    };
    if workload.is_none() && flags.checkers.is_none() {
        return Err(format!(
            "{}: names no workload (give --checker to check the history anyway)",
            run.spec().display()
        ));
    }
    Ok((run.history(), workload))
}

/// A stored run's change stream (`faultline test --change-stream`), checked against its history; `None` when
/// the run watched none.
fn stored_change_stream(dir: &Path, history: &History, paired: &PairedHistory) -> Result<Option<CheckResult>, String> {
    let run = RunDir::new(dir);
    let path = run.file(faultline_reports::run_dir::names::CHANGE_STREAM);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let records = change_stream::parse(&text).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The adds were acknowledged with the spec's write concern (`majority` unless it says otherwise).
    let majority = std::fs::read_to_string(run.spec())
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|spec| spec.get("write_concern")?.as_str().map(|w| w == "majority"))
        .unwrap_or(true);
    Ok(Some(change_stream::check(history, paired, &records, majority)))
}

fn read_history(path: &Path, format: Format) -> Result<History, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    format
        .read(BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))
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

/// The summary of a single input: what was read, a line per checker, the verdict.
fn print_summary(path: &Path, checked: &Checked) {
    let workload = checked
        .workload
        .map_or(String::new(), |w| format!(", workload {}", w.name()));
    println!(
        "{}: {} events, format {:?}{workload}, model {}, initial {}",
        path.display(),
        checked.events,
        checked.format,
        checked.model.name(),
        checked.conventions.initial
    );
    for line in summary::lines(&checked.result) {
        println!("{line}");
    }
    let valid = checked.result.valid;
    let streamed = checked.streamed_bytes.map_or(String::new(), |bytes| {
        format!(
            " (streamed: {:.1} MiB of compact partitions)",
            bytes as f64 / f64::from(1 << 20)
        )
    });
    println!(
        "verdict: {valid} (exit {}); read {:.1} ms{streamed}, checked {:.1} ms",
        valid.exit_code(),
        checked.read_time.as_secs_f64() * 1e3,
        checked.check_time.as_secs_f64() * 1e3
    );
}

/// One input of many: `PATH: VERDICT [anomalies] (N events, checkers; T ms)`.
fn one_line(path: &Path, checked: &Checked) -> String {
    let result = &checked.result;
    let anomalies = if result.anomalies.is_empty() {
        String::new()
    } else {
        format!(" [{}]", result.anomalies.join(", "))
    };
    let checkers: Vec<&str> = if result.children.is_empty() {
        vec![result.checker.as_str()]
    } else {
        result.children.iter().map(|c| c.checker.as_str()).collect()
    };
    format!(
        "{}: {}{anomalies} ({} events, {}; {:.1} ms)",
        path.display(),
        result.valid,
        checked.events,
        checkers.join("+"),
        (checked.read_time + checked.check_time).as_secs_f64() * 1e3
    )
}

/// One input's JSON record: the file, its verdict and the full result.
fn json_record(path: &Path, checked: &Checked) -> Value {
    json!({
        "file": path.display().to_string(),
        "valid": checked.result.valid,
        "events": checked.events,
        "result": checked.result,
    })
}

/// The worst verdict's exit code, or 254 when any input could not be checked.
fn exit_code(outcomes: &[Result<Checked, String>]) -> i32 {
    if outcomes.iter().any(Result::is_err) {
        return BAD_ARGUMENTS;
    }
    outcomes
        .iter()
        .flatten()
        .map(|c| c.result.valid)
        .fold(Validity::True, Validity::worst)
        .exit_code()
}

/// `total: N inputs: a valid, b INVALID, c unknown, d unreadable (exit C)`.
fn total_line(outcomes: &[Result<Checked, String>], code: i32) -> String {
    let count = |v: Validity| outcomes.iter().flatten().filter(|c| c.result.valid == v).count();
    let unreadable = outcomes.iter().filter(|o| o.is_err()).count();
    format!(
        "total: {} inputs: {} valid, {} INVALID, {} unknown, {unreadable} unreadable (exit {code})",
        outcomes.len(),
        count(Validity::True),
        count(Validity::False),
        count(Validity::Unknown)
    )
}

/// Writes the `--html` viewer page from the check's linearizability witness (searching only when no
/// linearizability checker ran); a failure is reported but does not change the verdict.
fn write_viewer(
    out: &Path,
    history_path: &Path,
    history: &History,
    paired: &history::PairedHistory,
    options: &LinearOptions,
    result: &CheckResult,
) {
    let title = history_path.display().to_string();
    let searched;
    let witness = match result.linear_witness() {
        Some(witness) => witness,
        None => match LinearWitness::search(history, paired, options) {
            Ok(witness) => {
                searched = witness;
                &searched
            }
            Err(e) => {
                eprintln!("faultline check: --html {}: {e}", out.display());
                return;
            }
        },
    };
    if let Err(e) = faultline_reports::viewer::write_page(out, &title, history, paired, witness, options.timeout) {
        eprintln!("faultline check: --html {}: {e}", out.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(paths: &[&Path]) -> CheckArgs {
        CheckArgs {
            inputs: paths.iter().map(|p| p.to_path_buf()).collect(),
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

    /// [`valid_history`] with one read of a value nobody wrote: not linearizable.
    fn impossible_history() -> String {
        valid_history().replace(
            r#""type":"ok","process":1,"f":"read","value":null"#,
            r#""type":"ok","process":1,"f":"read","value":5"#,
        )
    }

    fn flags() -> Flags {
        Flags::parse(&args(&[])).expect("no flags")
    }

    /// Writes `content` to `name` in a fresh directory and returns `check_input`'s error for it.
    fn rejection(name: &str, content: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("written");
        assert_eq!(run(&args(&[&path])).expect("runs"), BAD_ARGUMENTS, "{name}");
        match check_input(&flags(), &path) {
            Ok(_) => panic!("{name} was accepted as a history"),
            Err(message) => message,
        }
    }

    const OP: &str = r#"{"index":0,"time":1,"type":"invoke","process":1,"f":"read","value":null}"#;

    fn valid_history() -> String {
        let done = OP.replace("invoke", "ok").replace("\"index\":0", "\"index\":1");
        format!("{OP}\n{done}\n")
    }

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
        std::fs::write(&path, valid_history()).expect("written");
        assert_eq!(run(&args(&[&path])).expect("runs"), 0);
    }

    #[test]
    fn bad_flags_are_refused_before_any_input_is_read() {
        let mut bad = args(&[Path::new("/no/such/file")]);
        bad.checker = vec!["linearizable".into(), "convergence".into()];
        let message = Flags::parse(&bad).err().expect("refused");
        assert!(
            message.contains("\"convergence\"") && message.contains("counter"),
            "{message}"
        );
        bad.checker.clear();
        bad.timeout = Some("-1s".into());
        let message = Flags::parse(&bad).err().expect("refused");
        assert!(message.starts_with("--timeout: \"-1s\""), "{message}");
    }

    #[test]
    fn a_run_directory_is_checked_with_its_workloads_checkers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = RunDir::new(dir.path());
        let adds = r#"{"time":1,"type":"invoke","process":0,"f":"add","value":2}
{"time":2,"type":"ok","process":0,"f":"add","value":2}
{"time":3,"type":"invoke","process":0,"f":"read","value":null}
{"time":4,"type":"ok","process":0,"f":"read","value":9}
"#;
        std::fs::write(run.history(), adds).expect("written");
        let refused = check_input(&flags(), dir.path()).err().expect("no spec");
        assert!(refused.contains("--checker"), "{refused}");
        run.write_spec("name = \"c\"\nworkload = \"counter\"\n")
            .expect("written");
        let checked = check_input(&flags(), dir.path()).expect("checked");
        assert_eq!(checked.workload, Some(Workload::Counter));
        assert_eq!(checked.result.checker, "counter");
        assert_eq!(checked.result.children[0].checker, "counter");
        assert_eq!(checked.result.valid, Validity::False);
        let empty = tempfile::tempdir().expect("temp dir");
        let refused = check_input(&flags(), empty.path()).err().expect("not a run");
        assert!(refused.contains("not a run directory"), "{refused}");
    }

    #[test]
    fn a_run_directorys_change_stream_is_checked_against_its_history() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = RunDir::new(dir.path());
        let adds = r#"{"time":1,"type":"invoke","process":0,"f":"add","value":2}
{"time":2,"type":"ok","process":0,"f":"add","value":2}
{"time":3,"type":"invoke","process":0,"f":"read","value":null}
{"time":4,"type":"ok","process":0,"f":"read","value":[2]}
"#;
        std::fs::write(run.history(), adds).expect("written");
        run.write_spec("name = \"s\"\nworkload = \"set\"\nchange_stream = true\n")
            .expect("written");
        let stream = run.file(faultline_reports::run_dir::names::CHANGE_STREAM);
        let event = "{\"element\":2,\"clusterTime\":[9,1]}\n";
        std::fs::write(&stream, format!("{{\"open\":\"start\"}}\n{event}")).expect("written");
        let checked = check_input(&flags(), dir.path()).expect("checked");
        assert_eq!(checked.result.valid, Validity::True, "{:?}", checked.result);
        assert_eq!(checked.result.children[1].checker, "change-stream");
        std::fs::write(&stream, format!("{event}{event}")).expect("written");
        let checked = check_input(&flags(), dir.path()).expect("checked");
        assert_eq!(checked.result.valid, Validity::False);
        assert!(
            checked.result.children[1]
                .anomalies
                .contains(&"change-stream-repeat".to_string()),
            "{:?}",
            checked.result
        );
        std::fs::write(&stream, "{\"element\":2}\n").expect("written");
        let refused = check_input(&flags(), dir.path()).err().expect("no clusterTime");
        assert!(refused.contains("line 1"), "{refused}");
    }

    #[test]
    fn the_counterexample_is_expanded_only_where_shown_and_the_viewer_takes_the_checks_witness() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, impossible_history()).expect("written");
        // One line per input (several inputs, no --json): the prefix is not built.
        let mut flags = flags();
        flags.full_results = false;
        let checked = check_input(&flags, &bad).expect("checked");
        assert_eq!(checked.result.details["counterexample"].get("prefix"), None);
        assert!(checked.result.linear_witness().is_some());
        // A single input's summary or --json: built; --html draws the same check's witness.
        flags.full_results = true;
        let out = dir.path().join("viewer.html");
        flags.html = Some(out.clone());
        let checked = check_input(&flags, &bad).expect("checked");
        assert_eq!(checked.result.details["counterexample"]["prefix"], json!([]));
        let page = std::fs::read_to_string(&out).expect("the viewer was written");
        assert!(page.contains("id=\"viewer-data\""));
    }

    #[test]
    fn large_jsonl_files_are_checked_streamed_with_the_loaded_verdict() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, valid_history()).expect("written");
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, impossible_history()).expect("written");
        let orphan = dir.path().join("orphan.jsonl");
        std::fs::write(&orphan, OP.replace("invoke", "ok") + "\n").expect("written");
        let streamed_flags = Flags {
            stream_above: 0,
            ..flags()
        };
        assert!(streams(
            &streamed_flags,
            &good,
            Format::Jsonl,
            ModelKind::CasRegister,
            &[Checker::Linearizable]
        ));
        assert!(!streams(
            &flags(),
            &good,
            Format::Jsonl,
            ModelKind::CasRegister,
            &[Checker::Linearizable]
        ));
        assert!(!streams(
            &streamed_flags,
            &good,
            Format::Jsonl,
            ModelKind::CasRegister,
            &[Checker::StaleReads]
        ));
        for path in [&good, &bad] {
            let loaded = check_input(&flags(), path).expect("checked");
            let streamed = check_input(&streamed_flags, path).expect("checked");
            assert_eq!(loaded.result.valid, streamed.result.valid, "{}", path.display());
            assert_eq!(loaded.result.examples, streamed.result.examples, "{}", path.display());
            assert_eq!(loaded.events, streamed.events);
        }
        assert_eq!(
            check_input(&streamed_flags, &bad).expect("checked").result.valid,
            Validity::False
        );
        let loaded = check_input(&flags(), &orphan).err().expect("refused");
        assert_eq!(check_input(&streamed_flags, &orphan).err().expect("refused"), loaded);
    }

    #[test]
    fn a_single_key_history_is_decided_or_unknown_within_its_timeout() {
        use faultline_checker::generate::{GenSpec, register_history};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("one-key.jsonl");
        let spec = GenSpec {
            keys: 1,
            processes: 50,
            operations: 20_000,
            crash_rate: 0.01,
            ..GenSpec::default()
        };
        let file = File::create(&path).expect("created");
        faultline_checker::formats::jsonl::write(&register_history(&spec), std::io::BufWriter::new(file))
            .expect("written");
        for stream_above in [0, STREAM_ABOVE_BYTES] {
            let flags = Flags {
                timeout: Some(Duration::from_millis(300)),
                stream_above,
                ..flags()
            };
            let checked = check_input(&flags, &path).expect("checked");
            assert!(
                checked.check_time < Duration::from_secs(5),
                "a 300 ms budget took {:?} ({})",
                checked.check_time,
                checked.result.valid
            );
            assert_ne!(checked.result.valid, Validity::False);
        }
    }

    #[test]
    fn many_inputs_give_the_worst_verdict_and_254_for_any_unreadable_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, valid_history()).expect("written");
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, impossible_history()).expect("written");
        assert_eq!(run(&args(&[&good, &good])).expect("runs"), 0);
        assert_eq!(run(&args(&[&good, &bad])).expect("runs"), 1);
        let missing = dir.path().join("missing.jsonl");
        assert_eq!(run(&args(&[&good, &missing, &bad])).expect("runs"), BAD_ARGUMENTS);
        let outcomes = vec![check_input(&flags(), &good), check_input(&flags(), &missing)];
        assert_eq!(
            total_line(&outcomes, exit_code(&outcomes)),
            "total: 2 inputs: 1 valid, 0 INVALID, 0 unknown, 1 unreadable (exit 254)"
        );
    }
}
