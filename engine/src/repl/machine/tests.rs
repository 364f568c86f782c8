//! Unit tests of the machine's rules, one scenario each, driven by hand-made events (no sockets, no clock).

use super::*;
use crate::repl::config::MemberConfig;

#[path = "oplog_window_tests.rs"]
mod oplog_window;

const ELECTION_TIMEOUT: i64 = 1_000;
/// Past any jittered election deadline (timeout + 15 %).
const AFTER_TIMEOUT: i64 = 1_200;

fn host(id: i32) -> String {
    format!("h{id}:1")
}

fn config_with(members: Vec<MemberConfig>) -> ReplSetConfig {
    let mut config = ReplSetConfig::new("rs0", members);
    config.term = 0;
    config.settings.election_timeout_millis = ELECTION_TIMEOUT;
    config.settings.heartbeat_interval_millis = 200;
    config.settings.heartbeat_timeout_secs = 2;
    config
}

fn config(n: i32) -> ReplSetConfig {
    config_with((0..n).map(|id| MemberConfig::new(id, host(id))).collect())
}

fn start(config: &ReplSetConfig, id: i32, term: i64, applied: OpTime) -> ReplMachine {
    start_on(config, id, term, applied, StartData::Consistent)
}

/// A member starting on data a rollback left as `data`.
fn start_on(config: &ReplSetConfig, id: i32, term: i64, applied: OpTime, data: StartData) -> ReplMachine {
    let start = MachineStart {
        config: config.clone(),
        self_host: host(id),
        persisted: PersistedElectionState { term, last_vote: None },
        applied,
        durable: applied,
        commit_point: OpTime::null(),
        seed: 7,
        data,
    };
    ReplMachine::new(start, 0)
}

fn op(secs: u32, term: i64) -> OpTime {
    OpTime::new(secs, 0, term)
}

fn heartbeat_reply(machine: &ReplMachine, from: i32, state: MemberState, term: i64, applied: OpTime) -> Event {
    let response = HeartbeatResponse {
        set_name: "rs0".into(),
        state,
        term,
        sender_id: from,
        primary_id: (state == MemberState::Primary).then_some(from),
        election_optime: None,
        applied,
        durable: applied,
        applied_wall_ms: 0,
        durable_wall_ms: 0,
        sync_source_id: None,
        config_version: machine.config().version,
        config_term: machine.config().term,
        config: None,
        commit_point: OpTime::null(),
        electable: state == MemberState::Secondary,
        message: String::new(),
    };
    Event::HeartbeatResponse {
        from,
        response: Box::new(response),
        rtt_ms: 5,
    }
}

fn vote_request(machine: &ReplMachine, candidate: i32, term: i64, dry_run: bool, applied: OpTime) -> Event {
    let request = VoteRequest {
        set_name: "rs0".into(),
        dry_run,
        term,
        candidate_id: candidate,
        config_version: machine.config().version,
        config_term: machine.config().term,
        last_applied: applied,
    };
    Event::VoteRequest {
        from: candidate,
        request,
    }
}

fn grant(term: i64, dry_run: bool) -> VoteResponse {
    VoteResponse {
        term,
        vote_granted: true,
        reason: String::new(),
        dry_run,
        request_term: term,
    }
}

fn vote_reply(actions: &[Action]) -> VoteResponse {
    actions
        .iter()
        .find_map(|action| match action {
            Action::ReplyVote { response, .. } => Some(response.clone()),
            _ => None,
        })
        .expect("a vote reply")
}

fn vote_requests(actions: &[Action]) -> Vec<(i32, VoteRequest)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::SendVoteRequest { to, request } => Some((*to, request.clone())),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.contains(wanted)
}

fn position_of(actions: &[Action], predicate: impl Fn(&Action) -> bool) -> Option<usize> {
    actions.iter().position(predicate)
}

/// Records `optime` as applied and durable here.
fn applied_and_durable(machine: &mut ReplMachine, now: i64, optime: OpTime) {
    machine.handle(now, Event::LocalApplied { optime, wall_ms: 0 });
    machine.handle(now, Event::LocalDurable { optime, wall_ms: 0 });
}

/// One member's position, applied and durable at `optime`.
fn member_position(member_id: i32, optime: OpTime) -> MemberPosition {
    MemberPosition {
        member_id,
        config_version: 1,
        applied: optime,
        applied_wall_ms: 0,
        durable: optime,
        durable_wall_ms: 0,
    }
}

/// Member 0 in term 1 stands after its election timeout and wins term 2 with member 1's votes.
fn win_term_2(machine: &mut ReplMachine) {
    machine.handle(AFTER_TIMEOUT, Event::Tick);
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: grant(1, true),
        },
    );
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: grant(2, false),
        },
    );
}

/// Drives member 0 of `config` through a dry run and a real election won with member 1's votes; returns it as
/// a writable primary (the new-primary no-op at `noop`).
fn elect(config: &ReplSetConfig, applied: OpTime, noop: OpTime) -> ReplMachine {
    let mut machine = start(config, 0, 1, applied);
    win_term_2(&mut machine);
    assert!(machine.state().is_primary());
    machine.handle(AFTER_TIMEOUT, Event::StepUpCompleted { term: 2, noop });
    machine.handle(
        AFTER_TIMEOUT,
        Event::LocalDurable {
            optime: noop,
            wall_ms: 0,
        },
    );
    assert!(machine.is_writable_primary());
    machine
}

#[test]
fn lone_voter_elects_itself_at_once() {
    let mut machine = start(&config(1), 0, 0, OpTime::null());
    let actions = machine.handle(0, Event::Tick);
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Primary
        }
    ));
    assert!(has(&actions, &Action::CompleteStepUp { term: 1 }));
    let persist = position_of(&actions, |a| matches!(a, Action::PersistElectionState(_)));
    assert!(persist.is_some(), "the self-vote is persisted");
    assert!(!machine.is_writable_primary(), "not writable before the no-op");
    let actions = machine.handle(
        1,
        Event::StepUpCompleted {
            term: 1,
            noop: op(1, 1),
        },
    );
    assert!(has(&actions, &Action::AcceptWrites { term: 1 }));
    assert!(machine.is_writable_primary());
    assert_eq!(machine.commit_point(), OpTime::null(), "durable no-op needed first");
    let actions = machine.handle(
        2,
        Event::LocalDurable {
            optime: op(1, 1),
            wall_ms: 2,
        },
    );
    assert!(has(&actions, &Action::CommitPointAdvanced { optime: op(1, 1) }));
}

#[test]
fn election_timer_starts_a_dry_run_without_bumping_the_term() {
    let mut machine = start(&config(3), 0, 4, op(1, 4));
    assert!(vote_requests(&machine.handle(ELECTION_TIMEOUT - 1, Event::Tick)).is_empty());
    let actions = machine.handle(AFTER_TIMEOUT, Event::Tick);
    let requests = vote_requests(&actions);
    assert_eq!(requests.iter().map(|(to, _)| *to).collect::<Vec<_>>(), [1, 2]);
    assert!(
        requests
            .iter()
            .all(|(_, request)| request.dry_run && request.term == 4 && request.candidate_id == 0)
    );
    assert_eq!(machine.term(), 4);
    assert!(!actions.iter().any(|a| matches!(a, Action::PersistElectionState(_))));
}

#[test]
fn dry_run_majority_starts_a_real_election_persisting_the_vote_first() {
    let mut machine = start(&config(3), 0, 4, op(1, 4));
    machine.handle(AFTER_TIMEOUT, Event::Tick);
    let actions = machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 2,
            response: grant(4, true),
        },
    );
    assert_eq!(machine.term(), 5);
    let persist = position_of(&actions, |a| {
        *a == Action::PersistElectionState(PersistedElectionState {
            term: 5,
            last_vote: Some(LastVote {
                term: 5,
                candidate_id: 0,
            }),
        })
    });
    let first_request = position_of(&actions, |a| matches!(a, Action::SendVoteRequest { .. }));
    assert!(persist.expect("persist") < first_request.expect("vote request"));
    assert!(
        vote_requests(&actions)
            .iter()
            .all(|(_, request)| !request.dry_run && request.term == 5)
    );
}

#[test]
fn a_refused_or_stale_vote_does_not_count() {
    let mut machine = start(&config(5), 0, 1, op(1, 1));
    machine.handle(AFTER_TIMEOUT, Event::Tick);
    let refused = VoteResponse {
        vote_granted: false,
        ..grant(1, true)
    };
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: refused,
        },
    );
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 2,
            response: grant(0, true),
        },
    );
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 3,
            response: grant(1, false),
        },
    );
    assert_eq!(machine.term(), 1, "no majority of matching grants yet");
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 3,
            response: grant(1, true),
        },
    );
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 3,
            response: grant(1, true),
        },
    );
    assert_eq!(machine.term(), 1, "a duplicated grant counts once");
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 4,
            response: grant(1, true),
        },
    );
    assert_eq!(machine.term(), 2);
}

#[test]
fn a_higher_term_in_a_vote_reply_ends_the_candidacy() {
    let mut machine = start(&config(3), 0, 1, op(1, 1));
    machine.handle(AFTER_TIMEOUT, Event::Tick);
    let newer = VoteResponse {
        term: 9,
        vote_granted: false,
        reason: "x".into(),
        dry_run: true,
        request_term: 1,
    };
    let actions = machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: newer,
        },
    );
    assert_eq!(machine.term(), 9);
    assert!(has(
        &actions,
        &Action::PersistElectionState(PersistedElectionState {
            term: 9,
            last_vote: None
        })
    ));
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 2,
            response: grant(1, true),
        },
    );
    assert_eq!(machine.term(), 9, "the old dry run is gone");
}

#[test]
fn winning_enters_catch_up_until_the_newest_optime_seen() {
    let mut machine = start(&config(3), 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 1, op(8, 1)));
    machine.handle(AFTER_TIMEOUT, Event::Tick);
    machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: grant(1, true),
        },
    );
    let actions = machine.handle(
        AFTER_TIMEOUT,
        Event::VoteResponse {
            from: 1,
            response: grant(2, false),
        },
    );
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Primary
        }
    ));
    assert!(
        !has(&actions, &Action::CompleteStepUp { term: 2 }),
        "member 2 is ahead: catch up first"
    );
    assert_eq!(machine.sync_source(), Some(2), "a catching-up primary keeps fetching");
    let heartbeats = actions
        .iter()
        .filter(|a| matches!(a, Action::SendHeartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2, "asks everyone for their newest optime");
    let actions = machine.handle(
        AFTER_TIMEOUT + 2,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 2, op(5, 1)),
    );
    assert!(
        !has(&actions, &Action::CompleteStepUp { term: 2 }),
        "member 2 not heard from yet"
    );
    let actions = machine.handle(
        AFTER_TIMEOUT + 3,
        heartbeat_reply(&machine, 2, MemberState::Secondary, 2, op(8, 1)),
    );
    assert!(!has(&actions, &Action::CompleteStepUp { term: 2 }), "member 2 is ahead");
    let actions = machine.handle(
        AFTER_TIMEOUT + 5,
        Event::LocalApplied {
            optime: op(8, 1),
            wall_ms: 0,
        },
    );
    assert!(has(&actions, &Action::CompleteStepUp { term: 2 }));
    assert!(has(&actions, &Action::SyncSourceChanged { member_id: None }));
}

/// The old primary was ahead in its last heartbeat before the election, then died: its stale report must
/// not become the catch-up target (that made a new primary refuse writes until a 60 s timeout); once every
/// member answered or failed since the win and no reachable one is ahead, catch-up ends.
#[test]
fn catch_up_ignores_reports_from_before_the_win_and_dead_members() {
    let mut machine = start(&config(3), 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Primary, 1, op(8, 1)));
    win_term_2(&mut machine);
    assert_eq!(machine.state(), MemberState::Primary);
    let actions = machine.handle(
        AFTER_TIMEOUT + 2,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 2, op(5, 1)),
    );
    assert!(
        !has(&actions, &Action::CompleteStepUp { term: 2 }),
        "member 2 not heard from since the win"
    );
    let actions = machine.handle(
        AFTER_TIMEOUT + 4,
        Event::HeartbeatFailed {
            to: 2,
            message: "connection refused".into(),
        },
    );
    assert!(
        has(&actions, &Action::CompleteStepUp { term: 2 }),
        "no reachable member is ahead: catch-up is over"
    );
}

/// A member that was ahead and then lost its unsynced tail in a crash answers, after its restart, with an
/// older optime than it once reported. The catch-up target is what each member's heartbeat says now (mongod's
/// `getHeartbeatAppliedOpTime`), not the newest it ever said: waiting for the lost entries kept a new primary
/// from accepting writes for ever (`faultline sim --seed 1821 --steps 40`, whose default
/// `catchUpTimeoutMillis` is -1).
#[test]
fn catch_up_targets_what_members_report_now_not_what_they_lost() {
    let mut machine = start(&config(3), 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 1, op(8, 1)));
    win_term_2(&mut machine);
    assert_eq!(machine.state(), MemberState::Primary);
    machine.handle(
        AFTER_TIMEOUT + 2,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 2, op(5, 1)),
    );
    let actions = machine.handle(
        AFTER_TIMEOUT + 3,
        heartbeat_reply(&machine, 2, MemberState::Secondary, 2, op(5, 1)),
    );
    assert!(
        has(&actions, &Action::CompleteStepUp { term: 2 }),
        "member 2 now has what we have: {actions:?}"
    );
}

#[test]
fn catch_up_ends_at_its_timeout() {
    let mut config = config(3);
    config.settings.catch_up_timeout_millis = 300;
    let mut machine = start(&config, 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 1, op(8, 1)));
    win_term_2(&mut machine);
    assert!(!has(
        &machine.handle(AFTER_TIMEOUT + 299, Event::Tick),
        &Action::CompleteStepUp { term: 2 }
    ));
    assert!(has(
        &machine.handle(AFTER_TIMEOUT + 300, Event::Tick),
        &Action::CompleteStepUp { term: 2 }
    ));
}

#[test]
fn voter_grants_and_persists_before_replying() {
    let mut machine = start(&config(3), 1, 3, op(5, 3));
    let actions = machine.handle(10, vote_request(&machine, 0, 4, false, op(5, 3)));
    let persist = position_of(&actions, |a| matches!(a, Action::PersistElectionState(_))).expect("persist");
    let reply = position_of(&actions, |a| matches!(a, Action::ReplyVote { .. })).expect("reply");
    assert!(persist < reply);
    assert!(vote_reply(&actions).vote_granted);
    assert_eq!(
        machine.persisted_election_state().last_vote,
        Some(LastVote {
            term: 4,
            candidate_id: 0
        })
    );
    let again = machine.handle(11, vote_request(&machine, 0, 4, false, op(5, 3)));
    assert!(
        vote_reply(&again).vote_granted,
        "a duplicated request from the same candidate"
    );
}

#[test]
fn voter_refusals() {
    let mut machine = start(&config(3), 1, 3, op(5, 3));
    let stale_term = machine.handle(10, vote_request(&machine, 0, 2, false, op(9, 3)));
    assert!(!vote_reply(&stale_term).vote_granted);
    let stale_data = machine.handle(10, vote_request(&machine, 0, 4, false, op(4, 3)));
    assert!(!vote_reply(&stale_data).vote_granted);
    assert_eq!(
        machine.term(),
        4,
        "a real request's higher term is adopted even when refused"
    );
    machine.handle(10, vote_request(&machine, 2, 5, false, op(5, 3)));
    let second = machine.handle(10, vote_request(&machine, 0, 5, false, op(6, 3)));
    assert!(!vote_reply(&second).vote_granted, "already voted for 2 in term 5");
    let dry = machine.handle(10, vote_request(&machine, 0, 5, true, op(6, 3)));
    assert!(vote_reply(&dry).vote_granted, "dry runs ignore the vote already cast");
    assert!(
        !dry.iter().any(|a| matches!(a, Action::PersistElectionState(_))),
        "dry runs persist nothing"
    );
    let Event::VoteRequest { from, mut request } = vote_request(&machine, 0, 6, false, op(6, 3)) else {
        unreachable!()
    };
    request.config_version += 1;
    let wrong_config = machine.handle(
        10,
        Event::VoteRequest {
            from,
            request: request.clone(),
        },
    );
    assert!(!vote_reply(&wrong_config).vote_granted);
    request.config_version -= 1;
    request.set_name = "other".into();
    let wrong_set = machine.handle(10, Event::VoteRequest { from, request });
    assert!(!vote_reply(&wrong_set).vote_granted);
}

#[test]
fn non_voters_refuse_to_vote() {
    let mut members: Vec<_> = (0..3).map(|id| MemberConfig::new(id, host(id))).collect();
    members.push(MemberConfig {
        votes: 0,
        priority: 0.0,
        ..MemberConfig::new(3, host(3))
    });
    let mut machine = start(&config_with(members), 3, 1, op(1, 1));
    let actions = machine.handle(10, vote_request(&machine, 0, 2, false, op(1, 1)));
    assert!(!vote_reply(&actions).vote_granted);
}

#[test]
fn arbiter_refuses_while_it_sees_a_healthy_primary_of_equal_priority() {
    let members = vec![
        MemberConfig::new(0, host(0)),
        MemberConfig::new(1, host(1)),
        MemberConfig::arbiter(2, host(2)),
    ];
    let config = config_with(members);
    let mut arbiter = start(&config, 2, 1, OpTime::null());
    assert_eq!(arbiter.state(), MemberState::Arbiter);
    arbiter.handle(10, heartbeat_reply(&arbiter, 0, MemberState::Primary, 1, op(3, 1)));
    let refused = arbiter.handle(20, vote_request(&arbiter, 1, 2, true, op(3, 1)));
    assert!(!vote_reply(&refused).vote_granted);
    arbiter.handle(3_000, Event::Tick);
    let granted = arbiter.handle(3_000, vote_request(&arbiter, 1, 2, true, op(3, 1)));
    assert!(vote_reply(&granted).vote_granted, "the primary went DOWN");
    assert!(
        vote_requests(&arbiter.handle(50_000, Event::Tick)).is_empty(),
        "arbiters never stand"
    );
}

#[test]
fn priority_zero_and_non_voters_never_stand() {
    let members = vec![
        MemberConfig::new(0, host(0)),
        MemberConfig {
            priority: 0.0,
            ..MemberConfig::new(1, host(1))
        },
        MemberConfig {
            votes: 0,
            priority: 0.0,
            ..MemberConfig::new(2, host(2))
        },
    ];
    let config = config_with(members);
    for id in [1, 2] {
        let mut machine = start(&config, id, 1, op(1, 1));
        assert!(vote_requests(&machine.handle(50_000, Event::Tick)).is_empty());
        machine.handle(50_001, Event::StepUpRequested { from: 0 });
        assert_eq!(machine.term(), 1);
    }
}

#[test]
fn primary_steps_down_on_a_higher_term() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    let actions = primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 7, op(2, 2)));
    assert_eq!(primary.term(), 7);
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Secondary
        }
    ));
    assert!(!primary.is_writable_primary());
    assert!(has(
        &actions,
        &Action::PersistElectionState(PersistedElectionState {
            term: 7,
            last_vote: primary.last_vote
        })
    ));
}

#[test]
fn primary_steps_down_without_a_majority_and_stays_up_with_one() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    let mut now = AFTER_TIMEOUT;
    for _ in 0..5 {
        now += 400;
        primary.handle(now, heartbeat_reply(&primary, 2, MemberState::Secondary, 2, op(2, 2)));
        primary.handle(now, Event::Tick);
        assert!(primary.is_writable_primary(), "member 2 keeps answering at {now}");
    }
    now += ELECTION_TIMEOUT;
    let actions = primary.handle(now, Event::Tick);
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Secondary
        }
    ));
    assert_eq!(primary.primary_id(), None);
}

#[test]
fn silent_members_go_down_and_a_silent_primary_is_forgotten() {
    let mut machine = start(&config(3), 1, 1, op(1, 1));
    machine.handle(100, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(1, 1)));
    assert_eq!(machine.primary_id(), Some(0));
    machine.handle(2_099, Event::Tick);
    assert_eq!(machine.status().members[0].state, MemberState::Primary);
    machine.handle(2_100, Event::Tick);
    let status = machine.status();
    assert_eq!(
        (status.members[0].state, status.members[0].healthy),
        (MemberState::Down, false)
    );
    assert_eq!(status.members[2].state, MemberState::Down, "never heard from");
    assert_eq!(machine.primary_id(), None);
}

#[test]
fn heartbeats_go_out_on_schedule() {
    let mut machine = start(&config(3), 0, 1, op(1, 1));
    let count = |actions: Vec<Action>| {
        actions
            .iter()
            .filter(|a| matches!(a, Action::SendHeartbeat { .. }))
            .count()
    };
    assert_eq!(count(machine.handle(0, Event::Tick)), 2);
    assert_eq!(count(machine.handle(199, Event::Tick)), 0);
    assert_eq!(count(machine.handle(200, Event::Tick)), 2);
}

#[test]
fn commit_point_needs_a_write_majority_in_the_current_term() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    assert_eq!(primary.commit_point(), OpTime::null());
    applied_and_durable(&mut primary, 1_300, op(3, 2));
    assert_eq!(primary.commit_point(), OpTime::null(), "only the primary has it");
    let positions = vec![member_position(1, op(2, 2))];
    let actions = primary.handle(
        1_310,
        Event::UpdatePosition {
            from: 1,
            term: Some(2),
            positions,
        },
    );
    assert!(has(&actions, &Action::CommitPointAdvanced { optime: op(2, 2) }));
    primary.handle(1_320, heartbeat_reply(&primary, 2, MemberState::Secondary, 2, op(3, 2)));
    assert_eq!(primary.commit_point(), op(3, 2));
}

/// A member that voted in a newer term reports a position with that term: the old primary must step down
/// rather than count it. Counted, it made a write majority-committed that the newer primary (elected without
/// it) did not have, and a member holding that commit point later stopped fatally rather than roll it back
/// (`faultline sim --seed 138 --steps 80`, once sync sources preferred the primary). mongod reads the
/// reporter's term from `$replData` before the positions.
#[test]
fn a_position_report_from_a_newer_term_deposes_instead_of_committing() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    applied_and_durable(&mut primary, 1_300, op(3, 2));
    let positions = vec![member_position(1, op(3, 2))];
    let actions = primary.handle(
        1_310,
        Event::UpdatePosition {
            from: 1,
            term: Some(3),
            positions,
        },
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::CommitPointAdvanced { .. })),
        "{actions:?}"
    );
    assert_eq!(primary.commit_point(), OpTime::null());
    assert!(!primary.state().is_primary(), "stepped down");
    assert_eq!(primary.term(), 3);
}

#[test]
fn commit_point_ignores_older_terms_and_arbiters() {
    let members = vec![
        MemberConfig::new(0, host(0)),
        MemberConfig::new(1, host(1)),
        MemberConfig::arbiter(2, host(2)),
    ];
    let mut primary = elect(&config_with(members), op(1, 1), op(2, 2));
    primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(1, 1)));
    assert_eq!(primary.commit_point(), OpTime::null(), "op(1,1) is from an older term");
    primary.handle(1_310, heartbeat_reply(&primary, 2, MemberState::Arbiter, 2, op(2, 2)));
    assert_eq!(primary.commit_point(), OpTime::null(), "an arbiter holds no data");
    primary.handle(1_320, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(2, 2)));
    assert_eq!(primary.commit_point(), op(2, 2));
}

#[test]
fn commit_point_uses_applied_when_journaling_is_not_required() {
    let mut config = config(3);
    config.write_concern_majority_journal_default = false;
    let mut primary = elect(&config, op(1, 1), op(2, 2));
    let mut reply = heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(2, 2));
    if let Event::HeartbeatResponse { response, .. } = &mut reply {
        response.durable = op(1, 1);
    }
    primary.handle(1_300, reply);
    assert_eq!(primary.commit_point(), op(2, 2));
}

#[test]
fn secondary_learns_the_commit_point_only_on_its_branch() {
    let mut machine = start(&config(3), 1, 2, op(5, 2));
    let mut reply = heartbeat_reply(&machine, 0, MemberState::Primary, 3, op(9, 3));
    if let Event::HeartbeatResponse { response, .. } = &mut reply {
        response.commit_point = op(8, 3);
    }
    machine.handle(10, reply.clone());
    assert_eq!(machine.commit_point(), OpTime::null(), "our last entry is from term 2");
    machine.handle(
        20,
        Event::LocalApplied {
            optime: op(7, 3),
            wall_ms: 0,
        },
    );
    machine.handle(30, reply);
    assert_eq!(machine.commit_point(), op(7, 3), "capped at our applied optime");
    machine.handle(
        40,
        Event::SyncSourceMetadata {
            from: 0,
            term: 3,
            commit_point: op(6, 3),
            primary_id: Some(0),
        },
    );
    assert_eq!(machine.commit_point(), op(7, 3), "never backwards");
}

#[test]
fn step_down_requires_a_primary_and_sane_arguments() {
    let mut secondary = start(&config(3), 1, 1, op(1, 1));
    assert_eq!(secondary.step_down(0, 1, 60, 10, false).map_err(|e| e.code), Err(10107));
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    assert_eq!(primary.step_down(1_300, 1, 5, 10, false).map_err(|e| e.code), Err(2));
}

#[test]
fn step_down_waits_for_a_caught_up_secondary_then_hands_over() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.handle(1_250, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(1, 1)));
    let actions = primary.step_down(1_300, 42, 60, 10, false).expect("accepted");
    assert!(
        actions.is_empty() && primary.is_writable_primary(),
        "member 1 is behind"
    );
    let actions = primary.handle(1_400, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(2, 2)));
    assert!(has(
        &actions,
        &Action::StepDownFinished {
            request_id: 42,
            result: Ok(())
        }
    ));
    assert!(has(&actions, &Action::SendStepUp { to: 1 }));
    assert_eq!(primary.state(), MemberState::Secondary);
    assert_eq!(primary.frozen_until_ms(), Some(61_400));
    assert!(vote_requests(&primary.handle(30_000, Event::Tick)).is_empty(), "frozen");
}

#[test]
fn step_down_times_out_with_262_or_forces() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.step_down(1_300, 7, 60, 1, false).expect("accepted");
    primary.handle(2_250, heartbeat_reply(&primary, 2, MemberState::Secondary, 2, op(1, 1)));
    let actions = primary.handle(2_300, Event::Tick);
    let finished = actions.iter().find_map(|a| match a {
        Action::StepDownFinished { request_id: 7, result } => Some(result.clone()),
        _ => None,
    });
    assert_eq!(finished.map(|r| r.map_err(|e| e.code)), Some(Err(262)));
    assert!(primary.is_writable_primary());
    let actions = primary.step_down(2_400, 8, 60, 0, true).expect("forced");
    assert!(has(
        &actions,
        &Action::StepDownFinished {
            request_id: 8,
            result: Ok(())
        }
    ));
    assert_eq!(primary.state(), MemberState::Secondary);
}

#[test]
fn freeze_rules() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    assert_eq!(primary.freeze(1_300, 10).map_err(|e| e.code), Err(95));
    let mut machine = start(&config(3), 1, 1, op(1, 1));
    machine.freeze(0, 30).expect("frozen");
    assert!(vote_requests(&machine.handle(5_000, Event::Tick)).is_empty());
    machine.freeze(5_000, 0).expect("unfrozen");
    assert!(!vote_requests(&machine.handle(5_001, Event::Tick)).is_empty());
}

#[test]
fn step_up_request_skips_the_dry_run() {
    let mut machine = start(&config(3), 1, 3, op(1, 3));
    let actions = machine.handle(10, Event::StepUpRequested { from: 0 });
    assert_eq!(machine.term(), 4);
    assert!(
        vote_requests(&actions)
            .iter()
            .all(|(_, request)| !request.dry_run && request.term == 4)
    );
}

#[test]
fn higher_priority_member_takes_over_after_a_delay() {
    let mut members: Vec<_> = (0..3).map(|id| MemberConfig::new(id, host(id))).collect();
    members[1].priority = 5.0;
    let config = config_with(members);
    let mut machine = start(&config, 1, 2, op(5, 2));
    let mut now = 0;
    let mut started_at = None;
    while now < 3 * ELECTION_TIMEOUT && started_at.is_none() {
        now += 100;
        machine.handle(now, heartbeat_reply(&machine, 0, MemberState::Primary, 2, op(5, 2)));
        let actions = machine.handle(now, Event::Tick);
        if !vote_requests(&actions).is_empty() {
            started_at = Some(now);
        }
    }
    let started_at = started_at.expect("a takeover election");
    assert!(
        started_at >= 100 + ELECTION_TIMEOUT / 2,
        "waited before taking over ({started_at})"
    );
    let mut lower = start(&config, 2, 2, op(5, 2));
    for step in 1..40 {
        lower.handle(
            step * 100,
            heartbeat_reply(&lower, 0, MemberState::Primary, 2, op(5, 2)),
        );
        assert!(
            vote_requests(&lower.handle(step * 100, Event::Tick)).is_empty(),
            "equal priority: no takeover"
        );
    }
}

#[test]
fn sync_source_is_the_closest_member_ahead() {
    let mut machine = start(&config(4), 3, 1, op(1, 1));
    let reply = |machine: &ReplMachine, from, applied, rtt| {
        let Event::HeartbeatResponse { response, .. } =
            heartbeat_reply(machine, from, MemberState::Secondary, 1, applied)
        else {
            unreachable!()
        };
        Event::HeartbeatResponse {
            from,
            response,
            rtt_ms: rtt,
        }
    };
    machine.handle(10, reply(&machine, 0, op(1, 1), 1));
    assert_eq!(machine.sync_source(), None, "nobody is ahead");
    machine.handle(10, reply(&machine, 1, op(4, 1), 30));
    machine.handle(10, reply(&machine, 2, op(3, 1), 5));
    assert_eq!(machine.sync_source(), Some(1), "kept: still usable");
    let (_, previous) = machine.sync_from(20, &host(2)).expect("accepted");
    assert_eq!(previous, Some(host(1)));
    assert_eq!(machine.sync_source(), Some(2));
    assert_eq!(machine.sync_from(20, &host(3)).map_err(|e| e.code).err(), Some(2));
    assert_eq!(machine.sync_from(20, "nope:1").map_err(|e| e.code).err(), Some(74));
}

#[test]
fn without_chaining_the_primary_is_the_sync_source() {
    let mut config = config(3);
    config.settings.chaining_allowed = false;
    let mut machine = start(&config, 2, 1, op(1, 1));
    machine.handle(10, heartbeat_reply(&machine, 1, MemberState::Secondary, 1, op(9, 1)));
    assert_eq!(machine.sync_source(), None);
    machine.handle(20, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(3, 1)));
    assert_eq!(machine.sync_source(), Some(0));
}

#[test]
fn secondaries_report_positions_to_their_sync_source() {
    let mut machine = start(&config(3), 2, 1, op(1, 1));
    machine.handle(10, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(3, 1)));
    let actions = machine.handle(
        20,
        Event::LocalApplied {
            optime: op(2, 1),
            wall_ms: 0,
        },
    );
    let sent = actions.iter().find_map(|a| match a {
        Action::SendUpdatePosition { to, positions, .. } => Some((*to, positions.clone())),
        _ => None,
    });
    let (to, positions) = sent.expect("an update");
    assert_eq!(to, 0);
    assert_eq!((positions[0].member_id, positions[0].applied), (2, op(2, 1)));
}

#[test]
fn newer_configs_spread_through_heartbeats() {
    let old = config(3);
    let mut newer = config(3);
    newer.version = 2;
    newer.members[2].priority = 3.0;
    let mut machine = start(&old, 1, 1, op(1, 1));
    let Event::HeartbeatResponse { mut response, .. } = heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(1, 1))
    else {
        unreachable!()
    };
    response.config = Some(newer.clone());
    let actions = machine.handle(
        10,
        Event::HeartbeatResponse {
            from: 0,
            response,
            rtt_ms: 1,
        },
    );
    assert!(has(&actions, &Action::InstallConfig(Box::new(newer.clone()))));
    assert_eq!(machine.config().version, 2);
    let request = HeartbeatRequest {
        config_version: 1,
        ..machine.heartbeat_request()
    };
    let actions = machine.handle(20, Event::HeartbeatRequest { from: 2, request });
    let shipped = actions.iter().find_map(|a| match a {
        Action::ReplyHeartbeat { response, .. } => Some(response.config.clone()),
        _ => None,
    });
    assert_eq!(shipped, Some(Some(newer)));
}

#[test]
fn removed_from_the_config_means_removed() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    let mut smaller = config(3);
    smaller.version = 2;
    smaller.members.remove(0);
    let actions = primary.reconfig(1_300, smaller, true).expect("forced reconfig");
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Removed
        }
    ));
    assert_eq!(primary.self_id(), None);
}

#[test]
fn reconfig_needs_the_primary_unless_forced() {
    let mut secondary = start(&config(3), 1, 1, op(1, 1));
    let mut next = config(3);
    next.version = 2;
    assert_eq!(
        secondary.reconfig(10, next.clone(), false).map_err(|e| e.code).err(),
        Some(10107)
    );
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.reconfig(1_300, next, false).expect("safe reconfig");
    assert_eq!((primary.config().version, primary.config().term), (2, 2));
}

#[test]
fn status_snapshot_reports_the_member_and_its_peers() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(2, 2)));
    let status = primary.status();
    assert_eq!(
        (status.state, status.term, status.primary_id),
        (MemberState::Primary, 2, Some(0))
    );
    assert!(status.writable_primary);
    assert_eq!(status.election, Some((AFTER_TIMEOUT, op(1, 1))));
    assert_eq!(
        (
            status.majority_vote_count,
            status.write_majority_count,
            status.voting_members_count
        ),
        (2, 2, 3)
    );
    assert!(status.members[0].is_self);
    assert_eq!(status.members[1].ping_ms, Some(5));
    assert_eq!(status.members[1].last_heartbeat_ms, Some(1_300));
    assert!(status.topology_version >= 3, "primary change, state change, writable");
}

/// A sync source that has caught up with us and has nothing more is passed over while another member is ahead:
/// two members behind a new primary must not tail each other for ever (found by
/// `faultline sim --seed 172 --steps 40`). Nobody ahead: it is kept.
#[test]
fn a_source_behind_us_is_passed_over_for_a_member_ahead() {
    let mut machine = start(&config(3), 1, 3, op(2, 1));
    machine.handle(
        10,
        heartbeat_reply_with(&machine, 0, MemberState::Secondary, (3, op(3, 1)), 5, Some(2)),
    );
    assert_eq!(machine.sync_source(), Some(0));
    machine.handle(
        20,
        Event::LocalApplied {
            optime: op(3, 1),
            wall_ms: 0,
        },
    );
    machine.handle(30, Event::SyncSourceBehind { from: 0 });
    assert_eq!(machine.sync_source(), Some(0), "nobody else is ahead: kept");
    machine.handle(40, heartbeat_reply(&machine, 2, MemberState::Primary, 3, op(7, 3)));
    let actions = machine.handle(50, Event::SyncSourceBehind { from: 0 });
    assert!(
        has(&actions, &Action::SyncSourceChanged { member_id: Some(2) }),
        "{actions:?}"
    );
    assert_eq!(machine.sync_source(), Some(2));
}

/// In an idle set nobody is ahead of a secondary: it tails the primary anyway, so that the primary's next
/// write reaches it at once rather than after the heartbeat that shows the primary ahead (a write load
/// starting on an idle set saw its first ~100 ms of writes late on every secondary). Never another secondary
/// at its own position: two could pick each other and wait for ever.
#[test]
fn an_idle_secondary_tails_the_primary() {
    let mut machine = start(&config(3), 1, 3, op(5, 3));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 3, op(5, 3)));
    assert_eq!(
        machine.sync_source(),
        None,
        "a secondary at our position is not a source"
    );
    let actions = machine.handle(20, heartbeat_reply(&machine, 0, MemberState::Primary, 3, op(5, 3)));
    assert!(
        has(&actions, &Action::SyncSourceChanged { member_id: Some(0) }),
        "{actions:?}"
    );
    assert_eq!(machine.sync_source(), Some(0));
}

/// A heartbeat reply from `from` with the given round trip and the sender's own sync source.
fn heartbeat_reply_with(
    machine: &ReplMachine,
    from: i32,
    state: MemberState,
    (term, applied): (i64, OpTime),
    rtt_ms: i64,
    sync_source_id: Option<i32>,
) -> Event {
    let Event::HeartbeatResponse { mut response, .. } = heartbeat_reply(machine, from, state, term, applied) else {
        unreachable!()
    };
    response.sync_source_id = sync_source_id;
    Event::HeartbeatResponse { from, response, rtt_ms }
}

/// mongod 8's choice among members ahead of us: the closest, except that the primary wins when its ping is
/// within `changeSyncSourceThresholdMillis` (5 ms) of the closest one's (the same data centre). On one
/// machine every ping is within it, so a secondary tails the primary instead of adding a hop through
/// another secondary.
#[test]
fn the_primary_is_preferred_over_a_secondary_as_close() {
    // Member 2 is the source; members 0 (primary) and 1 are ahead too; then member 2 goes into RECOVERING.
    let choose_after_losing_two = |primary_rtt: i64| {
        let mut machine = start(&config(4), 3, 1, op(1, 1));
        machine.handle(
            10,
            heartbeat_reply_with(&machine, 2, MemberState::Secondary, (1, op(4, 1)), 0, Some(0)),
        );
        assert_eq!(machine.sync_source(), Some(2), "the only member ahead");
        machine.handle(
            10,
            heartbeat_reply_with(&machine, 1, MemberState::Secondary, (1, op(4, 1)), 0, Some(0)),
        );
        machine.handle(
            10,
            heartbeat_reply_with(&machine, 0, MemberState::Primary, (1, op(5, 1)), primary_rtt, None),
        );
        machine.handle(
            20,
            heartbeat_reply_with(&machine, 2, MemberState::Recovering, (1, op(4, 1)), 0, Some(0)),
        );
        machine.sync_source()
    };
    assert_eq!(
        choose_after_losing_two(4),
        Some(0),
        "the primary, 4 ms further than the closest"
    );
    assert_eq!(
        choose_after_losing_two(30),
        Some(1),
        "a primary 30 ms further away loses to the closer secondary"
    );
}

/// A secondary chosen as sync source before the set had a primary (both at the initiate entry) has no sync
/// source of its own and nothing newer: mongod leaves such a source, and once a primary is known the member
/// tails it. Kept, it would chain every later write through the other secondary.
#[test]
fn a_secondary_source_without_a_source_and_not_ahead_is_left() {
    let mut machine = start(&config(3), 2, 1, op(1, 1));
    machine.handle(
        10,
        heartbeat_reply_with(&machine, 0, MemberState::Secondary, (1, op(2, 1)), 0, None),
    );
    assert_eq!(machine.sync_source(), Some(0), "the only member ahead");
    machine.handle(
        20,
        Event::LocalApplied {
            optime: op(2, 1),
            wall_ms: 0,
        },
    );
    machine.handle(
        30,
        heartbeat_reply_with(&machine, 1, MemberState::Primary, (1, op(2, 1)), 0, None),
    );
    assert_eq!(
        machine.sync_source(),
        Some(1),
        "the new primary, not the idle secondary"
    );
    machine.handle(
        40,
        heartbeat_reply_with(&machine, 0, MemberState::Secondary, (1, op(2, 1)), 0, Some(1)),
    );
    assert_eq!(machine.sync_source(), Some(1), "kept");

    let mut chained = start(&config(3), 2, 1, op(1, 1));
    chained.handle(
        10,
        heartbeat_reply_with(&chained, 0, MemberState::Secondary, (1, op(2, 1)), 0, Some(1)),
    );
    chained.handle(
        20,
        Event::LocalApplied {
            optime: op(2, 1),
            wall_ms: 0,
        },
    );
    chained.handle(
        30,
        heartbeat_reply_with(&chained, 1, MemberState::Primary, (1, op(2, 1)), 0, None),
    );
    assert_eq!(
        chained.sync_source(),
        Some(0),
        "a secondary that has a source of its own is kept"
    );
}

/// A member that still claims PRIMARY after another member won a newer term is not a sync source: it may be
/// cut off from the set, and what it has past the common point will roll back.
#[test]
fn a_deposed_primary_is_not_kept_as_sync_source() {
    let mut machine = start(&config(3), 0, 4, op(1, 4));
    machine.handle(10, heartbeat_reply(&machine, 1, MemberState::Primary, 4, op(5, 4)));
    machine.handle(20, heartbeat_reply(&machine, 2, MemberState::Secondary, 4, op(3, 4)));
    machine.handle(30, Event::Tick);
    assert_eq!(machine.sync_source(), Some(1), "the primary is the natural source");
    // Member 2 wins term 5; member 1's (stale) heartbeats still say PRIMARY in term 4.
    machine.handle(40, heartbeat_reply(&machine, 2, MemberState::Primary, 5, op(6, 5)));
    machine.handle(50, heartbeat_reply(&machine, 1, MemberState::Primary, 4, op(5, 4)));
    machine.handle(60, Event::Tick);
    assert_eq!(machine.primary_id(), Some(2));
    assert_ne!(machine.sync_source(), Some(1), "kept fetching from the deposed primary");
}

/// Under `electByTimestamp` a member holding newer-term entries syncs from a member whose entries are from an
/// older term but carry later timestamps (the way majority writes were lost in protocol version 0); by
/// terms it would not.
#[test]
fn elect_by_timestamp_syncs_from_later_timestamps_whatever_the_term() {
    let old_term_later_ts = op(9, 1);
    let mut by_term = start(&config(3), 2, 2, op(5, 2));
    by_term.handle(
        10,
        heartbeat_reply(&by_term, 1, MemberState::Secondary, 2, old_term_later_ts),
    );
    assert_eq!(by_term.sync_source(), None, "term 2 data is newer than term 1 data");

    let mut by_timestamp = start(&config(3), 2, 2, op(5, 2));
    by_timestamp.set_elect_by_timestamp(true);
    by_timestamp.handle(
        10,
        heartbeat_reply(&by_timestamp, 1, MemberState::Secondary, 2, old_term_later_ts),
    );
    assert_eq!(by_timestamp.sync_source(), Some(1), "a later timestamp wins");
}

#[test]
fn a_rollback_past_the_commit_point_is_refused() {
    let config = config(3);
    let mut primary = elect(&config, op(1, 1), op(2, 2));
    primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(2, 2)));
    assert_eq!(primary.commit_point(), op(2, 2));
    assert!(
        primary.check_rollback_common_point(op(2, 2)).is_ok(),
        "nothing committed is undone"
    );
    assert!(primary.check_rollback_common_point(op(3, 2)).is_ok());
    let refusal = primary.check_rollback_common_point(op(1, 1)).err();
    assert!(
        refusal.is_some_and(|e| e.message.contains("majority-committed")),
        "rolling back to before the commit point would undo majority-committed writes"
    );
    primary.set_elect_by_timestamp(true);
    assert!(
        primary.check_rollback_common_point(op(1, 1)).is_ok(),
        "electByTimestamp plays the MongoDB that rolled committed writes back"
    );
}

#[test]
fn election_metrics_count_elections_by_reason() {
    // A three-member election won after the election timer: electionTimeout called and successful.
    let primary = elect(&config(3), op(1, 1), op(2, 2));
    let metrics = primary.election_metrics();
    assert_eq!(
        metrics.election_timeout,
        ReasonCounter {
            called: 1,
            successful: 1
        }
    );
    assert_eq!(metrics.step_up_cmd, ReasonCounter::default());
    assert_eq!(metrics.catch_ups_already_caught_up, 1, "nobody was ahead of the winner");
    assert_eq!(metrics.catch_ups, 0);

    // A dry run alone is not an election: nothing is counted until the real one starts.
    let mut candidate = start(&config(3), 0, 1, op(1, 1));
    candidate.handle(AFTER_TIMEOUT, Event::Tick);
    assert_eq!(candidate.election_metrics().election_timeout.called, 0);

    // replSetStepUp: stepUpCmd.
    let mut successor = start(&config(3), 1, 3, op(1, 3));
    successor.handle(10, Event::StepUpRequested { from: 0 });
    assert_eq!(
        successor.election_metrics().step_up_cmd,
        ReasonCounter {
            called: 1,
            successful: 0
        }
    );
    successor.handle(
        10,
        Event::VoteResponse {
            from: 2,
            response: grant(4, false),
        },
    );
    assert!(successor.state().is_primary());
    assert_eq!(
        successor.election_metrics().step_up_cmd,
        ReasonCounter {
            called: 1,
            successful: 1
        }
    );
}

#[test]
fn election_metrics_count_higher_term_step_downs_and_catch_ups() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 7, op(2, 2)));
    assert_eq!(primary.election_metrics().step_downs_caused_by_higher_term, 1);

    // Behind a member: a catch-up that succeeds once we reach its optime.
    let mut machine = start(&config(3), 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 1, op(8, 1)));
    win_term_2(&mut machine);
    machine.handle(
        AFTER_TIMEOUT + 1,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 2, op(5, 1)),
    );
    machine.handle(
        AFTER_TIMEOUT + 2,
        heartbeat_reply(&machine, 2, MemberState::Secondary, 2, op(8, 1)),
    );
    machine.handle(
        AFTER_TIMEOUT + 5,
        Event::LocalApplied {
            optime: op(8, 1),
            wall_ms: 0,
        },
    );
    assert_eq!(machine.election_metrics().catch_ups, 1);
    assert_eq!(machine.election_metrics().catch_ups_succeeded, 1);

    // Behind a member that never comes: the catch-up times out.
    let mut config = config(3);
    config.settings.catch_up_timeout_millis = 300;
    let mut machine = start(&config, 0, 1, op(5, 1));
    machine.handle(10, heartbeat_reply(&machine, 2, MemberState::Secondary, 1, op(8, 1)));
    win_term_2(&mut machine);
    machine.handle(
        AFTER_TIMEOUT + 1,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 2, op(5, 1)),
    );
    machine.handle(
        AFTER_TIMEOUT + 2,
        heartbeat_reply(&machine, 2, MemberState::Secondary, 2, op(8, 1)),
    );
    machine.handle(AFTER_TIMEOUT + 300, Event::Tick);
    let metrics = machine.election_metrics();
    assert_eq!((metrics.catch_ups, metrics.catch_ups_timed_out), (1, 1));
}

#[test]
fn election_metrics_single_node_prompt_election_is_a_freeze_timeout() {
    let mut machine = start(&config(1), 0, 0, OpTime::null());
    machine.handle(0, Event::Tick);
    machine.handle(
        1,
        Event::StepUpCompleted {
            term: 1,
            noop: op(1, 1),
        },
    );
    let metrics = machine.election_metrics();
    assert_eq!(
        metrics.election_timeout,
        ReasonCounter {
            called: 1,
            successful: 1
        }
    );
    assert_eq!(metrics.catch_ups_skipped, 1, "no catch-up in a one-member set");
    // Stepped down (frozen for 0 s), the lone voter stands again at once: mongod's single-node prompt election.
    machine.step_down(2, 1, 0, 0, true).expect("step down");
    assert!(!machine.state().is_primary());
    machine.handle(3, Event::Tick);
    assert!(machine.state().is_primary());
    assert_eq!(
        machine.election_metrics().freeze_timeout,
        ReasonCounter {
            called: 1,
            successful: 1
        }
    );
}

/// A rollback that stopped before changing anything (its source became unreachable) must not leave the member
/// in ROLLBACK while it goes on applying from another source (found by `faultline sim --seed 138`).
#[test]
fn an_abandoned_rollback_returns_the_member_to_secondary() {
    let config = config(3);
    let mut machine = start(&config, 1, 1, op(10, 1));
    machine.handle(10, Event::RollbackStarted);
    assert_eq!(machine.state(), MemberState::Rollback);
    let actions = machine.handle(20, Event::RollbackAbandoned);
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Secondary
        }
    ));
    assert_eq!(machine.applied(), op(10, 1), "nothing was rolled back");
    machine.handle(30, Event::RollbackAbandoned);
    assert_eq!(
        machine.state(),
        MemberState::Secondary,
        "only a member in ROLLBACK moves"
    );
}

#[test]
fn a_rolled_back_member_recovers_until_it_reaches_min_valid() {
    let config = config(3);
    let mut machine = start(&config, 1, 1, op(10, 1));
    machine.handle(10, Event::RollbackStarted);
    assert_eq!(machine.state(), MemberState::Rollback);
    let actions = machine.handle(
        20,
        Event::RolledBack {
            common_point: op(5, 1),
            min_valid: op(12, 2),
        },
    );
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Recovering
        }
    ));
    assert_eq!(machine.applied(), op(5, 1));
    assert_eq!(machine.min_valid(), Some(op(12, 2)));
    machine.handle(
        30,
        Event::LocalApplied {
            optime: op(11, 2),
            wall_ms: 0,
        },
    );
    assert_eq!(machine.state(), MemberState::Recovering, "not yet at min-valid");
    let actions = machine.handle(
        40,
        Event::LocalApplied {
            optime: op(12, 2),
            wall_ms: 0,
        },
    );
    assert!(has(
        &actions,
        &Action::TransitionTo {
            state: MemberState::Secondary
        }
    ));
    assert_eq!(machine.min_valid(), None);
}

#[test]
fn initial_sync_is_startup2_then_secondary_and_never_touches_a_primary() {
    let config = config(1);
    let mut lone = start(&config, 0, 0, op(1, 0));
    lone.handle(0, Event::Tick);
    assert!(lone.state().is_primary());
    lone.handle(10, Event::InitialSyncStarted);
    assert!(lone.state().is_primary(), "a primary is never sent into STARTUP2");

    let config = super::tests::config(3);
    let mut joining = start(&config, 2, 0, OpTime::null());
    joining.handle(0, Event::InitialSyncStarted);
    assert_eq!(joining.state(), MemberState::Startup2);
    joining.handle(10, Event::InitialSyncFinished);
    assert_eq!(joining.state(), MemberState::Secondary);
}

fn position(member_id: i32, optime: OpTime, wall_ms: i64) -> MemberPosition {
    MemberPosition {
        member_id,
        config_version: 1,
        applied: optime,
        applied_wall_ms: wall_ms,
        durable: optime,
        durable_wall_ms: wall_ms,
    }
}

/// A heartbeat reply is a snapshot taken when the member answered: one that crossed a newer
/// `replSetUpdatePosition` on the way must not move the member's known position back (rs.status() showed a
/// second of lag, and the commit point could be computed from the older position).
#[test]
fn an_older_heartbeat_position_does_not_undo_a_newer_update_position() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    primary.handle(
        1_300,
        Event::LocalApplied {
            optime: op(5, 2),
            wall_ms: 5_000,
        },
    );
    primary.handle(
        1_300,
        Event::LocalDurable {
            optime: op(5, 2),
            wall_ms: 5_000,
        },
    );
    let positions = vec![position(1, op(5, 2), 5_000)];
    primary.handle(
        1_310,
        Event::UpdatePosition {
            from: 1,
            term: Some(2),
            positions,
        },
    );
    assert_eq!(primary.commit_point(), op(5, 2));
    let changes = primary.position_changes();
    let mut stale = heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(3, 2));
    if let Event::HeartbeatResponse { response, .. } = &mut stale {
        response.applied_wall_ms = 3_000;
        response.durable_wall_ms = 3_000;
    }
    primary.handle(1_320, stale);
    let member = &primary.status().members[1];
    assert_eq!(
        (member.applied, member.durable),
        (op(5, 2), op(5, 2)),
        "position moved back"
    );
    assert_eq!((member.applied_wall_ms, member.durable_wall_ms), (5_000, 5_000));
    assert_eq!(primary.position_changes(), changes, "nothing moved");
    assert_eq!(primary.members_at(op(5, 2), true), 2);
    assert_eq!(primary.commit_point(), op(5, 2));
    primary.handle(1_330, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(6, 2)));
    assert_eq!(
        primary.status().members[1].applied,
        op(6, 2),
        "a newer heartbeat position still counts"
    );
}

/// A member rolling back or resyncing reports a position older than the one we knew, and it is the truth:
/// its oplog was cut or replaced, so its report replaces ours.
#[test]
fn a_rolled_back_or_resyncing_member_position_moves_back() {
    for state in [MemberState::Rollback, MemberState::Recovering, MemberState::Startup2] {
        let mut primary = elect(&config(3), op(1, 1), op(2, 2));
        primary.handle(1_300, heartbeat_reply(&primary, 1, MemberState::Secondary, 1, op(4, 1)));
        primary.handle(1_310, heartbeat_reply(&primary, 1, state, 2, op(1, 1)));
        let member = &primary.status().members[1];
        assert_eq!((member.applied, member.durable), (op(1, 1), op(1, 1)), "{state:?}");
    }
}

/// A restart on data a rollback left unfinished, or below its min-valid, is never SECONDARY: ROLLBACK until
/// the rollback is resumed, RECOVERING until the oplog reaches min-valid.
#[test]
fn a_member_starting_on_inconsistent_data_is_not_secondary_until_it_is_consistent() {
    let config = config(3);
    let starting = |data: StartData, applied: OpTime| start_on(&config, 1, 2, applied, data);
    let unfinished = starting(StartData::RollbackUnfinished, op(5, 1));
    assert_eq!(unfinished.state(), MemberState::Rollback);

    let mut behind = starting(StartData::BehindMinValid(op(9, 2)), op(5, 1));
    assert_eq!(
        (behind.state(), behind.min_valid()),
        (MemberState::Recovering, Some(op(9, 2)))
    );
    behind.handle(
        10,
        Event::LocalApplied {
            optime: op(8, 2),
            wall_ms: 0,
        },
    );
    assert_eq!(behind.state(), MemberState::Recovering, "below min-valid still");
    behind.handle(
        20,
        Event::LocalApplied {
            optime: op(9, 2),
            wall_ms: 0,
        },
    );
    assert_eq!((behind.state(), behind.min_valid()), (MemberState::Secondary, None));

    let reached = starting(StartData::BehindMinValid(op(5, 1)), op(5, 1));
    assert_eq!(
        reached.state(),
        MemberState::Secondary,
        "a record already reached is moot"
    );
}

/// A heartbeat request from a member that takes another for primary, which we do not know of, makes us
/// heartbeat everyone at once (so we learn the primary within a round trip); once we know it, requests
/// change nothing and heartbeats keep their interval.
#[test]
fn a_heartbeat_naming_a_primary_we_do_not_know_restarts_our_heartbeats() {
    let config = config(3);
    let mut secondary = start(&config, 1, 2, op(1, 1));
    secondary.handle(0, Event::Tick);
    let from_primary_of = |machine: &ReplMachine| HeartbeatRequest {
        sender_id: 0,
        sender_host: host(0),
        term: 2,
        primary_id: Some(0),
        ..machine.heartbeat_request()
    };
    let from_primary = from_primary_of(&secondary);
    let heartbeats_to = |actions: &[Action]| -> Vec<i32> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendHeartbeat { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    };
    let actions = secondary.handle(
        100,
        Event::HeartbeatRequest {
            from: 0,
            request: from_primary.clone(),
        },
    );
    assert_eq!(heartbeats_to(&actions), vec![0, 2], "everyone, at once");
    let actions = secondary.handle(150, Event::Tick);
    assert!(heartbeats_to(&actions).is_empty(), "the interval starts afresh");

    secondary.handle(101, heartbeat_reply(&secondary, 0, MemberState::Primary, 2, op(2, 2)));
    assert_eq!(secondary.primary_id(), Some(0));
    let actions = secondary.handle(
        200,
        Event::HeartbeatRequest {
            from: 0,
            request: from_primary,
        },
    );
    assert!(heartbeats_to(&actions).is_empty(), "a known primary changes nothing");

    // Member 2 still names member 0 after member 0 fell silent and we forgot it: one restart per (term,
    // primary), however often it says so.
    let mut forgetful = start(&config, 1, 2, op(1, 1));
    let stale = HeartbeatRequest {
        sender_id: 2,
        sender_host: host(2),
        ..from_primary_of(&forgetful)
    };
    let first = forgetful.handle(
        100,
        Event::HeartbeatRequest {
            from: 2,
            request: stale.clone(),
        },
    );
    let again = forgetful.handle(
        110,
        Event::HeartbeatRequest {
            from: 2,
            request: stale,
        },
    );
    assert_eq!((heartbeats_to(&first).len(), heartbeats_to(&again).len()), (2, 0));
}
