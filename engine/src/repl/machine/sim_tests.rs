//! Deterministic simulation of a whole replica set: N `ReplMachine`s, a message queue with random loss,
//! duplication and reordering, random partitions and crash/restarts (persisted term and vote survive), and a
//! toy oplog per member (primaries append, secondaries pull from their chosen sync source and roll back on
//! divergence). One seed fixes everything, so a failure reproduces from its seed.
//!
//! Checked on every step: election safety (one primary per term), commit points never go backwards, every
//! commit point is in a write majority of oplogs when announced, and no committed entry is ever rolled back.
//! After the chaos phase the network heals and a writable primary must emerge.
//!
//! This is a model check of the machine alone: fetching and rollback here are toys, so nothing it finds or
//! misses says anything about the shipped fetcher, rollback, RPCs or storage. Those run under faults in
//! `crate::sim` (`faultline sim`, 300 seeds in `cargo test`), which is the product's simulation; this one
//! stays because it is a hundred times cheaper per seed, so proptest can search many more schedules of the
//! machine's own rules (votes, terms, commit points) and shrink a failure to a small one.

use std::collections::{BTreeMap, BTreeSet};

use bson::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::repl::config::MemberConfig;
use crate::repl::rng::SplitMix64;

const STEP_MS: i64 = 10;

#[derive(Debug, Clone)]
enum Payload {
    HeartbeatRequest(HeartbeatRequest),
    HeartbeatResponse(Box<HeartbeatResponse>),
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),
    UpdatePosition(i64, Vec<MemberPosition>),
    StepUp,
}

#[derive(Debug, Clone)]
struct Message {
    deliver_at: i64,
    from: usize,
    to: usize,
    payload: Payload,
}

struct Node {
    machine: Option<ReplMachine>,
    persisted: PersistedElectionState,
    persisted_commit: OpTime,
    log: Vec<OpTime>,
    data_bearing: bool,
}

struct Faults {
    loss_percent: i64,
    duplicate_percent: i64,
    partition_percent: i64,
    crash_percent: i64,
}

const NO_FAULTS: Faults = Faults {
    loss_percent: 0,
    duplicate_percent: 0,
    partition_percent: 0,
    crash_percent: 0,
};

struct Sim {
    config: ReplSetConfig,
    nodes: Vec<Node>,
    queue: Vec<Message>,
    rng: SplitMix64,
    now: i64,
    last_ts: Timestamp,
    /// Side of the partition each node is on; messages only flow within a side.
    sides: Vec<u8>,
    primaries_by_term: BTreeMap<i64, usize>,
    committed: BTreeSet<OpTime>,
    write_percent: i64,
}

fn host(id: usize) -> String {
    format!("n{id}:27017")
}

fn sim_config(members: Vec<MemberConfig>) -> ReplSetConfig {
    let mut config = ReplSetConfig::new("sim", members);
    config.term = 0;
    config.settings.election_timeout_millis = 1_000;
    config.settings.heartbeat_interval_millis = 200;
    config.settings.heartbeat_timeout_secs = 2;
    config.settings.catch_up_timeout_millis = 2_000;
    config
}

fn data_members(count: usize) -> Vec<MemberConfig> {
    (0..count).map(|id| MemberConfig::new(id as i32, host(id))).collect()
}

impl Sim {
    fn new(config: ReplSetConfig, seed: u64) -> Self {
        let mut sim = Self {
            nodes: Vec::new(),
            queue: Vec::new(),
            rng: SplitMix64::new(seed),
            now: 0,
            last_ts: Timestamp { time: 0, increment: 0 },
            sides: vec![0; config.members.len()],
            primaries_by_term: BTreeMap::new(),
            committed: BTreeSet::new(),
            write_percent: 10,
            config,
        };
        for index in 0..sim.config.members.len() {
            let data_bearing = sim.config.members[index].is_data_bearing();
            sim.nodes.push(Node {
                machine: None,
                persisted: PersistedElectionState {
                    term: 0,
                    last_vote: None,
                },
                persisted_commit: OpTime::null(),
                log: Vec::new(),
                data_bearing,
            });
            sim.restart(index);
        }
        sim
    }

    fn restart(&mut self, index: usize) {
        let node = &self.nodes[index];
        let last = node.log.last().copied().unwrap_or_else(OpTime::null);
        let start = MachineStart {
            config: self.config.clone(),
            self_host: host(index),
            persisted: node.persisted,
            applied: last,
            durable: last,
            commit_point: node.persisted_commit,
            seed: self.rng.next_u64(),
            data: Default::default(),
        };
        self.nodes[index].machine = Some(ReplMachine::new(start, self.now));
    }

    fn connected(&self, from: usize, to: usize) -> bool {
        self.sides[from] == self.sides[to] && self.nodes[from].machine.is_some() && self.nodes[to].machine.is_some()
    }

    fn send(&mut self, from: usize, to: usize, payload: Payload, faults: &Faults) {
        if self.rng.below(100) < faults.loss_percent {
            return;
        }
        let copies = if self.rng.below(100) < faults.duplicate_percent {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let deliver_at = self.now + 1 + self.rng.below(30);
            self.queue.push(Message {
                deliver_at,
                from,
                to,
                payload: payload.clone(),
            });
        }
    }

    fn next_ts(&mut self) -> Timestamp {
        let secs = u32::try_from(self.now / 1000).unwrap_or(u32::MAX);
        self.last_ts = if secs > self.last_ts.time {
            Timestamp {
                time: secs,
                increment: 1,
            }
        } else {
            Timestamp {
                time: self.last_ts.time,
                increment: self.last_ts.increment + 1,
            }
        };
        self.last_ts
    }

    fn feed(&mut self, index: usize, event: Event, faults: &Faults) {
        let Some(machine) = self.nodes[index].machine.as_mut() else {
            return;
        };
        let actions = machine.handle(self.now, event);
        self.carry_out(index, actions, faults);
    }

    fn carry_out(&mut self, index: usize, actions: Vec<Action>, faults: &Faults) {
        for action in actions {
            match action {
                Action::PersistElectionState(state) => self.nodes[index].persisted = state,
                Action::SendHeartbeat { to, request } => {
                    self.send(index, to as usize, Payload::HeartbeatRequest(request), faults)
                }
                Action::ReplyHeartbeat { to, response } => {
                    self.send(index, to as usize, Payload::HeartbeatResponse(response), faults)
                }
                Action::SendVoteRequest { to, request } => {
                    self.send(index, to as usize, Payload::VoteRequest(request), faults)
                }
                Action::ReplyVote { to, response } => {
                    self.send(index, to as usize, Payload::VoteResponse(response), faults)
                }
                Action::SendUpdatePosition { to, term, positions } => {
                    self.send(index, to as usize, Payload::UpdatePosition(term, positions), faults)
                }
                Action::SendStepUp { to } => self.send(index, to as usize, Payload::StepUp, faults),
                Action::TransitionTo {
                    state: MemberState::Primary,
                } => self.record_primary(index),
                Action::CompleteStepUp { term } => self.write_noop(index, term, faults),
                Action::CommitPointAdvanced { optime } => self.check_commit(index, optime),
                _ => {}
            }
        }
    }

    fn record_primary(&mut self, index: usize) {
        let term = self.nodes[index].machine.as_ref().map_or(-1, ReplMachine::term);
        let previous = self.primaries_by_term.insert(term, index);
        assert!(
            previous.is_none_or(|other| other == index),
            "election safety: {previous:?} and {index} both primary in term {term}"
        );
    }

    fn write_noop(&mut self, index: usize, term: i64, faults: &Faults) {
        let noop = OpTime {
            ts: self.next_ts(),
            term,
        };
        self.nodes[index].log.push(noop);
        self.feed(index, Event::StepUpCompleted { term, noop }, faults);
        self.feed(
            index,
            Event::LocalDurable {
                optime: noop,
                wall_ms: self.now,
            },
            faults,
        );
    }

    fn check_commit(&mut self, index: usize, optime: OpTime) {
        let node = &self.nodes[index];
        assert!(optime > node.persisted_commit, "commit point went backwards on {index}");
        assert!(
            node.log.contains(&optime),
            "node {index} committed {optime} that is not in its oplog"
        );
        let holders = self
            .nodes
            .iter()
            .filter(|node| node.data_bearing && node.log.contains(&optime))
            .count();
        assert!(
            holders >= self.config.write_majority_count(),
            "{optime} committed on {index} but only {holders} members have it"
        );
        self.nodes[index].persisted_commit = optime;
        self.committed.insert(optime);
    }

    fn deliver_due(&mut self, faults: &Faults) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|message| message.deliver_at <= now);
        self.queue = later;
        for message in due {
            if !self.connected(message.from, message.to) {
                continue;
            }
            let from = message.from as i32;
            let event = match message.payload {
                Payload::HeartbeatRequest(request) => Event::HeartbeatRequest { from, request },
                Payload::HeartbeatResponse(response) => Event::HeartbeatResponse {
                    from,
                    response,
                    rtt_ms: 1 + self.rng.below(20),
                },
                Payload::VoteRequest(request) => Event::VoteRequest { from, request },
                Payload::VoteResponse(response) => Event::VoteResponse { from, response },
                Payload::UpdatePosition(term, positions) => Event::UpdatePosition {
                    from,
                    term: Some(term),
                    positions,
                },
                Payload::StepUp => Event::StepUpRequested { from },
            };
            self.feed(message.to, event, faults);
        }
    }

    /// The shell's fetcher and applier: pull a few entries from the sync source, or roll back on divergence.
    fn replicate(&mut self, index: usize, faults: &Faults) {
        let Some(machine) = self.nodes[index].machine.as_ref() else {
            return;
        };
        let Some(source) = machine.sync_source().map(|id| id as usize) else {
            return;
        };
        let is_primary = machine.state().is_primary();
        if !self.connected(index, source) {
            return;
        }
        // As the shell's fetcher does (`learn_metadata`): a source in an older term may be a deposed primary
        // whose new entries will roll back, so nothing is fetched from it.
        let our_term = machine.term();
        if self.nodes[source].machine.as_ref().is_some_and(|m| m.term() < our_term) {
            return;
        }
        let ours = self.nodes[index].log.clone();
        let theirs = self.nodes[source].log.clone();
        let common = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        if common < ours.len() {
            if is_primary || theirs.last() <= ours.last() {
                return;
            }
            self.roll_back(index, common, faults);
            return;
        }
        let batch: Vec<OpTime> = theirs.iter().skip(common).take(5).copied().collect();
        if let Some(last) = batch.last().copied() {
            self.nodes[index].log.extend(batch);
            self.feed(
                index,
                Event::LocalApplied {
                    optime: last,
                    wall_ms: self.now,
                },
                faults,
            );
            self.feed(
                index,
                Event::LocalDurable {
                    optime: last,
                    wall_ms: self.now,
                },
                faults,
            );
        }
    }

    fn roll_back(&mut self, index: usize, common: usize, faults: &Faults) {
        let removed: Vec<OpTime> = self.nodes[index].log.drain(common..).collect();
        for optime in &removed {
            assert!(
                !self.committed.contains(optime),
                "node {index} rolled back committed entry {optime}"
            );
        }
        let common_point = self.nodes[index].log.last().copied().unwrap_or_else(OpTime::null);
        let min_valid = self.nodes[index].log.last().copied().unwrap_or_else(OpTime::null);
        self.feed(
            index,
            Event::RolledBack {
                common_point,
                min_valid,
            },
            faults,
        );
    }

    fn write_on_primaries(&mut self, faults: &Faults) {
        for index in 0..self.nodes.len() {
            let writable = self.nodes[index]
                .machine
                .as_ref()
                .is_some_and(ReplMachine::is_writable_primary);
            if writable && self.rng.below(100) < self.write_percent {
                let term = self.nodes[index].machine.as_ref().map_or(0, ReplMachine::term);
                let optime = OpTime {
                    ts: self.next_ts(),
                    term,
                };
                self.nodes[index].log.push(optime);
                self.feed(
                    index,
                    Event::LocalApplied {
                        optime,
                        wall_ms: self.now,
                    },
                    faults,
                );
                self.feed(
                    index,
                    Event::LocalDurable {
                        optime,
                        wall_ms: self.now,
                    },
                    faults,
                );
            }
        }
    }

    fn inject_faults(&mut self, faults: &Faults) {
        let count = self.nodes.len();
        if self.rng.below(1000) < faults.partition_percent {
            self.sides = (0..count).map(|_| self.rng.below(2) as u8).collect();
        }
        if self.rng.below(1000) < faults.partition_percent {
            self.sides = vec![0; count];
        }
        if self.rng.below(1000) < faults.crash_percent {
            let victim = self.rng.below(count as i64) as usize;
            if self.nodes[victim].machine.is_some() {
                self.nodes[victim].machine = None;
            } else {
                self.restart(victim);
            }
        }
    }

    fn heal(&mut self) {
        self.sides = vec![0; self.nodes.len()];
        for index in 0..self.nodes.len() {
            if self.nodes[index].machine.is_none() {
                self.restart(index);
            }
        }
    }

    fn step(&mut self, faults: &Faults) {
        self.now += STEP_MS;
        self.inject_faults(faults);
        self.deliver_due(faults);
        for index in 0..self.nodes.len() {
            self.feed(index, Event::Tick, faults);
            self.replicate(index, faults);
        }
        self.write_on_primaries(faults);
    }

    fn run(&mut self, millis: i64, faults: &Faults) {
        let end = self.now + millis;
        while self.now < end {
            self.step(faults);
        }
    }

    fn writable_primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|index| {
                self.nodes[*index]
                    .machine
                    .as_ref()
                    .is_some_and(ReplMachine::is_writable_primary)
            })
            .collect()
    }

    fn state_of(&self, index: usize) -> Option<MemberState> {
        self.nodes[index].machine.as_ref().map(ReplMachine::state)
    }

    /// Runs healthy until exactly one writable primary is known to everyone, or `millis` pass.
    fn settle_primary(&mut self, millis: i64) -> Option<usize> {
        let end = self.now + millis;
        while self.now < end {
            self.step(&NO_FAULTS);
            if let [primary] = self.writable_primaries()[..] {
                let agreed = self.nodes.iter().all(|node| {
                    node.machine
                        .as_ref()
                        .is_some_and(|machine| machine.primary_id() == Some(primary as i32))
                });
                if agreed {
                    return Some(primary);
                }
            }
        }
        None
    }
}

fn chaos() -> Faults {
    Faults {
        loss_percent: 10,
        duplicate_percent: 5,
        partition_percent: 3,
        crash_percent: 3,
    }
}

fn config_for_seed(seed: u64) -> ReplSetConfig {
    let members = match seed % 3 {
        0 => data_members(3),
        1 => data_members(5),
        _ => {
            let mut members = data_members(2);
            members.push(MemberConfig::arbiter(2, host(2)));
            members
        }
    };
    sim_config(members)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Under loss, duplication, reordering, partitions and crashes: the per-step assertions hold (one primary
    /// per term, commit points monotonic and majority-held, committed entries never rolled back); after
    /// healing, one writable primary emerges that every member follows.
    #[test]
    fn chaos_then_heal(seed in any::<u64>()) {
        let mut sim = Sim::new(config_for_seed(seed), seed);
        sim.run(30_000, &chaos());
        sim.heal();
        let primary = sim.settle_primary(20_000);
        prop_assert!(primary.is_some(), "no primary emerged after healing (seed {seed})");
        let before = sim.committed.len();
        sim.run(3_000, &NO_FAULTS);
        prop_assert!(sim.committed.len() > before, "the healed set commits new writes (seed {seed})");
    }

    /// With priorities, the highest-priority member ends up primary once it is caught up.
    #[test]
    fn highest_priority_member_becomes_primary(seed in any::<u64>()) {
        let mut members = data_members(3);
        members[2].priority = 5.0;
        let mut sim = Sim::new(sim_config(members), seed);
        sim.run(10_000, &chaos());
        sim.heal();
        sim.run(15_000, &NO_FAULTS);
        let primary = sim.settle_primary(10_000);
        prop_assert_eq!(primary, Some(2), "seed {}", seed);
    }
}

#[test]
fn lone_member_of_three_steps_down_and_the_others_elect() {
    for seed in 0..8 {
        let mut sim = Sim::new(sim_config(data_members(3)), seed);
        let old = sim.settle_primary(10_000).expect("initial primary");
        sim.sides = (0..3).map(|index| u8::from(index == old)).collect();
        sim.run(4_000, &NO_FAULTS);
        assert_eq!(
            sim.state_of(old),
            Some(MemberState::Secondary),
            "seed {seed}: isolated primary stepped down"
        );
        let new = sim.writable_primaries();
        assert_eq!(new.len(), 1, "seed {seed}: the majority side elected one primary");
        assert_ne!(new[0], old);
        sim.heal();
        let final_primary = sim.settle_primary(10_000);
        assert!(final_primary.is_some(), "seed {seed}: the old primary rejoined");
    }
}

#[test]
fn last_survivor_of_three_is_secondary() {
    let mut sim = Sim::new(sim_config(data_members(3)), 99);
    let primary = sim.settle_primary(10_000).expect("initial primary");
    for index in (0..3).filter(|index| *index != primary) {
        sim.nodes[index].machine = None;
    }
    sim.run(5_000, &NO_FAULTS);
    assert_eq!(sim.state_of(primary), Some(MemberState::Secondary));
    assert!(sim.writable_primaries().is_empty());
}

#[test]
fn step_down_hands_over_to_a_caught_up_secondary() {
    let mut sim = Sim::new(sim_config(data_members(3)), 5);
    let old = sim.settle_primary(10_000).expect("initial primary");
    sim.write_percent = 0;
    sim.run(2_000, &NO_FAULTS);
    let now = sim.now;
    let actions = sim.nodes[old]
        .machine
        .as_mut()
        .expect("up")
        .step_down(now, 1, 60, 10, false)
        .expect("accepted");
    sim.carry_out(old, actions, &NO_FAULTS);
    let new = sim.settle_primary(5_000).expect("a new primary");
    assert_ne!(new, old);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut sim = Sim::new(config_for_seed(seed), seed);
        sim.run(10_000, &chaos());
        (
            sim.primaries_by_term.clone(),
            sim.committed.clone(),
            sim.nodes.iter().map(|n| n.log.clone()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(17), run(17));
}

/// A seed `chaos_then_heal` drew in CI on 2026-12-03, on which node 2 rolled back a committed entry (five
/// members under chaos). The shell's fetcher refuses a sync source in an older term (`member::fetcher`
/// `learn_metadata`); the simulation's `replicate` did not, so members already in a newer term could fetch a
/// deposed primary's new entries and let it count them as majority-held. With the same refusal in
/// `replicate` the seed passes; without it, it fails.
#[test]
fn a_member_in_a_newer_term_never_fetches_from_a_deposed_primary_seed_7094205582101266282() {
    let seed = 7_094_205_582_101_266_282_u64;
    let mut sim = Sim::new(config_for_seed(seed), seed);
    sim.run(30_000, &chaos());
}
