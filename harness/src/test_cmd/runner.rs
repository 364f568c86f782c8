//! The lifecycle of one `faultline test` run (ARCHITECTURE §7):
//!
//! ```text
//! cluster up → initiate → primary ─┬─ workers (generator: time limit ∘ stagger ∘ workload) ─┐
//!                                  ├─ nemesis (seeded plan) ─────────────────────────────────┤→ heal everything
//!                                  ├─ lag sampler → lag.jsonl                                │  → wait healthy
//!                                  └─ progress line                                          ┘  → final reads
//!                                                              → history.edn → checkers → results.json, summary
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use faultline_checker::convergence::{self, MemberHash};
use faultline_checker::formats::edn;
use faultline_checker::result::{CheckResult, Validity};
use faultline_reports::RunDir;
use faultline_workloads::WorkloadOptions;
use faultline_workloads::client::{ClientSpec, Endpoints};
use faultline_workloads::generator::{stagger, time_limit};
use faultline_workloads::rng::Rng;
use tokio::sync::watch;

use super::spec::{Plan, TestSpec};
use super::worker::{ClientEnv, Counters, run_phase};
use super::{change_stream, samplers};
use crate::cluster::{Cluster, ClusterSpec};
use crate::nemesis::sharded::{ShardedNemesis, ShardedTopology, chunk_loop};
use crate::nemesis::{Nemesis, PlannedStep, schedule};
use crate::recorder::Recorder;

/// What the run tests: one replica set, or a sharded cluster.
enum Deployment {
    Set(Arc<tokio::sync::Mutex<Cluster>>),
    Sharded(Arc<ShardedTopology>),
}

impl Deployment {
    /// Where clients connect (the members, or the routers) and what to sample lag of (each replica set).
    async fn endpoints(&self) -> (Endpoints, Vec<Vec<(String, u16)>>) {
        let members = |cluster: &Cluster| -> Vec<(String, u16)> {
            cluster.members.iter().map(|m| (m.name.clone(), m.port)).collect()
        };
        match self {
            Deployment::Set(cluster) => {
                let cluster = cluster.lock().await;
                let endpoints = Endpoints {
                    repl_set: cluster.spec.repl_set.clone(),
                    members: members(&cluster),
                };
                (endpoints.clone(), vec![endpoints.members])
            }
            Deployment::Sharded(topology) => {
                let mut sets = Vec::new();
                for set in topology.sets() {
                    sets.push(members(&*set.lock().await));
                }
                let endpoints = Endpoints {
                    repl_set: String::new(),
                    members: topology.router_ports().await,
                };
                (endpoints, sets)
            }
        }
    }
}

/// The nemesis of either deployment.
enum AnyNemesis {
    Set(Nemesis),
    Sharded(ShardedNemesis),
}

impl AnyNemesis {
    fn active(&self) -> Arc<std::sync::Mutex<Vec<String>>> {
        match self {
            AnyNemesis::Set(n) => n.active.clone(),
            AnyNemesis::Sharded(n) => n.active.clone(),
        }
    }

    async fn run_plan(&mut self, plan: &[PlannedStep], stop: watch::Receiver<bool>) {
        match self {
            AnyNemesis::Set(n) => n.run_plan(plan, stop).await,
            AnyNemesis::Sharded(n) => n.run_plan(plan, stop).await,
        }
    }

    async fn heal_everything(&mut self) -> anyhow::Result<()> {
        match self {
            AnyNemesis::Set(n) => n.heal_everything().await,
            AnyNemesis::Sharded(n) => n.heal_everything().await,
        }
    }
}

/// The longest the final phase may take.
const FINAL_PHASE_LIMIT: Duration = Duration::from_secs(30);

/// How a run ended.
pub struct RunOutcome {
    /// `None` when the run was interrupted before it could be checked.
    pub result: Option<CheckResult>,
    pub history_events: usize,
    pub counters: (u64, u64, u64),
    /// The cluster, when it is to be left running.
    pub cluster: Option<Cluster>,
}

/// Runs the test described by `spec` in `run`; `interrupt` turns true on Ctrl-C / SIGTERM.
pub async fn execute(
    spec: &TestSpec,
    plan: &Plan,
    run: &RunDir,
    keep_cluster: bool,
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<RunOutcome> {
    let database = client_spec(spec, plan).database;
    let deployment = tokio::select! {
        deployment = start_deployment(spec, plan, run.path(), keep_cluster, &database) => deployment?,
        _ = wait_true(interrupt.clone()) => anyhow::bail!("interrupted while starting the cluster"),
    };
    let (endpoints, lag_sets) = deployment.endpoints().await;
    match &deployment {
        Deployment::Set(cluster) => println!("cluster up: {}", cluster.lock().await.uri()),
        Deployment::Sharded(_) => {
            let hosts: Vec<String> = endpoints
                .members
                .iter()
                .map(|(_, p)| format!("127.0.0.1:{p}"))
                .collect();
            println!(
                "sharded cluster up: {} shard(s), routers mongodb://{}/",
                spec.shards,
                hosts.join(",")
            );
        }
    }
    let recorder = Arc::new(Recorder::create(&run.history())?);
    let counters = Arc::new(Counters::default());
    let env = Arc::new(ClientEnv {
        workload: plan.workload,
        client: client_spec(spec, plan),
        endpoints: endpoints.clone(),
        concurrency: spec.concurrency,
        recorder: recorder.clone(),
        counters: counters.clone(),
    });

    // Background tasks stop when `stop_background` turns true; workers also stop on an interrupt.
    let (stop_background, background) = watch::channel(false);
    let lag_path = run.lag();
    let lag = tokio::spawn({
        let stop = background.clone();
        let started = recorder.started();
        async move { samplers::sample_lag(lag_sets, &lag_path, started, stop).await }
    });
    let chunk_sampler = match &deployment {
        Deployment::Sharded(topology) => Some(tokio::spawn(crate::nemesis::sharded::sample_chunks(
            topology.clone(),
            format!("{database}.{}", plan.workload.collection()),
            run.chunks(),
            recorder.started(),
            background.clone(),
        ))),
        Deployment::Set(_) => None,
    };
    let mut nemesis = match &deployment {
        Deployment::Set(cluster) => AnyNemesis::Set(Nemesis::new(cluster.clone(), recorder.clone(), spec.seed)),
        Deployment::Sharded(topology) => AnyNemesis::Sharded(ShardedNemesis::new(
            topology.clone(),
            recorder.clone(),
            spec.seed,
            plan.sharding.as_ref().and_then(|s| s.target),
        )),
    };
    // The change stream is open before the first write, so it must see every one.
    let watcher = match spec.change_stream {
        true => {
            let collection = faultline_workloads::workload::set::COLLECTION;
            let started = recorder.started();
            let watcher =
                change_stream::Watcher::open(&env.client, &endpoints, collection, run.path(), started).await?;
            Some(tokio::spawn(watcher.run(background.clone())))
        }
        false => None,
    };
    let progress = tokio::spawn(samplers::progress(
        counters.clone(),
        nemesis.active(),
        recorder.started(),
        background.clone(),
    ));
    let steps = schedule::plan(
        spec.seed,
        &plan.faults,
        plan.target,
        spec.nemesis_interval,
        spec.time_limit,
    );

    let mut rng = Rng::seed_from_u64(spec.seed);
    let mut processes: Vec<u64> = (0..spec.concurrency as u64).collect();
    let options = WorkloadOptions {
        keys: spec.keys,
        ops_per_key: spec.ops_per_key,
    };
    let main_generator = time_limit(
        Duration::from_secs_f64(spec.time_limit),
        stagger(spec.rate, plan.workload.generator(options)),
    );
    let main = run_phase(
        env.clone(),
        main_generator,
        rng.fork(1),
        interrupt.clone(),
        &mut processes,
    );
    let (stop_nemesis, nemesis_stop) = watch::channel(false);
    let chunks = match (&deployment, &plan.sharding) {
        (Deployment::Sharded(topology), Some(sharding)) => Some(tokio::spawn(chunk_loop(
            topology.clone(),
            recorder.clone(),
            sharding.chunk_ops.clone(),
            format!("{database}.{}", plan.workload.collection()),
            spec.seed,
            Duration::from_secs_f64(spec.nemesis_interval / 2.0),
            nemesis_stop.clone(),
        ))),
        _ => None,
    };
    let nemesis_run = async {
        nemesis.run_plan(&steps, nemesis_stop).await;
        // The final phase starts once the last migration has ended (committed or aborted).
        if let Some(chunks) = chunks {
            let _ = chunks.await;
        }
        nemesis
    };
    let ((), mut nemesis) = tokio::join!(
        async {
            main.await;
            let _ = stop_nemesis.send(true);
        },
        nemesis_run
    );

    let interrupted = *interrupt.borrow();
    let mut convergence = None;
    if !interrupted {
        final_phase(
            spec,
            plan,
            &mut nemesis,
            &deployment,
            env.clone(),
            &mut rng,
            &mut processes,
            interrupt.clone(),
        )
        .await?;
        convergence = Some(match &deployment {
            Deployment::Set(cluster) => vec![check_convergence(cluster, &database).await],
            Deployment::Sharded(topology) => {
                let mut results = Vec::new();
                for shard in &topology.shards {
                    let mut result = check_convergence(shard, &database).await;
                    result.checker = format!("convergence {}", shard.lock().await.spec.repl_set);
                    results.push(result);
                }
                results.push(super::sharded::check_placement(topology, &database, plan.workload.collection()).await);
                results
            }
        });
    }
    let _ = stop_background.send(true);
    let _ = tokio::join!(lag, progress);
    if let Some(sampler) = chunk_sampler {
        let _ = sampler.await;
    }
    let watched = match watcher {
        Some(task) => Some(
            task.await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the watcher crashed: {e}"))),
        ),
        None => None,
    };

    let (history, write_error) = recorder.snapshot();
    if let Some(error) = write_error {
        anyhow::bail!("could not write {}: {error}", run.history().display());
    }
    write_edn(&run.history_edn(), &history)?;
    let interrupted = interrupted || *interrupt.borrow();
    let result = if interrupted {
        None
    } else {
        let budget = Duration::from_secs_f64(spec.check_timeout);
        let workload = plan.workload;
        let checked = history.clone();
        let result = tokio::task::spawn_blocking(move || workload.check(&checked, Some(budget)))
            .await
            .context("the checker crashed")?;
        let result = convergence.into_iter().flatten().fold(result, with_child);
        let result = match watched {
            Some(watched) => {
                let majority = spec.write_concern == "majority";
                with_child(result, change_stream::check(run.path(), &history, majority, watched))
            }
            None => result,
        };
        run.write_results(&result)?;
        Some(result)
    };
    // The nemesis holds the last other handle on the cluster; without it the cluster can be left running.
    drop(nemesis);
    let cluster = match deployment {
        Deployment::Set(cluster) => cluster,
        Deployment::Sharded(topology) => {
            topology.shutdown(Duration::from_secs(3)).await;
            return Ok(RunOutcome {
                result,
                history_events: history.len(),
                counters: counters.read(),
                cluster: None,
            });
        }
    };
    let cluster = Arc::try_unwrap(cluster).ok().map(tokio::sync::Mutex::into_inner);
    let cluster = match cluster {
        Some(mut cluster) if !keep_cluster || interrupted => {
            cluster.shutdown(Duration::from_secs(3)).await;
            None
        }
        other => other,
    };
    Ok(RunOutcome {
        result,
        history_events: history.len(),
        counters: counters.read(),
        cluster,
    })
}

/// How long members may take to agree on their data after healing and the final reads.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(15);

/// Convergence (ARCHITECTURE §5): after healing, every data-bearing member holds the same data. Polls `dbHash` of
/// the workload database on each member until they agree; if they never do within the timeout, the members
/// diverged (e.g. a member kept writes that should have rolled back). The verdict is
/// [`faultline_checker::convergence`]'s.
async fn check_convergence(cluster: &Arc<tokio::sync::Mutex<Cluster>>, database: &str) -> CheckResult {
    let members: Vec<(String, u16)> = {
        let cluster = cluster.lock().await;
        cluster
            .members
            .iter()
            .filter(|m| !m.arbiter)
            .map(|m| (m.name.clone(), m.port))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + CONVERGENCE_TIMEOUT;
    loop {
        let mut hashes = Vec::with_capacity(members.len());
        for (name, port) in &members {
            let body = bson::doc! {"dbHash": 1, "$db": database, "$readPreference": {"mode": "secondaryPreferred"}};
            let hash = crate::cluster::wire::command_ok(*port, body, Duration::from_secs(5))
                .await
                .ok()
                .and_then(|reply| reply.get_str("md5").ok().map(String::from));
            hashes.push(MemberHash {
                member: name.clone(),
                hash,
            });
        }
        if convergence::agree(&hashes) || tokio::time::Instant::now() >= deadline {
            return convergence::check(&hashes, CONVERGENCE_TIMEOUT);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Adds one more checker's result to a (possibly composed) result, keeping the worst verdict.
fn with_child(result: CheckResult, child: CheckResult) -> CheckResult {
    let name = if result.children.is_empty() {
        "faultline".to_string()
    } else {
        result.checker.clone()
    };
    let mut children = if result.children.is_empty() {
        vec![result]
    } else {
        result.children
    };
    children.push(child);
    faultline_checker::result::compose(&name, children)
}

#[allow(clippy::too_many_arguments)]
async fn final_phase(
    spec: &TestSpec,
    plan: &Plan,
    nemesis: &mut AnyNemesis,
    deployment: &Deployment,
    env: Arc<ClientEnv>,
    rng: &mut Rng,
    processes: &mut [u64],
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    nemesis.heal_everything().await.context("cannot heal the cluster")?;
    let recovery = Duration::from_secs_f64(spec.recovery_timeout);
    let healthy = async {
        match deployment {
            Deployment::Set(cluster) => cluster.lock().await.wait_healthy(recovery).await.map(|_| ()),
            Deployment::Sharded(topology) => super::sharded::wait_healthy(topology, recovery).await,
        }
    };
    tokio::select! {
        healthy = healthy => {
            healthy.context("the cluster did not recover after healing")?;
        }
        _ = wait_true(interrupt.clone()) => return Ok(()),
    }
    if let Some(reads) = plan.workload.final_generator() {
        run_phase(
            env,
            time_limit(FINAL_PHASE_LIMIT, reads),
            rng.fork(2),
            interrupt,
            processes,
        )
        .await;
    }
    Ok(())
}

async fn start_deployment(
    spec: &TestSpec,
    plan: &Plan,
    run_dir: &Path,
    keep_cluster: bool,
    database: &str,
) -> anyhow::Result<Deployment> {
    Ok(match &plan.sharding {
        Some(sharding) => Deployment::Sharded(Arc::new(
            super::sharded::start(spec, sharding, run_dir, database, plan.workload.collection()).await?,
        )),
        None => Deployment::Set(Arc::new(tokio::sync::Mutex::new(
            start_cluster(spec, run_dir, keep_cluster).await?,
        ))),
    })
}

async fn start_cluster(spec: &TestSpec, run_dir: &Path, keep_cluster: bool) -> anyhow::Result<Cluster> {
    let bin = std::env::current_exe().context("cannot find the faultline binary")?;
    let mut cluster_spec = ClusterSpec::new(bin, run_dir.to_path_buf(), spec.nodes);
    cluster_spec.arbiters = spec.arbiters;
    // A cluster left running without proxies is detached and outlives the harness (see `leave_running`);
    // every other member dies with it.
    cluster_spec.die_with_harness = !keep_cluster || cluster_spec.uses_proxies();
    cluster_spec.set_parameters = spec.set_parameters.clone();
    if spec.secondary_delay_secs > 0 && spec.nodes > 1 {
        cluster_spec.delayed_member = Some((spec.nodes - 1, spec.secondary_delay_secs));
    }
    let cluster = Cluster::start(cluster_spec).await?;
    cluster.initiate().await?;
    cluster.wait_primary(Duration::from_secs(30)).await?;
    Ok(cluster)
}

fn client_spec(spec: &TestSpec, plan: &Plan) -> ClientSpec {
    ClientSpec {
        mode: plan.client_mode,
        write_concern: spec.write_concern.clone(),
        read_concern: spec.read_concern.clone(),
        read_preference: spec.read_preference.clone(),
        op_timeout: Duration::from_secs_f64(spec.op_timeout),
        database: "faultline".into(),
    }
}

fn write_edn(path: &Path, history: &faultline_checker::history::History) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    edn::write(history, &mut out).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::flush(&mut out).with_context(|| format!("cannot write {}", path.display()))
}

async fn wait_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// The verdict of an outcome (unknown when the run was interrupted).
pub fn verdict(outcome: &RunOutcome) -> Validity {
    outcome.result.as_ref().map_or(Validity::Unknown, |r| r.valid)
}
