//! `faultline gate`: run a suite of scenarios with expected verdicts, as a CI gate (ARCHITECTURE §5).
//!
//! ```text
//! suite.toml ─► scenarios ─► per seed: `faultline test --config <spec>` (child) ─► results.json
//!                                                     │
//!        expectation (valid on all seeds / anomaly on one) ◄── verdict + anomaly kinds
//!                                                     ▼
//!                        table (stdout), JUnit XML, Markdown; exit 0 all held, 1 any mismatch
//! ```
//!
//! - [`suite`]: the suite file and the bundled `ci` / `nightly` suites.
//! - [`runner`]: one seed as a child process with a wall-clock limit.
//! - [`verdict`]: judging a scenario's runs. [`report`]: table, JUnit, Markdown.

pub mod report;
pub mod runner;
pub mod suite;
pub mod verdict;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;

use faultline::support::errors::UsageError;
use report::ScenarioOutcome;
use runner::RunEnv;
use suite::{Expect, Scenario};

/// Flags of `faultline gate`.
#[derive(clap::Args, Debug, Default)]
pub struct GateArgs {
    /// Suite file, or the name of a bundled suite (ci, nightly).
    #[arg(default_value = "ci")]
    pub suite: String,
    /// Write JUnit XML (one test case per scenario) to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run only these scenarios (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Store root for the runs [default: store].
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// List the suite's scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `faultline gate`; returns the exit code (0 every expectation held, 1 any mismatch).
pub fn run(args: &GateArgs) -> anyhow::Result<i32> {
    let suite = suite::load(&args.suite).map_err(UsageError)?;
    let scenarios = select(&suite.scenarios, &args.only).map_err(UsageError)?;
    if args.list {
        for s in &scenarios {
            println!(
                "{:<40} expect {:<8} seeds {:?}  {}",
                s.name,
                s.expect.to_string(),
                s.seeds,
                s.description
            );
        }
        return Ok(0);
    }
    let env = RunEnv {
        bin: std::env::current_exe().context("cannot find the faultline binary")?,
        store: args.store.clone(),
    };
    let started = Instant::now();
    println!(
        "faultline gate: suite {} ({} scenario(s)): {}",
        suite.name,
        scenarios.len(),
        suite.description
    );
    let mut outcomes = Vec::new();
    for scenario in &scenarios {
        outcomes.push(run_scenario(&env, scenario));
    }
    let wall = started.elapsed().as_secs_f64();
    println!();
    print!("{}", report::table(&outcomes));
    let passed = outcomes.iter().all(|o| o.judgement.passed);
    println!(
        "gate {}: {} in {wall:.0}s",
        suite.name,
        if passed { "passed" } else { "FAILED" }
    );
    // A closing line in the plain `N passed, N failed` form that CI systems read.
    let ok = outcomes.iter().filter(|o| o.judgement.passed).count();
    println!("gate: {ok} passed, {} failed", outcomes.len() - ok);
    if let Some(path) = &args.junit {
        write(path, &report::junit(&suite.name, &outcomes))?;
    }
    if let Some(path) = &args.markdown {
        let text = report::markdown(&suite.name, &outcomes) + &format!("\nWall time: {wall:.0}s.\n");
        write(path, &text)?;
    }
    Ok(if passed { 0 } else { 1 })
}

fn select(scenarios: &[Scenario], only: &[String]) -> Result<Vec<Scenario>, String> {
    if let Some(unknown) = only.iter().find(|n| !scenarios.iter().any(|s| &s.name == *n)) {
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "no scenario {unknown:?} in the suite (have: {})",
            names.join(", ")
        ));
    }
    Ok(scenarios
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .cloned()
        .collect())
}

/// Runs a scenario's seeds: all of them for `valid`; for `invalid`, until one catches the anomaly.
fn run_scenario(env: &RunEnv, scenario: &Scenario) -> ScenarioOutcome {
    let mut runs = Vec::new();
    for &seed in &scenario.seeds {
        let run = runner::run_seed(env, scenario, seed);
        println!(
            "  {} seed {seed}: {} [{}] {:.0}s",
            scenario.name,
            run.verdict,
            run.anomalies.join(", "),
            run.seconds
        );
        let caught = scenario.expect == Expect::Invalid && verdict::catches(&run, &scenario.anomalies);
        let broke = scenario.expect == Expect::Valid && run.verdict != verdict::RunVerdict::Valid;
        runs.push(run);
        if caught || broke {
            break;
        }
    }
    let judgement = verdict::judge(scenario.expect, &scenario.anomalies, &runs);
    println!(
        "{} {}: {}",
        if judgement.passed { "PASS" } else { "FAIL" },
        scenario.name,
        judgement.message
    );
    ScenarioOutcome::new(scenario, runs, judgement)
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
