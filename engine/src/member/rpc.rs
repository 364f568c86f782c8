//! Replica-set commands that reach the member: the internal RPCs between members (heartbeats, votes,
//! position updates, step-up) and the admin commands (initiate, get-config, reconfig, step-down, freeze,
//! sync-from).

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Document, doc};
use tokio::sync::oneshot;

use super::{META_CONFIG, Member, find_self, messages, not_yet_initialized, repl_error};
use crate::error::{Error, Result, code};
use crate::repl::{Action, Event, ReplSetConfig};

impl Member {
    /// Runs an event that expects a reply action; carries out the other actions first (so a vote is durable
    /// before it is answered) and returns the reply.
    async fn handle_rpc(&self, event: Event) -> Option<Action> {
        let actions = self.handle(event);
        let (replies, rest): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::ReplyHeartbeat { .. } | Action::ReplyVote { .. }));
        self.execute(rest).await;
        replies.into_iter().next()
    }

    /// `replSetHeartbeat` from another member.
    pub async fn on_heartbeat(&self, body: &Document) -> Result<Document> {
        let request = messages::heartbeat_request_from_bson(body)?;
        if self.role().config.is_none() {
            if request.set_name == self.options.repl_set {
                self.syncer.adopt_config_from(request.sender_host.clone());
            }
            return Err(Error::new(
                code::NOT_YET_INITIALIZED,
                "no replset config has been received",
            ));
        }
        match self
            .handle_rpc(Event::HeartbeatRequest {
                from: request.sender_id,
                request,
            })
            .await
        {
            Some(Action::ReplyHeartbeat { response, .. }) => Ok(messages::heartbeat_response_to_bson(&response)),
            _ => Err(Error::new(code::INVALID_REPLICA_SET_CONFIG, "heartbeat not accepted")),
        }
    }

    /// `replSetRequestVotes` from a candidate.
    pub async fn on_request_votes(&self, body: &Document) -> Result<Document> {
        let request = messages::vote_request_from_bson(body)?;
        // A candidate behind us in (term, ts) order can only get our vote through `electByTimestamp`.
        let stale_by_term = request.last_applied < self.storage.positions().last_written;
        match self
            .handle_rpc(Event::VoteRequest {
                from: request.candidate_id,
                request,
            })
            .await
        {
            Some(Action::ReplyVote { response, .. }) => {
                if response.vote_granted && stale_by_term {
                    self.failpoints.hit(crate::failpoint::ELECT_BY_TIMESTAMP);
                }
                Ok(messages::vote_response_to_bson(&response))
            }
            _ => Err(Error::new(
                code::NOT_YET_INITIALIZED,
                "cannot vote: no replica set config",
            )),
        }
    }

    /// `replSetUpdatePosition` from a member syncing from us.
    pub async fn on_update_position(&self, body: &Document) -> Result<Document> {
        let (term, positions) = messages::update_position_from_bson(body)?;
        let from = body
            .get_i32("fromId")
            .ok()
            .or_else(|| positions.first().map(|p| p.member_id))
            .unwrap_or(-1);
        if let Some(p) = positions.iter().find(|p| p.member_id == from) {
            tracing::trace!(
                target: "write_path",
                ts = crate::storage::ts_to_u64(p.applied.ts),
                durable_ts = crate::storage::ts_to_u64(p.durable.ts),
                from,
                "position.received"
            );
        }
        let actions = self.handle(Event::UpdatePosition { from, term, positions });
        self.execute(actions).await;
        Ok(Document::new())
    }

    /// `replSetStepUp` (the hand-over after a step-down).
    pub async fn on_step_up(&self, body: &Document) -> Result<Document> {
        let from = body.get_i32("fromId").unwrap_or(-1);
        let actions = self.handle(Event::StepUpRequested { from });
        self.execute(actions).await;
        Ok(Document::new())
    }

    /// `replSetReconfig`.
    pub async fn reconfig(&self, config: &Document, force: bool) -> Result<()> {
        let mut config = ReplSetConfig::from_document(config).map_err(repl_error)?;
        if config.settings.replica_set_id.is_none() {
            config.settings.replica_set_id = self.role().config.as_ref().and_then(|c| c.settings.replica_set_id);
        }
        let actions = self.with_machine(|m, now| m.reconfig(now, config, force).map_err(repl_error))?;
        self.execute(actions).await;
        Ok(())
    }

    /// `replSetStepDown`: waits (up to the catch-up period) for an electable secondary to catch up.
    pub async fn step_down(&self, secs: i64, catch_up_secs: i64, force: bool) -> Result<()> {
        let request_id = self.next_request.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.step_downs.lock() {
            waiters.insert(request_id, tx);
        }
        let started = self.with_machine(|m, now| {
            m.step_down(now, request_id, secs, catch_up_secs, force)
                .map_err(repl_error)
        });
        let actions = match started {
            Ok(actions) => actions,
            Err(err) => {
                if let Ok(mut waiters) = self.step_downs.lock() {
                    waiters.remove(&request_id);
                }
                return Err(err);
            }
        };
        self.execute(actions).await;
        let limit = Duration::from_secs(catch_up_secs.max(0) as u64 + 10);
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(err))) => Err(repl_error(err)),
            _ => Err(Error::new(
                (262, "ExceededTimeLimit"),
                "step down did not finish in time",
            )),
        }
    }

    /// `replSetFreeze`.
    pub async fn freeze(&self, secs: i64) -> Result<()> {
        let actions = self.with_machine(|m, now| m.freeze(now, secs).map_err(repl_error))?;
        self.execute(actions).await;
        Ok(())
    }

    /// `replSetSyncFrom`: returns the reply fields.
    pub async fn sync_from(&self, host: &str) -> Result<Document> {
        let (actions, previous) = self.with_machine(|m, now| m.sync_from(now, host).map_err(repl_error))?;
        self.execute(actions).await;
        let mut reply = doc! {"syncFromRequested": host};
        if let Some(previous) = previous {
            reply.insert("prevSyncTarget", previous);
        }
        Ok(reply)
    }

    /// `replSetGetRBID`: the rollback id, which changes whenever this member rolls back.
    pub fn rbid(&self) -> i32 {
        self.syncer.rollback_id()
    }
}

impl Member {
    /// `replSetInitiate`: with no config, a one-member set of this member.
    pub async fn initiate(&self, config: Option<&Document>) -> Result<()> {
        if self.role().config.is_some() || self.syncer.is_installing() {
            return Err(Error::new(code::ALREADY_INITIALIZED, "already initialized"));
        }
        let mut config = match config {
            None => ReplSetConfig::new(
                &self.options.repl_set,
                vec![crate::repl::MemberConfig::new(0, self.options.self_host())],
            ),
            Some(doc) => {
                // rs.initiate({_id, members}) as the tutorials write it: the version defaults to 1.
                let mut doc = doc.clone();
                if !doc.contains_key("version") {
                    doc.insert("version", 1);
                }
                ReplSetConfig::from_document(&doc).map_err(repl_error)?
            }
        };
        if config.settings.replica_set_id.is_none() {
            config.settings.replica_set_id = Some(ObjectId::new());
        }
        if config.set_name != self.options.repl_set {
            return Err(Error::new(
                code::INVALID_REPLICA_SET_CONFIG,
                format!(
                    "Attempting to initiate a replica set with name {}, but command line reports {}; rejecting",
                    config.set_name, self.options.repl_set
                ),
            ));
        }
        if find_self(&config, &self.options).is_none() {
            return Err(Error::new(
                (74, "NodeNotFound"),
                format!(
                    "No host described in new configuration with version {} for replica set {} maps to this node",
                    config.version, config.set_name
                ),
            ));
        }
        let stored = config.to_document();
        self.storage
            .write(true, move |w| {
                w.put_meta(META_CONFIG, &stored)?;
                w.noop(doc! {"msg": "initiating set"}).map(|_| ())
            })
            .await??;
        self.install_machine(config)?;
        tracing::info!("replica set initiated");
        Ok(())
    }

    /// The stored replica-set config as `replSetGetConfig` shows it.
    pub fn config_document(&self) -> Result<Document> {
        let role = self.role();
        // Exactly as installed: members compare (version, term) of their configs, so a joining member must get
        // the very config the others hold.
        let config = role.config.ok_or_else(not_yet_initialized)?;
        Ok(config.to_document())
    }
}
