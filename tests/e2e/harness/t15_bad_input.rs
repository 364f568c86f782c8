//! Bad input to `faultline test`, `cluster`, `bench` and `gate` (flags, spec files, suites): each is refused
//! with exit code 254 and one line on stderr that names the bad value and what is accepted, before anything
//! starts — no output, no store or data directory, no member process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::cluster::processes_mentioning;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bin;

/// A refusal takes milliseconds; a command still running after this started something.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(15);

/// One bad invocation: the arguments, and text the error line must contain (the bad value, then a word of
/// the accepted values).
struct Case {
    args: Vec<String>,
    shows: Vec<&'static str>,
}

fn case(args: &[&str], shows: &[&'static str]) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        shows: shows.to_vec(),
    }
}

/// A `faultline test --config <file>` case, the file holding `toml`.
fn spec_case(inputs: &Path, name: &str, toml: &str, shows: &[&'static str]) -> anyhow::Result<Case> {
    let path = inputs.join(format!("spec-{name}.toml"));
    std::fs::write(&path, toml)?;
    Ok(case(&["test", "--config", &path.to_string_lossy()], shows))
}

/// A `faultline gate <file>` case, the suite file holding `toml`.
fn suite_case(inputs: &Path, name: &str, toml: &str, shows: &[&'static str]) -> anyhow::Result<Case> {
    let path = inputs.join(format!("suite-{name}.toml"));
    std::fs::write(&path, toml)?;
    Ok(case(&["gate", &path.to_string_lossy()], shows))
}

const GOOD_SCENARIO: &str = r#"
name = "bad-input"
[defaults]
nodes = 1
time_limit = 2
nemesis = ["none"]
[[scenario]]
name = "fine"
expect = "valid"
seeds = [1]
"#;

fn cases(inputs: &Path) -> anyhow::Result<Vec<Case>> {
    let mut all = vec![
        // faultline test: flags.
        case(&["test", "--write-concern", "banana"], &["\"banana\"", "majority"]),
        case(&["test", "--write-concern", "0"], &["\"0\"", "majority"]),
        case(&["test", "--write-concern", "4"], &["\"4\"", "from 1 to 3"]),
        case(&["test", "--write-concern", "-1"], &["\"-1\"", "majority"]),
        case(&["test", "--read-concern", "x"], &["\"x\"", "linearizable"]),
        case(
            &["test", "--read-preference", "secondary-preferred"],
            &["secondary-preferred", "secondaryPreferred"],
        ),
        case(&["test", "--client-mode", "x"], &["\"x\"", "replica-set"]),
        case(&["test", "--workload", "bank"], &["\"bank\"", "register"]),
        case(
            &["test", "--change-stream"],
            &["change_stream", "set workload", "\"register\""],
        ),
        case(&["test", "--nemesis", "kill,flood"], &["\"flood\"", "partition"]),
        case(&["test", "--nemesis-target", "n9"], &["\"n9\"", "n1 to n3"]),
        case(&["test", "--nemesis-target", "n0"], &["\"n0\"", "primary"]),
        case(
            &["test", "--nodes", "2", "--arbiters", "1", "--nemesis-target", "n4"],
            &["\"n4\"", "n1 to n3"],
        ),
        // faultline test --shards: a sharded cluster's flags.
        case(&["test", "--shards", "9"], &["9", "0 to 8"]),
        case(&["test", "--nemesis", "move-chunk"], &["\"move-chunk\"", "shards"]),
        case(
            &["test", "--shards", "2", "--shard-key", "banana"],
            &["\"banana\"", "hashed or range"],
        ),
        case(
            &["test", "--shards", "2", "--nemesis-target", "n1"],
            &["\"n1\"", "shard-primary"],
        ),
        case(&["test", "--shards", "2", "--config-servers", "2"], &["2", "1 or 3"]),
        case(&["test", "--shards", "2", "--mongos", "0"], &["0", "1 to 8"]),
        case(&["test", "--nemesis", "balancer"], &["\"balancer\"", "shards"]),
        case(
            &["test", "--shards", "2", "--leave-running"],
            &["--leave-running", "--shards"],
        ),
        case(
            &["test", "--shards", "2", "--client-mode", "direct"],
            &["\"direct\"", "routers"],
        ),
        case(&["test", "--nemesis-interval", "0"], &["\"0\"", "ms, s or m"]),
        case(&["test", "--time-limit", "-5s"], &["\"-5s\"", "ms, s or m"]),
        case(&["test", "--time-limit", "99999999999"], &["99999999999", "30 days"]),
        case(&["test", "--concurrency", "0"], &["0 is not", "1 to 1000"]),
        case(&["test", "--concurrency", "-3"], &["-3", "1 to 1000"]),
        case(&["test", "--rate", "-5"], &["-5 is not a valid rate", "0 (unpaced)"]),
        case(&["test", "--rate", "nan"], &["nan", "0 (unpaced)"]),
        case(&["test", "--nodes", "-1"], &["-1", "1 to 7"]),
        case(&["test", "--nodes", "8"], &["8", "1 to 7"]),
        case(&["test", "--arbiters", "-1"], &["-1", "0 to 6"]),
        case(
            &["test", "--nodes", "5", "--arbiters", "3"],
            &["5 nodes and 3 arbiters", "at most 7"],
        ),
        case(&["test", "--seed", "-1"], &["-1", "9223372036854775807"]),
        case(
            &["test", "--seed", "18446744073709551615"],
            &["18446744073709551615", "9223372036854775807"],
        ),
        case(
            &["test", "--secondary-delay-secs", "99999999"],
            &["99999999", "31622400"],
        ),
        case(&["test", "--secondary-delay-secs", "-1"], &["-1", "31622400"]),
        case(
            &["test", "--nodes", "1", "--secondary-delay-secs", "5"],
            &["secondary_delay_secs 5", "at least 2"],
        ),
        case(&["test", "--name", "../x"], &["\"../x\"", "'/'"]),
        case(
            &["test", "--config", "no-such-spec.toml"],
            &["no-such-spec.toml", "cannot read"],
        ),
        // faultline test: the same values in a spec file.
        spec_case(inputs, "w", "write_concern = \"banana\"\n", &["\"banana\"", "majority"])?,
        spec_case(inputs, "rc", "read_concern = \"x\"\n", &["\"x\"", "snapshot"])?,
        spec_case(
            inputs,
            "cs",
            "workload = \"counter\"\nchange_stream = true\n",
            &["change_stream", "\"counter\""],
        )?,
        spec_case(inputs, "nem", "nemesis = [\"flood\"]\n", &["\"flood\"", "partition"])?,
        spec_case(inputs, "target", "nemesis_target = \"n9\"\n", &["\"n9\"", "n1 to n3"])?,
        spec_case(inputs, "neg", "# spec\nnodes = -5\n", &["-5", "whole number", "line 2"])?,
        spec_case(inputs, "many", "nodes = 8\n", &["8", "1 to 7"])?,
        spec_case(inputs, "rate", "rate = -5.0\n", &["-5.0", "0 (unpaced)"])?,
        spec_case(inputs, "huge", "time_limit = 1e300\n", &["1e300", "30 days"])?,
        spec_case(inputs, "nan", "time_limit = nan\n", &["NaN", "30 days"])?,
        spec_case(inputs, "op", "op_timeout = 0\n", &["op_timeout", "positive"])?,
        spec_case(inputs, "check", "check_timeout = -1\n", &["-1", "check_timeout"])?,
        spec_case(
            inputs,
            "recovery",
            "recovery_timeout = inf\n",
            &["inf", "recovery_timeout"],
        )?,
        spec_case(inputs, "keys", "keys = 100000\n", &["100000", "1 to 10000"])?,
        spec_case(inputs, "opk", "ops_per_key = 0\n", &["0", "1 or more"])?,
        spec_case(inputs, "conc", "concurrency = 5000\n", &["5000", "1 to 1000"])?,
        spec_case(
            inputs,
            "delay",
            "secondary_delay_secs = 99999999999\n",
            &["99999999999", "31622400"],
        )?,
        spec_case(inputs, "param", "set_parameters = [\"x\"]\n", &["\"x\"", "NAME=VALUE"])?,
        spec_case(inputs, "bogus", "bogus = 1\n", &["bogus", "workload"])?,
        spec_case(inputs, "seed", "seed = -1\n", &["-1", "whole number"])?,
        spec_case(inputs, "mode", "client_mode = \"x\"\n", &["\"x\"", "direct"])?,
        spec_case(inputs, "name", "name = \".hidden\"\n", &["\".hidden\"", "leading '.'"])?,
        // faultline cluster.
        case(&["cluster", "--base-port", "65534"], &["65534", "at most 65533"]),
        case(
            &["cluster", "--base-port", "65535", "--nodes", "1", "--arbiters", "1"],
            &["65535", "at most 65534"],
        ),
        case(
            &["cluster", "--base-port", "0"],
            &["0 is not a valid port", "1 to 65535"],
        ),
        case(&["cluster", "--base-port", "70000"], &["70000", "1 to 65535"]),
        case(&["cluster", "--base-port", "-1"], &["-1", "1 to 65535"]),
        case(&["cluster", "--nodes", "0"], &["0", "1 to 7"]),
        case(&["cluster", "--nodes", "-1"], &["-1", "1 to 7"]),
        case(&["cluster", "--nodes", "8"], &["8", "1 to 7"]),
        case(&["cluster", "--arbiters", "-2"], &["-2", "0 to 6"]),
        case(
            &["cluster", "--nodes", "6", "--arbiters", "2"],
            &["--nodes 6 with --arbiters 2", "at most 7"],
        ),
        case(&["cluster", "--replSet", ""], &["\"\"", "non-empty"]),
        case(&["cluster", "--replSet", "a/b"], &["\"a/b\"", "without '/'"]),
        case(&["cluster", "--wait-secs", "0"], &["0", "1 to 2592000"]),
        case(&["cluster", "--wait-secs", "-1"], &["-1", "1 to 2592000"]),
        case(
            &["cluster", "--wait-secs", "99999999999"],
            &["99999999999", "1 to 2592000"],
        ),
        // faultline bench.
        case(
            &["bench", "replication-lag", "--rate", "-5"],
            &["-5", "0.001 to 1000000"],
        ),
        case(
            &["bench", "replication-lag", "--rate", "0"],
            &["0 is not", "0.001 to 1000000"],
        ),
        case(&["bench", "replication-lag", "--nodes", "1"], &["1 is not", "2 to 7"]),
        case(
            &["bench", "replication-lag", "--client", "banana"],
            &["banana", "driver", "wire"],
        ),
        case(
            &["bench", "replication-lag", "--client", "wire", "--nemesis", "kill"],
            &["--client wire", "--nemesis"],
        ),
        case(
            &["bench", "replication-lag", "--write-concern", "banana"],
            &["\"banana\"", "majority"],
        ),
        case(
            &["bench", "replication-lag", "--write-concern", "4"],
            &["\"4\"", "0 to 3"],
        ),
        case(
            &["bench", "replication-lag", "--duration", "0"],
            &["\"0\"", "ms, s or m"],
        ),
        case(
            &["bench", "replication-lag", "--duration", "99999999999"],
            &["99999999999", "30 days"],
        ),
        case(
            &["bench", "replication-lag", "--rate", "1000000", "--duration", "60s"],
            &["60000000", "at most 50000000"],
        ),
        case(
            &["bench", "replication-lag", "--nemesis", "flood"],
            &["\"flood\"", "partition"],
        ),
        case(
            &["bench", "replication-lag", "--nemesis-interval", "-1s"],
            &["\"-1s\"", "ms, s or m"],
        ),
        case(
            &["bench", "replication-lag", "--election-timeout-ms", "0"],
            &["0", "1 to 600000"],
        ),
        case(&["bench", "replication-lag", "--seed", "-1"], &["-1", "0 or more"]),
        case(&["bench", "failover", "--nodes", "2"], &["2", "3 to 7"]),
        case(&["bench", "failover", "--trials", "0"], &["0", "1 to 10000"]),
        case(&["bench", "failover", "--trials", "-1"], &["-1", "1 to 10000"]),
        case(&["bench", "failover", "--fault", "flood"], &["'flood'", "partition"]),
        case(&["bench", "failover", "--heartbeat-ms", "-1"], &["-1", "1 to 600000"]),
        case(
            &["bench", "failover", "--election-timeout-ms", "99999999999"],
            &["99999999999", "1 to 600000"],
        ),
        case(&["bench", "failover", "--trial-timeout", "0"], &["\"0\"", "ms, s or m"]),
        case(&["bench", "throughput", "--nodes", "0,3"], &["0", "1 to 7"]),
        case(&["bench", "throughput", "--nodes", "8"], &["8", "1 to 7"]),
        case(&["bench", "throughput", "--clients", "5000"], &["5000", "1 to 4096"]),
        case(&["bench", "throughput", "--clients", "-1"], &["-1", "1 to 4096"]),
        case(
            &["bench", "throughput", "--write-concern", "banana"],
            &["\"banana\"", "majority"],
        ),
        case(&["bench", "throughput", "--write-concern", "3"], &["\"3\"", "0 to 1"]),
        case(
            &["bench", "throughput", "--client", "banana"],
            &["banana", "driver", "wire"],
        ),
        case(
            &["bench", "throughput", "--duration", "-1s"],
            &["\"-1s\"", "ms, s or m"],
        ),
        // faultline check (negative numbers).
        case(&["check", "h.jsonl", "--threads", "-1"], &["-1", "0 to 1024"]),
        case(
            &["check", "h.jsonl", "--format", "jsonl", "--timeout", "-1s"],
            &["\"-1s\"", "500ms"],
        ),
        // faultline gate: the whole suite is checked before its first (good) scenario runs.
        case(&["gate", "no-such-suite"], &["no-such-suite", "ci"]),
        case(&["gate", "ci", "--only", "nope"], &["\"nope\"", "have:"]),
    ];
    let bad_scenario =
        |extra: &str| format!("{GOOD_SCENARIO}[[scenario]]\nname = \"bad\"\nexpect = \"valid\"\n{extra}");
    all.extend([
        suite_case(
            inputs,
            "huge",
            &bad_scenario("seeds = [2]\ntimeout = 1e300\n"),
            &["1e300", "30 days"],
        )?,
        suite_case(
            inputs,
            "negative",
            &bad_scenario("seeds = [2]\ntimeout = -1\n"),
            &["-1", "30 days"],
        )?,
        suite_case(
            inputs,
            "text",
            &bad_scenario("seeds = [2]\ntimeout = \"soon\"\n"),
            &["\"soon\"", "line 15"],
        )?,
        suite_case(
            inputs,
            "seeds",
            &bad_scenario("seeds = [-2]\n"),
            &["-2", "whole number"],
        )?,
        suite_case(
            inputs,
            "concern",
            &bad_scenario("seeds = [2]\n[scenario.test]\nwrite_concern = \"banana\"\n"),
            &["\"banana\"", "majority"],
        )?,
        suite_case(
            inputs,
            "target",
            &bad_scenario("seeds = [2]\n[scenario.test]\nnemesis_target = \"n9\"\n"),
            &["\"n9\"", "n1"],
        )?,
    ]);
    Ok(all)
}

/// Runs one case in an empty directory; returns what is wrong with how it was refused, if anything.
fn refusal_problem(case: &Case) -> anyhow::Result<Option<String>> {
    let work = tempfile::Builder::new().prefix("faultline-bad-input-").tempdir()?;
    let out = PathBuf::from(format!("{}.out", work.path().display()));
    let err = PathBuf::from(format!("{}.err", work.path().display()));
    let mut child = Command::new(bin())
        .args(&case.args)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let code = wait_or_stop(&mut child)?;
    let stdout = std::fs::read_to_string(&out)?;
    let stderr = std::fs::read_to_string(&err)?;
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&err);
    let mut problems = Vec::new();
    match code {
        Some(254) => {}
        Some(code) => problems.push(format!("exit {code}, not 254")),
        None => problems.push(format!(
            "still running after {REFUSAL_DEADLINE:?}: it started something"
        )),
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 {
        problems.push(format!("{} lines on stderr, not 1", lines.len()));
    }
    for shown in &case.shows {
        if !stderr.contains(shown) {
            problems.push(format!("stderr does not show {shown:?}"));
        }
    }
    if !stdout.is_empty() {
        problems.push("it printed to stdout (it started)".into());
    }
    let left: Vec<String> = std::fs::read_dir(work.path())?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !left.is_empty() {
        problems.push(format!("it created {left:?}"));
    }
    let work_dir = work.path().to_string_lossy().into_owned();
    let members = processes_mentioning(&work_dir);
    if !members.is_empty() {
        problems.push(format!("processes {members:?} run in its directory"));
    }
    Ok((!problems.is_empty()).then(|| format!("{}\n    stderr: {}", problems.join("; "), stderr.trim_end())))
}

/// Polls the process until it exits; past [`REFUSAL_DEADLINE`] it is asked to stop (SIGTERM: a harness stops its
/// members) and `None` is returned.
fn wait_or_stop(child: &mut Child) -> anyhow::Result<Option<i32>> {
    let deadline = Instant::now() + REFUSAL_DEADLINE;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status.code().unwrap_or(-1)));
        }
        if Instant::now() >= deadline {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_bad_input_is_refused_with_one_line_and_254_before_anything_starts() -> anyhow::Result<()> {
    let inputs = tempfile::tempdir()?;
    let cases = cases(inputs.path())?;
    let mut failures = Vec::new();
    for case in &cases {
        if let Some(problem) = refusal_problem(case)? {
            failures.push(format!("faultline {}: {problem}", case.args.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused properly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}
