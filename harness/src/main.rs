//! The `faultline` binary: the command-line front of the harness, the checker and the bundled engine.
mod allocator;
mod bench;
mod check;
mod cluster;
mod cluster_cmd;
mod daemon;
mod gate;
mod generate_cmd;
mod input;
mod logging;
mod mongos;
mod nemesis;
mod node;
mod parent_watch;
mod proxy;
mod recorder;
mod report_cmd;
mod sharded;
mod sim_cmd;
mod test_cmd;

use clap::{Parser, Subcommand};
use faultline::support::errors::{BAD_ARGUMENTS, UsageError};

/// Jepsen-style consistency testing and benchmarking with a bundled MongoDB-compatible replica set.
#[derive(Parser, Debug)]
#[command(name = "faultline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one member of the bundled MongoDB-compatible database (mongod's flags and config keys).
    Node(NodeCommand),
    /// Run a query router of a sharded cluster (mongos' flags and config keys: --configdb, --port, ...).
    Mongos(MongosCommand),
    /// Check recorded histories (or stored run directories) for consistency anomalies.
    Check(check::CheckArgs),
    /// Re-render a stored run's plots and report.html (or every run of a store and its index.html).
    Report(report_cmd::ReportArgs),
    /// Start a local replica set (or, with --shards, a sharded cluster), print its URI, run until Ctrl-C.
    Cluster(cluster_cmd::ClusterArgs),
    /// Run a workload against a local cluster under faults, record the history and check it.
    Test(Box<test_cmd::TestArgs>),
    /// Benchmarks: replication lag, failover time, throughput against concurrency and write concern.
    Bench(bench::BenchArgs),
    /// Run a suite of scenarios with expected verdicts (a CI gate); JUnit XML and Markdown on request.
    Gate(gate::GateArgs),
    /// Write generated histories (JSONL, streamed) for trying and benchmarking the checker.
    Generate(generate_cmd::GenerateArgs),
    /// Simulate a replica set of real members in one process under seeded faults, checking safety.
    Sim(sim_cmd::SimArgs),
}

/// `faultline mongos`: the router's own flags, plus the hidden one the harness adds to the routers it starts.
#[derive(clap::Args, Debug)]
struct MongosCommand {
    #[command(flatten)]
    args: mongos::MongosArgs,
    /// Die with process PID, the harness that started this router (see [`parent_watch`]).
    #[arg(long, value_name = "PID", hide = true)]
    die_with_parent: Option<u32>,
}

/// `faultline node`: the member's own flags, plus the hidden one the harness adds to the members it starts.
#[derive(clap::Args, Debug)]
struct NodeCommand {
    #[command(flatten)]
    args: node::NodeArgs,
    /// Die with process PID, the harness that started this member (see [`parent_watch`]).
    #[arg(long, value_name = "PID", hide = true)]
    die_with_parent: Option<u32>,
}

fn main() {
    allocator::tune();
    end_quietly_when_stdout_closes();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version requests are successes.
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            std::process::exit(0);
        }
        // Anything else is a bad argument: one line, Jepsen's 254.
        Err(err) => {
            eprintln!("faultline: {}", one_line(&err));
            std::process::exit(BAD_ARGUMENTS);
        }
    };
    let code = match &cli.command {
        Command::Node(command) => match command.die_with_parent {
            Some(parent) => parent_watch::die_with_parent(parent).and_then(|()| node::run(&command.args)),
            None => node::run(&command.args),
        },
        Command::Mongos(command) => match command.die_with_parent {
            Some(parent) => parent_watch::die_with_parent(parent).and_then(|()| mongos::run(&command.args)),
            None => mongos::run(&command.args),
        },
        Command::Check(args) => check::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Test(args) => match args.die_with_parent {
            Some(parent) => parent_watch::die_with_parent(parent).and_then(|()| test_cmd::run(args)),
            None => test_cmd::run(args),
        },
        Command::Bench(args) => bench::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Generate(args) => generate_cmd::run(args),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(err) if err.is::<UsageError>() => {
            eprintln!("faultline: {err:#}");
            std::process::exit(BAD_ARGUMENTS);
        }
        Err(err) => {
            eprintln!("faultline: error: {err:#}");
            std::process::exit(255);
        }
    }
}

/// The exit status of a C tool that a closed pipe killed (128 + SIGPIPE), which shells and `pipefail` know.
const CLOSED_STDOUT: i32 = 141;

/// `faultline check … | head`: when the reader of stdout goes away, end at once and quietly, as a C tool that
/// SIGPIPE ends does. Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE and `println!` panics
/// with "failed printing to stdout"; the workspace forbids the `unsafe` a signal reset needs, so the panic hook
/// turns exactly that panic into the exit. Every other panic keeps the default report.
fn end_quietly_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_stdout(message) {
            std::process::exit(CLOSED_STDOUT);
        }
        report(info);
    }));
}

/// Whether a panic message is `println!`'s on a closed pipe (EPIPE is error 32 on Linux).
fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("(os error 32)")
}

/// A clap error as one line: `--rate: -5 is not a valid rate: ...` for a value our parsers refused (their
/// message names the value and the accepted ones), else clap's own text without the usage block and the
/// pointer to `--help`, its lines joined.
fn one_line(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() == ErrorKind::ValueValidation
        && let (Some(ContextValue::String(arg)), Some(source)) =
            (err.get(ContextKind::InvalidArg), std::error::Error::source(err))
    {
        let flag = arg.split(' ').next().unwrap_or(arg);
        return format!("{flag}: {source}");
    }
    let text = err.render().to_string();
    let mut joined = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push_str(if line.starts_with("tip:") { "; " } else { " " });
        }
        joined.push_str(line.trim_start_matches("error: "));
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn only_a_closed_stdout_is_taken_for_one() {
        assert!(is_closed_stdout("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_stdout("index out of bounds (os error 32)"));
    }

    fn refusal(args: &[&str]) -> String {
        let err = Cli::command().try_get_matches_from(args).expect_err("refused");
        one_line(&err)
    }

    #[test]
    fn clap_errors_are_one_line_naming_the_value() {
        let rate = refusal(&["faultline", "test", "--rate", "-5"]);
        assert_eq!(
            rate,
            "--rate: -5 is not a valid rate: must be 0 (unpaced) or from 0.001 to 1000000 operations per second"
        );
        let fault = refusal(&["faultline", "bench", "failover", "--fault", "flood"]);
        assert!(
            !fault.contains('\n') && fault.contains("'flood'") && fault.contains("kill"),
            "{fault}"
        );
        let unknown = refusal(&["faultline", "cluster", "--nodez", "3"]);
        assert!(!unknown.contains('\n') && unknown.contains("--nodez"), "{unknown}");
    }

    #[test]
    fn the_die_with_parent_flag_is_hidden() {
        let mut command = Cli::command();
        let node = command.find_subcommand_mut("node").expect("node");
        let help = node.render_long_help().to_string();
        assert!(help.contains("--dbpath") && !help.contains("die-with-parent"), "{help}");
    }
}
