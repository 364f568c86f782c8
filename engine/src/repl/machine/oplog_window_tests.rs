//! Unit tests of the oplog window rules (oplog_window.rs): the truncation limit and too-stale members.

use super::*;
use crate::repl::machine::oplog_window::{TOO_STALE_DENYLIST_MS, TOO_STALE_MESSAGE};

fn position(member_id: i32, applied: OpTime) -> Event {
    Event::UpdatePosition {
        from: member_id,
        term: None,
        positions: vec![MemberPosition {
            member_id,
            config_version: 1,
            applied,
            applied_wall_ms: 0,
            durable: applied,
            durable_wall_ms: 0,
        }],
    }
}

fn applied(machine: &mut ReplMachine, now: i64, optime: OpTime) {
    machine.handle(now, Event::LocalApplied { optime, wall_ms: 0 });
    machine.handle(now, Event::LocalDurable { optime, wall_ms: 0 });
}

#[test]
fn nothing_past_the_majority_commit_point_is_truncated() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    applied(&mut primary, 1_300, op(9, 2));
    assert_eq!(
        primary.oplog_truncation_limit(op(1, 1)),
        OpTime::null(),
        "nothing is majority-committed yet"
    );
    primary.handle(1_310, position(1, op(5, 2)));
    assert_eq!(primary.commit_point(), op(5, 2));
    // Member 2 never answered: it is not known to be healthy, so it does not hold truncation back.
    assert_eq!(primary.oplog_truncation_limit(op(1, 1)), op(5, 2));
}

#[test]
fn a_primary_keeps_what_a_healthy_member_catching_up_still_needs() {
    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    applied(&mut primary, 1_300, op(9, 2));
    primary.handle(1_310, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(9, 2)));
    primary.handle(1_310, position(1, op(9, 2)));
    assert_eq!(primary.commit_point(), op(9, 2));
    primary.handle(1_320, heartbeat_reply(&primary, 2, MemberState::Secondary, 2, op(4, 2)));
    assert_eq!(
        primary.oplog_truncation_limit(op(1, 1)),
        op(4, 2),
        "member 2 still needs op(4)"
    );
    // A member whose newest entry we no longer have cannot catch up from us: it does not hold us back.
    assert_eq!(primary.oplog_truncation_limit(op(6, 2)), op(9, 2));
    // Once member 2 stops answering heartbeats (heartbeatTimeoutSecs = 2 s) it goes DOWN and stops counting.
    primary.handle(
        1_320 + 2_000,
        heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(9, 2)),
    );
    primary.handle(1_320 + 2_001, Event::Tick);
    assert_eq!(
        primary.oplog_truncation_limit(op(1, 1)),
        op(9, 2),
        "a member that is down is not waited for"
    );
}

#[test]
fn a_secondary_truncates_up_to_its_commit_point_and_applied_optime() {
    let mut secondary = start(&config(3), 1, 2, op(5, 2));
    let mut reply = heartbeat_reply(&secondary, 0, MemberState::Primary, 2, op(9, 2));
    if let Event::HeartbeatResponse { response, .. } = &mut reply {
        response.commit_point = op(8, 2);
    }
    secondary.handle(10, reply.clone());
    assert_eq!(
        secondary.commit_point(),
        op(5, 2),
        "known commit point, capped at what we applied"
    );
    assert_eq!(secondary.oplog_truncation_limit(op(1, 2)), op(5, 2));
    applied(&mut secondary, 15, op(9, 2));
    secondary.handle(16, reply);
    assert_eq!(
        secondary.oplog_truncation_limit(op(1, 2)),
        op(8, 2),
        "up to the commit point, not past it"
    );
    // A lagging member syncing from a secondary does not hold the secondary back (only a primary waits).
    secondary.handle(20, heartbeat_reply(&secondary, 2, MemberState::Secondary, 2, op(2, 2)));
    assert_eq!(secondary.oplog_truncation_limit(op(1, 2)), op(8, 2));
}

#[test]
fn arbiters_and_members_in_initial_sync_without_an_oplog_do_not_hold_truncation_back() {
    let members = vec![
        crate::repl::config::MemberConfig::new(0, host(0)),
        crate::repl::config::MemberConfig::new(1, host(1)),
        crate::repl::config::MemberConfig::arbiter(2, host(2)),
    ];
    let mut primary = elect(&config_with(members), op(1, 1), op(2, 2));
    applied(&mut primary, 1_300, op(9, 2));
    primary.handle(1_310, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(9, 2)));
    primary.handle(1_330, heartbeat_reply(&primary, 2, MemberState::Arbiter, 2, op(1, 1)));
    assert_eq!(
        primary.oplog_truncation_limit(op(1, 1)),
        op(9, 2),
        "an arbiter has no oplog"
    );

    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    applied(&mut primary, 1_300, op(9, 2));
    primary.handle(1_310, heartbeat_reply(&primary, 1, MemberState::Secondary, 2, op(9, 2)));
    primary.handle(
        1_320,
        heartbeat_reply(&primary, 2, MemberState::Startup2, 2, OpTime::null()),
    );
    assert_eq!(
        primary.oplog_truncation_limit(op(1, 1)),
        op(9, 2),
        "initial sync starts from our newest entry, whatever we truncate"
    );
}

/// Member 2 with sources 0 (primary) and 1 ahead of it.
fn lagging_secondary() -> ReplMachine {
    let mut machine = start(&config(3), 2, 1, op(1, 1));
    machine.handle(10, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(50, 1)));
    machine.handle(10, heartbeat_reply(&machine, 1, MemberState::Secondary, 1, op(50, 1)));
    assert!(machine.sync_source().is_some());
    machine
}

#[test]
fn a_too_stale_source_is_denylisted_and_another_tried() {
    let mut machine = lagging_secondary();
    let first = machine.sync_source().expect("a source");
    let actions = machine.handle(
        20,
        Event::SyncSourceProbed {
            from: first,
            too_stale: true,
        },
    );
    let second = machine.sync_source().expect("another source");
    assert_ne!(second, first);
    assert!(has(
        &actions,
        &Action::SyncSourceChanged {
            member_id: Some(second)
        }
    ));
    assert_eq!(machine.state(), MemberState::Secondary, "one source left to try");
    assert_eq!(machine.info_message(), "");
}

#[test]
fn too_stale_for_every_source_means_recovering_until_a_source_can_serve_us() {
    let mut machine = lagging_secondary();
    for now in [20, 30] {
        let source = machine.sync_source().expect("a source to probe");
        machine.handle(
            now,
            Event::SyncSourceProbed {
                from: source,
                too_stale: true,
            },
        );
    }
    assert_eq!(machine.state(), MemberState::Recovering);
    assert_eq!(machine.sync_source(), None);
    assert_eq!(machine.info_message(), TOO_STALE_MESSAGE);
    assert_eq!(machine.status().state, MemberState::Recovering);
    assert!(!machine.can_stand(), "a stale member never stands for election");
    // Heartbeats and time do not bring it back on their own.
    machine.handle(40, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(60, 1)));
    machine.handle(50, Event::Tick);
    assert_eq!(machine.state(), MemberState::Recovering);
    // After the denylist period the sources are tried again; still too stale: still RECOVERING.
    let later = 30 + TOO_STALE_DENYLIST_MS + 1;
    machine.handle(later, heartbeat_reply(&machine, 0, MemberState::Primary, 1, op(60, 1)));
    machine.handle(
        later,
        heartbeat_reply(&machine, 1, MemberState::Secondary, 1, op(60, 1)),
    );
    let source = machine.sync_source().expect("tried again after a minute");
    machine.handle(
        later,
        Event::SyncSourceProbed {
            from: source,
            too_stale: true,
        },
    );
    assert_eq!(machine.state(), MemberState::Recovering);
    // A source whose oplog reaches back far enough (say, one with a larger oplog) ends it.
    let source = machine.sync_source().expect("the other source");
    let actions = machine.handle(
        later + 10,
        Event::SyncSourceProbed {
            from: source,
            too_stale: false,
        },
    );
    assert_eq!(machine.state(), MemberState::Secondary);
    assert_eq!(machine.info_message(), "");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Log(m) if m.contains("No longer too stale")))
    );
}

#[test]
fn the_stale_message_reaches_the_others_through_heartbeats() {
    let mut machine = lagging_secondary();
    for now in [20, 30] {
        let source = machine.sync_source().expect("a source to probe");
        machine.handle(
            now,
            Event::SyncSourceProbed {
                from: source,
                too_stale: true,
            },
        );
    }
    let request = crate::repl::machine::HeartbeatRequest {
        set_name: "rs0".into(),
        config_version: machine.config().version,
        config_term: machine.config().term,
        sender_id: 0,
        sender_host: host(0),
        term: 1,
        primary_id: None,
    };
    let actions = machine.handle(40, Event::HeartbeatRequest { from: 0, request });
    let reply = actions
        .iter()
        .find_map(|a| match a {
            Action::ReplyHeartbeat { response, .. } => Some(response.clone()),
            _ => None,
        })
        .expect("a heartbeat reply");
    assert_eq!(reply.message, TOO_STALE_MESSAGE);
    assert_eq!(reply.state, MemberState::Recovering);

    let mut primary = elect(&config(3), op(1, 1), op(2, 2));
    let mut event = heartbeat_reply(&primary, 2, MemberState::Recovering, 2, op(1, 1));
    if let Event::HeartbeatResponse { response, .. } = &mut event {
        response.message = TOO_STALE_MESSAGE.into();
    }
    primary.handle(1_300, event);
    let status = primary.status();
    let member = status.members.iter().find(|m| m.id == 2).expect("member 2");
    assert_eq!(member.last_heartbeat_message, TOO_STALE_MESSAGE);
}
