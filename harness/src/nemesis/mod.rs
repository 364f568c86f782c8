//! The nemesis (ARCHITECTURE §5): injects faults into a running cluster on a seeded schedule and records each as a
//! nemesis operation — an `invoke` when it starts and an `info` completion carrying the members it hit and
//! its outcome: `installed`, `skipped` (nothing to do, e.g. no primary to kill) or `indeterminate` (it failed
//! part-way).
//!
//! - [`fault`]: faults, targets, planned steps.
//! - [`partition`]: partition shapes as grudges.
//! - [`schedule`]: the seeded plan.

pub mod fault;
pub mod partition;
pub mod schedule;
pub mod sharded;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_checker::history::{OpType, Process};
use faultline_workloads::rng::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;

pub use fault::{Fault, PartitionKind, PlannedStep, Step, Target};

use crate::cluster::{Cluster, RunState, member::STOP_GRACE};
use crate::proxy::{Action, Rule};
use crate::recorder::Recorder;

/// How a nemesis operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    Skipped,
    Indeterminate,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Skipped => "skipped",
            Outcome::Indeterminate => "indeterminate",
        }
    }
}

/// What applying a step did.
struct Effect {
    outcome: Outcome,
    members: Vec<usize>,
    detail: String,
}

impl Effect {
    fn skipped(detail: &str) -> Effect {
        Effect {
            outcome: Outcome::Skipped,
            members: Vec::new(),
            detail: detail.to_string(),
        }
    }

    fn done(members: Vec<usize>, detail: String) -> Effect {
        let outcome = if members.is_empty() {
            Outcome::Skipped
        } else {
            Outcome::Installed
        };
        Effect {
            outcome,
            members,
            detail,
        }
    }
}

/// Applies faults to a shared cluster and records them.
pub struct Nemesis {
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    recorder: Arc<Recorder>,
    rng: Rng,
    /// Descriptions of the faults in force (for the progress line).
    pub active: Arc<Mutex<Vec<String>>>,
    /// Members taken out of the config by a membership fault, to add back on heal.
    removed: Vec<(usize, bson::Document)>,
    /// The isolated old primary of a primary-divergence fault in force.
    diverged: Option<usize>,
}

/// How far a primary-divergence fault runs the isolated primary's clock ahead: longer than any interval
/// between nemesis steps, so its writes outdate everything the new primary writes meanwhile.
const DIVERGENCE_SKEW_MS: i64 = 60_000;
/// The largest skew of the clock fault, either way.
const MAX_CLOCK_SKEW_MS: u64 = 60_000;
/// How long a primary-divergence heal waits for the election after healing the network.
const DIVERGENCE_ELECTION_WAIT: Duration = Duration::from_secs(10);
/// The deadline of one admin command sent by the nemesis.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Nemesis {
    pub fn new(cluster: Arc<tokio::sync::Mutex<Cluster>>, recorder: Arc<Recorder>, seed: u64) -> Nemesis {
        Nemesis {
            cluster,
            recorder,
            rng: Rng::seed_from_u64(seed ^ 0x6661_756C_7473),
            active: Arc::new(Mutex::new(Vec::new())),
            removed: Vec::new(),
            diverged: None,
        }
    }

    /// Runs the plan until its end or until `stop` turns true.
    pub async fn run_plan(&mut self, plan: &[PlannedStep], stop: watch::Receiver<bool>) {
        let started = self.recorder.started();
        run_steps(started, plan, stop, async |step| self.apply(step).await).await;
    }

    /// Applies one step and records it.
    pub async fn apply(&mut self, step: Step) {
        let (f, value) = match step {
            Step::Start(fault, target) => (
                fault.start_f(),
                json!({"fault": fault.describe(), "target": target.name()}),
            ),
            Step::Heal(fault) => (fault.heal_f(), json!({"fault": fault.describe()})),
        };
        self.recorder
            .record(OpType::Invoke, Process::nemesis(), f, value.clone(), None, None);
        let effect = match step {
            Step::Start(fault, target) => self.start(fault, target).await,
            Step::Heal(fault) => self.heal(fault).await,
        };
        self.update_active(step, &effect);
        self.record_completion(f, value, &effect).await;
    }

    /// Heals every fault: network, paused and down members (the final phase's first step).
    pub async fn heal_everything(&mut self) -> anyhow::Result<()> {
        let value = json!({"fault": "all"});
        self.recorder
            .record(OpType::Invoke, Process::nemesis(), "heal", value.clone(), None, None);
        let result = {
            let mut cluster = self.cluster.lock().await;
            let healed = cluster.heal_all().await;
            // Clocks of members that were not restarted; a restarted member's clock starts true.
            let all = (0..cluster.members.len()).collect();
            reset_clocks(&mut cluster, all).await;
            healed
        };
        self.diverged = None;
        let effect = match &result {
            Ok(()) => Effect::done(vec![], "network healed, members resumed and restarted".into()),
            Err(e) => Effect {
                outcome: Outcome::Indeterminate,
                members: vec![],
                detail: format!("{e:#}"),
            },
        };
        let effect = Effect {
            outcome: if result.is_ok() {
                Outcome::Installed
            } else {
                effect.outcome
            },
            ..effect
        };
        if let Ok(mut active) = self.active.lock() {
            active.clear();
        }
        self.record_completion("heal", value, &effect).await;
        result
    }

    async fn record_completion(&self, f: &str, value: Value, effect: &Effect) {
        let names: Vec<String> = {
            let cluster = self.cluster.lock().await;
            effect
                .members
                .iter()
                .filter_map(|i| cluster.members.get(*i).map(|m| m.name.clone()))
                .collect()
        };
        record_completion(&self.recorder, f, value, effect.outcome, names, effect.detail.clone());
    }

    fn update_active(&self, step: Step, effect: &Effect) {
        let Ok(mut active) = self.active.lock() else { return };
        match step {
            Step::Start(fault, _) if effect.outcome != Outcome::Skipped => active.push(fault.describe()),
            Step::Heal(fault) => active.retain(|a| *a != fault.describe()),
            Step::Start(..) => {}
        }
    }

    async fn resolve(&mut self, cluster: &Cluster, target: Target) -> Vec<usize> {
        let n = cluster.members.len();
        let mut all: Vec<usize> = (0..n).collect();
        match target {
            Target::Primary => cluster.primary().await.into_iter().collect(),
            Target::All => all,
            Target::Named(i) => (i < n).then_some(i).into_iter().collect(),
            Target::Minority | Target::Majority => {
                let size = if target == Target::Minority {
                    ((n.saturating_sub(1)) / 2).max(1)
                } else {
                    n / 2 + 1
                };
                self.rng.shuffle(&mut all);
                all.truncate(size.min(n));
                all.sort_unstable();
                all
            }
        }
    }

    async fn start(&mut self, fault: Fault, target: Target) -> Effect {
        let cluster_handle = self.cluster.clone();
        let mut cluster = cluster_handle.lock().await;
        if let Fault::Partition(kind) = fault {
            let primary = cluster.primary().await;
            if cluster.net().is_none() {
                return Effect::skipped("no member-to-member links to partition");
            }
            let grudge = partition::grudge(kind, cluster.members.len(), primary, &mut self.rng);
            cluster.set_partition(&grudge, Action::Drop);
            let cut: Vec<usize> = grudge.0.keys().copied().collect();
            return Effect::done(cut, grudge.describe());
        }
        if fault == Fault::Slow {
            let Some(net) = cluster.net() else {
                return Effect::skipped("no member-to-member links to slow down");
            };
            net.set_shaping(vec![Rule::all(Action::Delay {
                delay_ms: 50,
                jitter_ms: 25,
            })]);
            return Effect::done(
                (0..cluster.members.len()).collect(),
                "links delayed 50 ms ± 25 ms".into(),
            );
        }
        if fault == Fault::Membership {
            return self.remove_member(&cluster, target).await;
        }
        if fault == Fault::PrimaryDivergence {
            return self.start_divergence(&cluster).await;
        }
        let targets = self.resolve(&cluster, target).await;
        if targets.is_empty() {
            return Effect::skipped(&format!("no member matches target {}", target.name()));
        }
        if fault == Fault::Wipe && cluster.spec.nodes < 2 {
            return Effect::skipped("wiping the only data-bearing member would destroy the only copy");
        }
        let mut hit = Vec::new();
        let mut details = Vec::new();
        for index in targets {
            let member = &mut cluster.members[index];
            let affected = match fault {
                Fault::Kill => member.kill(),
                Fault::Pause => member.pause(),
                Fault::Stop => member.stop(STOP_GRACE).await,
                Fault::Wipe => {
                    if let Err(e) = cluster.wipe_and_restart(index).await {
                        return Effect {
                            outcome: Outcome::Indeterminate,
                            members: hit,
                            detail: format!("{e:#}"),
                        };
                    }
                    true
                }
                Fault::Clock => {
                    let magnitude = 1_000 + self.rng.below(MAX_CLOCK_SKEW_MS - 1_000) as i64;
                    let offset = if self.rng.below(2) == 0 { magnitude } else { -magnitude };
                    match skew_clock(member.port, offset).await {
                        Ok(()) => {
                            details.push(format!("{} {:+.1} s", member.name, offset as f64 / 1000.0));
                            true
                        }
                        Err(e) => {
                            details.push(format!("{}: {e:#}", member.name));
                            false
                        }
                    }
                }
                Fault::Partition(_) | Fault::Slow | Fault::Membership | Fault::PrimaryDivergence => false,
            };
            if affected {
                hit.push(index);
            }
        }
        Effect::done(hit, details.join(", "))
    }

    /// Isolates the primary and runs its clock ahead (see [`Fault::PrimaryDivergence`]).
    async fn start_divergence(&mut self, cluster: &Cluster) -> Effect {
        if self.diverged.is_some() {
            return Effect::skipped("a primary-divergence is already in force");
        }
        let Some(primary) = cluster.primary().await else {
            return Effect::skipped("no primary to isolate");
        };
        if cluster.net().is_none() {
            return Effect::skipped("no member-to-member links to partition");
        }
        let name = cluster.members[primary].name.clone();
        if let Err(e) = skew_clock(cluster.members[primary].port, DIVERGENCE_SKEW_MS).await {
            return Effect {
                outcome: Outcome::Indeterminate,
                members: vec![],
                detail: format!("cannot skew {name}'s clock: {e:#}"),
            };
        }
        let grudge = partition::grudge(
            PartitionKind::IsolatePrimary,
            cluster.members.len(),
            Some(primary),
            &mut self.rng,
        );
        cluster.set_partition(&grudge, Action::Drop);
        self.diverged = Some(primary);
        Effect::done(
            vec![primary],
            format!("{name} isolated with its clock {} s ahead", DIVERGENCE_SKEW_MS / 1000),
        )
    }

    /// Kills the new primary, heals the network, waits for an election, restarts the killed member and resets
    /// the old primary's clock.
    async fn heal_divergence(&mut self, cluster: &mut Cluster) -> Effect {
        let Some(old) = self.diverged.take() else {
            return Effect::skipped("no primary-divergence in force");
        };
        let mut members = vec![old];
        let mut detail = Vec::new();
        let new = cluster.primary_other_than(old).await;
        if let Some(new) = new {
            cluster.members[new].kill();
            members.push(new);
            detail.push(format!("killed {} (the new primary)", cluster.members[new].name));
        }
        if let Some(net) = cluster.net() {
            net.heal();
        }
        detail.push("healed the network".into());
        match cluster.wait_primary(DIVERGENCE_ELECTION_WAIT).await {
            Ok(primary) => detail.push(format!("{} elected", cluster.members[primary].name)),
            Err(_) => detail.push(format!("no primary within {DIVERGENCE_ELECTION_WAIT:?}")),
        }
        if let Some(new) = new
            && let Err(e) = cluster.restart(new).await
        {
            return Effect {
                outcome: Outcome::Indeterminate,
                members,
                detail: format!(
                    "{}; cannot restart {}: {e:#}",
                    detail.join(", "),
                    cluster.members[new].name
                ),
            };
        }
        if new.is_some() {
            detail.push("restarted it".into());
        }
        reset_clocks(cluster, vec![old]).await;
        detail.push(format!("reset {}'s clock", cluster.members[old].name));
        Effect::done(members, detail.join(", "))
    }

    /// `rs.remove()` of one secondary (never the primary: that is a different fault).
    async fn remove_member(&mut self, cluster: &Cluster, target: Target) -> Effect {
        let Some(primary) = cluster.primary().await else {
            return Effect::skipped("no primary to reconfigure");
        };
        let candidates: Vec<usize> = self
            .resolve(cluster, target)
            .await
            .into_iter()
            .filter(|i| *i != primary)
            .collect();
        let Some(&victim) = candidates.first() else {
            return Effect::skipped("no secondary to remove");
        };
        let host = cluster.members[victim].host();
        let port = cluster.members[primary].port;
        let result = reconfigure(port, |members| {
            let before = members.len();
            members.retain(|m| m.as_document().and_then(|d| d.get_str("host").ok()) != Some(host.as_str()));
            before != members.len()
        })
        .await;
        match result {
            Ok(Some(removed)) => {
                self.removed.extend(removed.into_iter().map(|doc| (victim, doc)));
                Effect::done(vec![victim], format!("removed {host} from the replica-set config"))
            }
            Ok(None) => Effect::skipped("the member is not in the config"),
            Err(e) => Effect {
                outcome: Outcome::Indeterminate,
                members: vec![],
                detail: format!("{e:#}"),
            },
        }
    }

    /// `rs.add()` of every member a membership fault removed, with its old member document.
    async fn add_members_back(&mut self, cluster: &Cluster) -> Effect {
        if self.removed.is_empty() {
            return Effect::skipped("no member was removed");
        }
        let Some(primary) = cluster.primary().await else {
            return Effect {
                outcome: Outcome::Indeterminate,
                members: vec![],
                detail: "no primary to reconfigure".into(),
            };
        };
        let port = cluster.members[primary].port;
        let back: Vec<(usize, bson::Document)> = std::mem::take(&mut self.removed);
        let docs: Vec<bson::Document> = back.iter().map(|(_, d)| d.clone()).collect();
        let result = reconfigure(port, |members| {
            members.extend(docs.iter().cloned().map(bson::Bson::Document));
            true
        })
        .await;
        match result {
            Ok(_) => Effect::done(
                back.iter().map(|(i, _)| *i).collect(),
                "added back to the replica-set config".into(),
            ),
            Err(e) => {
                self.removed = back;
                Effect {
                    outcome: Outcome::Indeterminate,
                    members: vec![],
                    detail: format!("{e:#}"),
                }
            }
        }
    }

    async fn heal(&mut self, fault: Fault) -> Effect {
        let cluster_handle = self.cluster.clone();
        let mut cluster = cluster_handle.lock().await;
        match fault {
            Fault::Slow => match cluster.net() {
                Some(net) => {
                    net.set_shaping(Vec::new());
                    Effect::done((0..cluster.members.len()).collect(), "links at full speed".into())
                }
                None => Effect::skipped("no member-to-member links"),
            },
            Fault::Partition(_) => match cluster.net() {
                Some(net) => {
                    net.heal();
                    Effect::done((0..cluster.members.len()).collect(), "all links pass".into())
                }
                None => Effect::skipped("no member-to-member links"),
            },
            Fault::Membership => self.add_members_back(&cluster).await,
            Fault::PrimaryDivergence => self.heal_divergence(&mut cluster).await,
            Fault::Clock => {
                let all: Vec<usize> = (0..cluster.members.len()).collect();
                Effect::done(reset_clocks(&mut cluster, all).await, "clocks reset".into())
            }
            Fault::Pause => {
                let resumed: Vec<usize> = (0..cluster.members.len())
                    .filter(|i| cluster.members[*i].resume())
                    .collect();
                Effect::done(resumed, String::new())
            }
            Fault::Kill | Fault::Stop | Fault::Wipe => {
                let mut restarted = Vec::new();
                for index in 0..cluster.members.len() {
                    if cluster.members[index].run_state() != RunState::Down {
                        continue;
                    }
                    if let Err(e) = cluster.restart(index).await {
                        return Effect {
                            outcome: Outcome::Indeterminate,
                            members: restarted,
                            detail: format!("{e:#}"),
                        };
                    }
                    restarted.push(index);
                }
                Effect::done(restarted, String::new())
            }
        }
    }
}

/// Applies each step of `plan` at its time (seconds after `started`) until the plan ends or `stop` turns true.
async fn run_steps(
    started: std::time::Instant,
    plan: &[PlannedStep],
    mut stop: watch::Receiver<bool>,
    mut apply: impl AsyncFnMut(Step),
) {
    let started = tokio::time::Instant::from_std(started);
    for planned in plan {
        let due = started + Duration::from_secs_f64(planned.at_secs);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if *stop.borrow() {
            return;
        }
        apply(planned.step).await;
    }
}

/// Records a nemesis operation's completion: the members it hit (by name), its outcome and detail; an
/// indeterminate outcome carries the detail as its error.
fn record_completion(
    recorder: &Recorder,
    f: &str,
    mut value: Value,
    outcome: Outcome,
    names: Vec<String>,
    detail: String,
) {
    if let Value::Object(map) = &mut value {
        map.insert("members".into(), json!(names));
        map.insert("outcome".into(), json!(outcome.name()));
        if !detail.is_empty() {
            map.insert("detail".into(), json!(detail));
        }
    }
    let error = (outcome == Outcome::Indeterminate).then(|| json!(detail));
    recorder.record(OpType::Info, Process::nemesis(), f, value, None, error);
}

/// Runs the wall clock of the member at `port` `offset_ms` ahead (negative: behind) of the system clock.
async fn skew_clock(port: u16, offset_ms: i64) -> anyhow::Result<()> {
    let body = bson::doc! {"configureFailPoint": faultline_engine::failpoint::SKEW_CLOCK, "mode": "alwaysOn",
    "data": {"offsetMillis": offset_ms}};
    crate::cluster::wire::command_ok(port, body, ADMIN_TIMEOUT).await?;
    Ok(())
}

/// Puts the clocks of `members` back to the system clock; returns the members that answered (a member that
/// is down has no skew to reset: a restarted member's clock starts true).
async fn reset_clocks(cluster: &mut Cluster, members: Vec<usize>) -> Vec<usize> {
    let mut reset = Vec::new();
    for index in members {
        let Some(member) = cluster.members.get_mut(index) else {
            continue;
        };
        if member.run_state() != RunState::Running {
            continue;
        }
        let body = bson::doc! {"configureFailPoint": faultline_engine::failpoint::SKEW_CLOCK, "mode": "off"};
        if crate::cluster::wire::command_ok(member.port, body, ADMIN_TIMEOUT)
            .await
            .is_ok()
        {
            reset.push(index);
        }
    }
    reset
}

/// Reads the config from the member at `port`, lets `change` edit its members (returning whether it changed
/// anything), bumps the version and sends `replSetReconfig`. Returns the removed member documents (when the
/// change removed members) or `None` when nothing changed.
async fn reconfigure(
    port: u16,
    change: impl FnOnce(&mut Vec<bson::Bson>) -> bool,
) -> anyhow::Result<Option<Vec<bson::Document>>> {
    use crate::cluster::wire::command_ok;
    let timeout = Duration::from_secs(10);
    let reply = command_ok(port, bson::doc! {"replSetGetConfig": 1, "$db": "admin"}, timeout).await?;
    let mut config = reply.get_document("config")?.clone();
    let before: Vec<bson::Bson> = config.get_array("members")?.clone();
    let mut members = before.clone();
    if !change(&mut members) {
        return Ok(None);
    }
    let removed: Vec<bson::Document> = before
        .iter()
        .filter(|m| !members.contains(m))
        .filter_map(|m| m.as_document().cloned())
        .collect();
    config.insert("members", members);
    config.insert("version", config.get_i32("version")? + 1);
    command_ok(port, bson::doc! {"replSetReconfig": config, "$db": "admin"}, timeout).await?;
    Ok(Some(removed))
}
