//! `faultline test`: run a workload against a real cluster under faults, record the history, check it.
//!
//! Flags override the `--config` TOML file, which overrides the defaults ([`spec::TestSpec`]). The run lives
//! in `store/<name>/<timestamp>/` ([`faultline::support::store`]), laid out as [`faultline_reports::run_dir`]
//! says: `test.toml` (the resolved spec with its seed), `history.jsonl` (streamed), `history.edn`,
//! `lag.jsonl`, `results.json`, `summary.txt`, `nodes/<n>/node.log`. Exit codes (ARCHITECTURE §2): 0 valid,
//! 1 invalid, 2 unknown (also: interrupted), 254 bad arguments, 255 harness failure.
//!
//! - [`spec`]: the spec and its validation; run directories come from [`faultline::support::store`].
//! - [`change_stream`]: the `--change-stream` watcher and its check.
//! - [`runner`]: the lifecycle. [`worker`]: client workers. [`samplers`]: lag and progress.

pub mod change_stream;
pub mod runner;
pub mod samplers;
pub mod sharded;
pub mod spec;
pub mod worker;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use faultline_reports::RunDir;
use tokio::sync::watch;

use crate::cluster::registry;
use faultline::support::durations::parse_seconds;
use faultline::support::errors::UsageError;
use spec::TestSpec;

/// Flags of `faultline test` (each overrides the `--config` file).
#[derive(clap::Args, Debug, Default)]
pub struct TestArgs {
    /// TOML test spec; flags override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Workload: register, set, secondary-reads, counter [default: register].
    #[arg(long, allow_hyphen_values = true)]
    pub workload: Option<String>,
    /// Faults, comma-separated: kill, pause, stop, wipe, partition, partition-isolate-primary,
    /// partition-halves, partition-ring, partition-bridge, partition-one-way, slow, membership, clock,
    /// primary-divergence, all, none; with --shards also move-chunk, split, balancer [default: partition,kill].
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub nemesis: Option<Vec<String>>,
    /// Target of process faults: primary, minority, majority, all, n1, n2, ...; with --shards: shard-primary,
    /// config-primary, mongos, all [default: per fault; with --shards a random part each time].
    #[arg(long, allow_hyphen_values = true)]
    pub nemesis_target: Option<String>,
    /// Time between nemesis steps, e.g. 5s [default: 5s].
    #[arg(long, allow_hyphen_values = true)]
    pub nemesis_interval: Option<String>,
    /// Length of the main phase, e.g. 30s, 2m [default: 30s].
    #[arg(long, allow_hyphen_values = true)]
    pub time_limit: Option<String>,
    /// Concurrent client workers, 1 to 1000 [default: 10].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::CONCURRENCY.parser::<usize>())]
    pub concurrency: Option<usize>,
    /// Target operations per second, all workers together; 0 is unpaced [default: 500].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::RATE.parser())]
    pub rate: Option<f64>,
    /// Data-bearing members; with the arbiters at most 7 [default: 3].
    #[arg(long, allow_hyphen_values = true, value_parser = crate::input::NODES.parser::<usize>())]
    pub nodes: Option<usize>,
    /// Arbiters [default: 0].
    #[arg(long, allow_hyphen_values = true, value_parser = crate::input::ARBITERS.parser::<usize>())]
    pub arbiters: Option<usize>,
    /// Write concern w: majority or a number of data-bearing members from 1 to --nodes [default: majority].
    #[arg(long, allow_hyphen_values = true)]
    pub write_concern: Option<String>,
    /// Read concern: local, available, majority, linearizable, snapshot [default: linearizable].
    #[arg(long, allow_hyphen_values = true)]
    pub read_concern: Option<String>,
    /// Read preference: primary, primaryPreferred, secondary, secondaryPreferred, nearest [default: primary;
    /// secondary for secondary-reads].
    #[arg(long, allow_hyphen_values = true)]
    pub read_preference: Option<String>,
    /// Client mode: replica-set or direct [default: replica-set].
    #[arg(long, allow_hyphen_values = true)]
    pub client_mode: Option<String>,
    /// Seed for every random choice, 0 to 9223372036854775807 [default: random, printed].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::SEED.parser::<u64>())]
    pub seed: Option<u64>,
    /// `secondaryDelaySecs` for the last data member, at most 31622400 (366 days) [default: 0].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::SECONDARY_DELAY.parser::<u64>())]
    pub secondary_delay_secs: Option<u64>,
    /// Test a sharded cluster of this many shards (replica sets of --nodes members) through mongos routers,
    /// 0 to 8 [default: 0, one replica set].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::SHARDS.parser::<usize>())]
    pub shards: Option<usize>,
    /// Routers of a sharded test; clients use them all, 1 to 8 [default: 2].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::MONGOS.parser::<usize>())]
    pub mongos: Option<usize>,
    /// Config servers of a sharded test: 1 or 3 [default: 1].
    #[arg(long, allow_hyphen_values = true)]
    pub config_servers: Option<usize>,
    /// Shard key of the workload's collection on _id: hashed or range [default: hashed].
    #[arg(long, allow_hyphen_values = true)]
    pub shard_key: Option<String>,
    /// Chunks the collection is split into before a sharded test, 1 to 1024 [default: 4].
    #[arg(long, allow_hyphen_values = true, value_parser = spec::CHUNKS.parser::<usize>())]
    pub chunks: Option<usize>,
    /// Watch a change stream on the set workload's collection during the run and check its events against the
    /// history (change-stream.jsonl; anomalies change-stream-repeat, -missing, -phantom, -order).
    #[arg(long)]
    pub change_stream: bool,
    /// Test name (store directory) [default: the workload].
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// Store root [default: store].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Keep the cluster up after the run and print how to reach and stop it.
    #[arg(long)]
    pub leave_running: bool,
    /// Use this run directory instead of a fresh one in the store (`faultline gate` runs its tests so, to
    /// know where each run is; the directory is created if missing).
    #[arg(long, value_name = "DIR", hide = true)]
    pub run_dir: Option<PathBuf>,
    /// Die with process PID (`faultline gate` runs its tests so; see [`crate::parent_watch`]).
    #[arg(long, value_name = "PID", hide = true)]
    pub die_with_parent: Option<u32>,
}

impl TestArgs {
    /// The file's spec (or the defaults) with the flags applied, validated.
    pub fn resolve(&self) -> Result<(TestSpec, spec::Plan), String> {
        let mut spec = match &self.config {
            Some(path) => TestSpec::from_file(path)?,
            None => TestSpec::default(),
        };
        let seconds = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|text| parse_seconds(text).map_err(|e| format!("{flag}: {e}")))
                .transpose()
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = &self.$field {
                    spec.$field = v.clone();
                }
            };
        }
        set!(workload);
        set!(nemesis);
        set!(nemesis_target);
        set!(concurrency);
        set!(rate);
        set!(nodes);
        set!(arbiters);
        set!(write_concern);
        set!(read_concern);
        set!(read_preference);
        set!(client_mode);
        set!(seed);
        set!(secondary_delay_secs);
        set!(name);
        set!(store);
        set!(shards);
        set!(mongos);
        set!(config_servers);
        set!(shard_key);
        set!(chunks);
        if self.change_stream {
            spec.change_stream = true;
        }
        if let Some(v) = seconds("--nemesis-interval", &self.nemesis_interval)? {
            spec.nemesis_interval = v;
        }
        if let Some(v) = seconds("--time-limit", &self.time_limit)? {
            spec.time_limit = v;
        }
        let seeded = self.seed.is_some() || self.config.as_deref().is_some_and(file_sets_seed);
        if !seeded {
            spec.seed = fresh_seed();
        }
        spec.finish()
    }
}

fn file_sets_seed(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("seed"))
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    faultline_workloads::rng::Rng::seed_from_u64(nanos ^ u64::from(std::process::id())).next_u64() >> 1
}

/// Runs `faultline test`; returns the exit code.
pub fn run(args: &TestArgs) -> anyhow::Result<i32> {
    let (spec, plan) = args.resolve().map_err(UsageError)?;
    if args.leave_running && plan.sharding.is_some() {
        return Err(UsageError(
            "--leave-running is not supported with --shards: a sharded test's cluster is stopped after the run".into(),
        )
        .into());
    }
    let run_dir = match &args.run_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::path::absolute(dir).with_context(|| format!("bad run directory {}", dir.display()))?
        }
        None => faultline::support::store::create_run_dir(&spec.store, &spec.name)?,
    };
    let run = RunDir::new(&run_dir);
    run.write_spec(&spec.to_toml())?;
    let reproduce = format!("faultline test --config {}", run.spec().display());
    println!("faultline test: {} (seed {})", spec.name, spec.seed);
    println!("  store: {}", run_dir.display());
    println!("  reproduce: {reproduce}");
    crate::cluster::registry::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let (raise, interrupt) = watch::channel(false);
        tokio::spawn(async move {
            faultline::support::signals::interrupted().await;
            eprintln!("\ninterrupted: stopping the run (Ctrl-C again to kill everything now)");
            let _ = raise.send(true);
            faultline::support::signals::interrupted().await;
            registry::kill_all();
            std::process::exit(130);
        });
        let outcome = runner::execute(&spec, &plan, &run, args.leave_running, interrupt).await;
        match outcome {
            Ok(mut outcome) => {
                let code = report(&spec, &run, &reproduce, &outcome);
                if let Some(cluster) = outcome.cluster.take() {
                    leave_running(cluster).await;
                }
                Ok(code)
            }
            Err(e) => Err(e),
        }
    });
    registry::kill_all();
    outcome
}

/// Prints and saves the summary; returns the exit code.
fn report(spec: &TestSpec, run: &RunDir, reproduce: &str, outcome: &runner::RunOutcome) -> i32 {
    let verdict = runner::verdict(outcome);
    let (ok, fail, info) = outcome.counters;
    let mut lines = vec![format!(
        "{} on {} node(s), w={}, readConcern={}, readPreference={}, nemesis={}",
        spec.workload,
        spec.nodes,
        spec.write_concern,
        spec.read_concern,
        spec.read_preference,
        spec.nemesis.join(",")
    )];
    lines.push(format!(
        "operations: ok {ok}, fail {fail}, info {info}; {} history events",
        outcome.history_events
    ));
    match &outcome.result {
        Some(result) => lines.extend(faultline_checker::summary::lines(result)),
        None => lines.push(format!(
            "interrupted: not checked; check the partial history with: faultline check {}",
            run.path().display()
        )),
    }
    lines.push(format!("verdict: {verdict} (exit {})", verdict.exit_code()));
    lines.push(format!("seed: {}", spec.seed));
    lines.push(format!("store: {}", run.path().display()));
    lines.push(format!("reproduce: {reproduce}"));
    let text = lines.join("\n") + "\n";
    print!("{text}");
    if let Err(e) = run.write_summary(&text) {
        eprintln!("faultline test: warning: {e}");
    }
    render_report(run.path(), outcome.result.as_ref());
    verdict.exit_code()
}

/// Draws the plots and `report.html` of the run (its viewer from `checked`'s witness) and refreshes the
/// store's `index.html`. A report that cannot be drawn is a warning: the verdict and the recorded files stand
/// on their own.
fn render_report(run_dir: &Path, checked: Option<&faultline_checker::result::CheckResult>) {
    match faultline_reports::render_checked_run(run_dir, checked) {
        Ok(summary) => {
            println!("report: {}", summary.report.display());
            for warning in summary.warnings {
                tracing::warn!("report: {warning}");
            }
        }
        Err(err) => eprintln!("faultline test: warning: the report could not be drawn: {err}"),
    }
    if let Some(store) = run_dir.parent().and_then(Path::parent)
        && let Err(err) = faultline_reports::render_index(store)
    {
        eprintln!("faultline test: warning: the store index could not be written: {err}");
    }
}

/// Keeps the cluster up: without proxies the members are detached and the harness exits; with proxies the
/// harness must keep serving them, so it stays until Ctrl-C.
async fn leave_running(mut cluster: crate::cluster::Cluster) {
    println!("cluster left running: {}", cluster.uri());
    for line in cluster.status_lines().await {
        println!("  {line}");
    }
    if cluster.net().is_none() {
        let pids = cluster.detach();
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        println!("stop it with: kill {}", list.join(" "));
        return;
    }
    println!("the fault proxies live in this process: press Ctrl-C to stop the cluster");
    faultline::support::signals::interrupted().await;
    cluster.shutdown(std::time::Duration::from_secs(5)).await;
}
