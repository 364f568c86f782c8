//! The `faultline` binary: the command-line front of the harness, the checker and the bundled engine.
mod bench;
mod check;
mod cluster;
mod cluster_cmd;
mod daemon;
mod gate;
mod logging;
mod nemesis;
mod node;
mod proxy;
mod recorder;
mod report_cmd;
mod test_cmd;

use clap::{Parser, Subcommand};

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
    Node(node::NodeArgs),
    /// Check a recorded history for consistency anomalies.
    Check(check::CheckArgs),
    /// Re-render a stored run's plots and report.html (or every run of a store and its index.html).
    Report(report_cmd::ReportArgs),
    /// Start a local replica set, print its URI, and run until Ctrl-C.
    Cluster(cluster_cmd::ClusterArgs),
    /// Run a workload against a local cluster under faults, record the history and check it.
    Test(Box<test_cmd::TestArgs>),
    /// Benchmarks: replication lag, failover time, throughput against concurrency and write concern.
    Bench(bench::BenchArgs),
    /// Run a suite of scenarios with expected verdicts (a CI gate); JUnit XML and Markdown on request.
    Gate(gate::GateArgs),
}

/// A bad flag, config file or argument: exit code 254, as Jepsen does.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version requests are successes; anything else is a bad argument (Jepsen's 254).
            std::process::exit(if err.use_stderr() { 254 } else { 0 });
        }
    };
    let code = match &cli.command {
        Command::Node(args) => node::run(args),
        Command::Check(args) => check::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Test(args) => test_cmd::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Gate(args) => gate::run(args),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(err) if err.is::<UsageError>() => {
            eprintln!("faultline: {err:#}");
            std::process::exit(254);
        }
        Err(err) => {
            eprintln!("faultline: error: {err:#}");
            std::process::exit(255);
        }
    }
}
