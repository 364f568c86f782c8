//! The `faultline` binary: the command-line front of the harness, the checker and the bundled engine.
mod check;

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
    /// Check a recorded history for consistency anomalies.
    Check(check::CheckArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Check(args) => check::run(args),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("faultline: error: {err:#}");
            std::process::exit(255);
        }
    }
}
