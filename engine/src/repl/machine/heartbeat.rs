//! Heartbeats: sending them on schedule, answering them, learning members' state, optimes and terms from the
//! replies, marking silent members DOWN, and propagating newer configs.

use super::ReplMachine;
use super::io::Action;
use super::messages::{HeartbeatRequest, HeartbeatResponse};
use crate::repl::config::ReplSetConfig;
use crate::repl::state::MemberState;

impl ReplMachine {
    pub(super) fn heartbeat_request(&self) -> HeartbeatRequest {
        HeartbeatRequest {
            set_name: self.config.set_name.clone(),
            config_version: self.config.version,
            config_term: self.config.term,
            sender_id: self.self_id.unwrap_or(-1),
            sender_host: self.self_host.clone(),
            term: self.term,
            primary_id: self.primary_id,
        }
    }

    fn heartbeat_response(&self, config: Option<ReplSetConfig>) -> HeartbeatResponse {
        HeartbeatResponse {
            set_name: self.config.set_name.clone(),
            state: self.state,
            term: self.term,
            sender_id: self.self_id.unwrap_or(-1),
            primary_id: self.primary_id,
            election_optime: self
                .election
                .filter(|_| self.state.is_primary())
                .map(|(_, optime)| optime),
            applied: self.applied,
            durable: self.durable,
            applied_wall_ms: self.applied_wall_ms,
            durable_wall_ms: self.durable_wall_ms,
            sync_source_id: self.sync_source,
            config_version: self.config.version,
            config_term: self.config.term,
            config,
            commit_point: self.commit_point,
            electable: self.can_stand(),
            message: self.info_message().to_string(),
        }
    }

    /// Sends a heartbeat to every member whose turn has come.
    pub(super) fn send_due_heartbeats(&mut self) {
        let interval = self.config.settings.heartbeat_interval_millis;
        let now = self.now_ms;
        let due: Vec<i32> = self
            .members
            .values()
            .filter(|view| view.next_heartbeat_ms <= now)
            .map(|view| view.id)
            .collect();
        for id in due {
            self.send_heartbeat_now(id);
            if let Some(view) = self.members.get_mut(&id) {
                view.next_heartbeat_ms = now + interval;
            }
        }
    }

    /// Heartbeats every member now and starts each one's interval afresh (mongod's restart of its
    /// heartbeats).
    fn restart_heartbeats(&mut self) {
        let interval = self.config.settings.heartbeat_interval_millis;
        let members: Vec<i32> = self.members.keys().copied().collect();
        for id in members {
            self.send_heartbeat_now(id);
            if let Some(view) = self.members.get_mut(&id) {
                view.next_heartbeat_ms = self.now_ms + interval;
            }
        }
    }

    pub(super) fn send_heartbeat_now(&mut self, to: i32) {
        let request = self.heartbeat_request();
        self.outbox.push(Action::SendHeartbeat { to, request });
    }

    /// Marks members DOWN after `heartbeatTimeoutSecs` of silence; forgets a primary that went down.
    pub(super) fn expire_members(&mut self) {
        let timeout_ms = self.config.settings.heartbeat_timeout_secs.saturating_mul(1000);
        let (now, since) = (self.now_ms, self.started_ms);
        let mut lost = Vec::new();
        for view in self.members.values_mut() {
            if view.expire(now, since, timeout_ms) {
                lost.push(view.id);
            }
        }
        if self.primary_id.is_some_and(|primary| lost.contains(&primary)) {
            self.set_primary(None);
        }
    }

    pub(super) fn on_heartbeat_request(&mut self, from: i32, request: &HeartbeatRequest) {
        if request.set_name != self.config.set_name {
            return;
        }
        self.observe_term(request.term);
        if let Some(view) = self.members.get_mut(&from) {
            view.last_heartbeat_recv_ms = Some(self.now_ms);
        }
        let theirs = (request.config_version, request.config_term);
        let ours = self.config.version_and_term();
        let their_config = crate::repl::config::ConfigVersionAndTerm {
            version: theirs.0,
            term: theirs.1,
        };
        let include_config = (their_config < ours).then(|| (*self.config).clone());
        let response = Box::new(self.heartbeat_response(include_config));
        self.outbox.push(Action::ReplyHeartbeat { to: from, response });
        if their_config > ours && self.members.contains_key(&from) {
            self.send_heartbeat_now(from);
        }
        // The sender knows of a primary of our term that we do not: ask everyone now rather than at the next
        // interval (as mongod does), so that a new primary is learnt within a round trip of its first
        // heartbeat and no secondary picks a sync source meanwhile without knowing it. Once per (term,
        // primary): members whose views of the primary differ would otherwise restart each other's
        // heartbeats in an endless ping-pong.
        if let Some(primary) = request.primary_id
            && request.term == self.term
            && self.primary_id != Some(primary)
            && !self.state.is_primary()
            && self.members.contains_key(&primary)
            && self.heartbeats_restarted_for != Some((self.term, primary))
        {
            self.heartbeats_restarted_for = Some((self.term, primary));
            self.restart_heartbeats();
        }
    }

    pub(super) fn on_heartbeat_response(&mut self, from: i32, response: HeartbeatResponse, rtt_ms: i64) {
        if response.set_name != self.config.set_name {
            return;
        }
        self.observe_term(response.term);
        if let Some(config) = response.config.clone() {
            self.consider_config(config);
        }
        let now = self.now_ms;
        let Some(view) = self.members.get_mut(&from) else {
            return;
        };
        let moved = view.adopt_heartbeat_position(
            response.state,
            response.applied,
            response.applied_wall_ms,
            response.durable,
            response.durable_wall_ms,
        );
        self.position_changes += u64::from(moved);
        view.state = response.state;
        view.healthy = true;
        view.term = response.term;
        view.last_heartbeat_ms = Some(now);
        view.last_contact_ms = Some(now);
        view.ping_ms = Some(rtt_ms.max(0));
        view.last_heartbeat_message = response.message.clone();
        view.sync_source_id = response.sync_source_id;
        view.election_optime = response.election_optime;
        view.config_version = response.config_version;
        view.config_term = response.config_term;
        view.electable = response.electable;
        self.track_primary(from, &response);
        if !self.state.is_primary() {
            self.learn_commit_point(response.commit_point);
        }
    }

    pub(super) fn on_heartbeat_failed(&mut self, to: i32, message: String) {
        let now = self.now_ms;
        if let Some(view) = self.members.get_mut(&to) {
            view.last_heartbeat_message = message;
            view.last_heartbeat_failed_ms = Some(now);
        }
    }

    /// Updates who we believe is primary from `from`'s reply.
    fn track_primary(&mut self, from: i32, response: &HeartbeatResponse) {
        if response.state == MemberState::Primary && response.term >= self.term {
            if !self.state.is_primary() {
                self.set_primary(Some(from));
                self.reset_election_timer();
            }
        } else if self.primary_id == Some(from) {
            self.set_primary(None);
        }
    }

    /// Installs a config from a heartbeat if it is valid and newer than ours.
    fn consider_config(&mut self, config: ReplSetConfig) {
        if config.set_name != self.config.set_name || config.validate().is_err() {
            return;
        }
        if config.version_and_term() > self.config.version_and_term() {
            self.install_config(config);
        }
    }
}
