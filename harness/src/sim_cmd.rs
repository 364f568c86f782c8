//! `faultline sim`: the in-process replica-set simulation (`faultline_engine::sim`) over many seeds.
//!
//! Each seed starts three (`--members`) real members in this process on a simulated network and simulated time, drives
//! faults (partitions, loss, delay, kills and restarts) and writes from the seed, and checks election
//! safety, message storms, w:majority durability and convergence. A seed replays exactly: each line shows the run's trace
//! digest, which a rerun of the seed reproduces. A failing seed prints one line with the violation and the
//! command that runs it again; the exit code is 1 if any seed failed.

use std::path::PathBuf;

use faultline_engine::sim::{self, SimOptions};

use crate::UsageError;

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run (from --seed on).
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fault-and-write steps per seed (100 ms of simulated time each), before the network heals.
    #[arg(long, default_value_t = 60)]
    pub steps: u32,
    /// Members in the set (all voting), 2 to 7.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Only network faults: never kill and restart members.
    #[arg(long)]
    pub no_kills: bool,
    /// Write the members' logs here (all members of all seeds in one stream; RUST_LOG sets the level).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write every observation of the (last) seed to this file, one line each, to compare two replays.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// A fail point to switch on in every member: a planted bug the checks must find (e.g. skipRollback).
    #[arg(long, value_name = "FAILPOINT")]
    pub planted: Option<String>,
    /// Where the members' temporary dbpaths go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: &SimArgs) -> anyhow::Result<i32> {
    if args.seeds == 0 || args.steps == 0 {
        return Err(UsageError("--seeds and --steps must be at least 1".into()).into());
    }
    if !(2..=7).contains(&args.members) {
        return Err(UsageError(format!(
            "--members must be 2 to 7 (a set has at most 7 voters), not {}",
            args.members
        ))
        .into());
    }
    if let Some(planted) = &args.planted
        && !faultline_engine::failpoint::KNOWN
            .iter()
            .any(|(name, _)| name == planted)
    {
        return Err(UsageError(format!("--planted: {planted} is not a known fail point")).into());
    }
    let _log = match &args.log {
        Some(path) => Some(crate::logging::init(&crate::logging::LogSettings {
            path: Some(path),
            append: false,
            verbosity: 0,
        })?),
        None => None,
    };
    let mut failures = 0u64;
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut options = SimOptions::new(seed);
        options.steps = args.steps;
        options.members = args.members;
        options.planted = args.planted.clone();
        options.kills = !args.no_kills;
        if let Some(dir) = &args.dir {
            options.dir = dir.clone();
        }
        let outcome = sim::run_isolated(&options)?;
        if let Some(path) = &args.trace {
            std::fs::write(path, outcome.events.join("\n") + "\n")
                .map_err(|e| UsageError(format!("--trace {}: {e}", path.display())))?;
        }
        match outcome.violation {
            None => println!(
                "seed {seed}: ok ({} w:majority writes acknowledged, {} primaries, {} kills, {:.1} s simulated, trace {:016x})",
                outcome.majority_acked,
                outcome.primaries_seen,
                outcome.kills,
                outcome.simulated.as_secs_f64(),
                outcome.trace
            ),
            Some(violation) => {
                failures += 1;
                println!("seed {seed}: FAILED: {violation} (trace {:016x})", outcome.trace);
                println!("  reproduce: {}", options.reproduce_line());
            }
        }
    }
    println!("{} of {} seeds failed", failures, args.seeds);
    Ok(if failures == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(seeds: u64, planted: Option<&str>) -> SimArgs {
        SimArgs {
            seeds,
            seed: 1,
            steps: 10,
            members: 3,
            planted: planted.map(String::from),
            dir: None,
            no_kills: false,
            trace: None,
            log: None,
        }
    }

    #[test]
    fn bad_input_is_a_usage_error_before_anything_runs() {
        let one_member = SimArgs {
            members: 1,
            ..args(1, None)
        };
        for bad in [args(0, None), args(1, Some("noSuchFailPoint")), one_member] {
            let err = run(&bad).expect_err("refused");
            assert!(err.is::<UsageError>(), "{err:#}");
        }
    }
}
