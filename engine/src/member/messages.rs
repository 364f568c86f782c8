//! The replica-set messages as BSON commands between members: `replSetHeartbeat`, `replSetRequestVotes`,
//! `replSetUpdatePosition`, with MongoDB's field names where MongoDB has them.

use bson::{Bson, Document, doc};

use crate::error::{Error, Result};
use crate::repl::machine::{HeartbeatRequest, HeartbeatResponse, MemberPosition, VoteRequest, VoteResponse};
use crate::repl::{MemberState, OpTime, ReplSetConfig};

fn optime(doc: &Document, key: &str) -> Result<OpTime> {
    match doc.get(key) {
        Some(value) => OpTime::from_bson(value).map_err(|e| Error::failed_to_parse(format!("{key}: {}", e.message))),
        None => Ok(OpTime::null()),
    }
}

fn int(doc: &Document, key: &str) -> Result<i64> {
    doc.get(key)
        .and_then(crate::bsonx::as_i64)
        .ok_or_else(|| Error::failed_to_parse(format!("field '{key}' must be a number")))
}

fn opt_int(doc: &Document, key: &str) -> Option<i64> {
    doc.get(key).and_then(crate::bsonx::as_i64)
}

pub fn heartbeat_request_to_bson(req: &HeartbeatRequest) -> Document {
    doc! {
        "replSetHeartbeat": &req.set_name, "configVersion": req.config_version, "configTerm": req.config_term,
        "from": &req.sender_host, "fromId": req.sender_id, "term": req.term, "primaryId": req.primary_id.unwrap_or(-1),
        "$db": "admin",
    }
}

pub fn heartbeat_request_from_bson(body: &Document) -> Result<HeartbeatRequest> {
    Ok(HeartbeatRequest {
        set_name: body
            .get_str("replSetHeartbeat")
            .map_err(|_| Error::failed_to_parse("replSetHeartbeat: set name"))?
            .to_string(),
        config_version: int(body, "configVersion")? as i32,
        config_term: opt_int(body, "configTerm").unwrap_or(-1),
        sender_id: int(body, "fromId")? as i32,
        sender_host: body.get_str("from").unwrap_or("").to_string(),
        term: int(body, "term")?,
        primary_id: opt_int(body, "primaryId").filter(|id| *id >= 0).map(|id| id as i32),
    })
}

pub fn heartbeat_response_to_bson(resp: &HeartbeatResponse) -> Document {
    let mut doc = doc! {
        "set": &resp.set_name, "state": resp.state.code(), "term": resp.term, "senderId": resp.sender_id,
        "appliedOpTime": resp.applied.to_document(), "durableOpTime": resp.durable.to_document(),
        "appliedWallTime": bson::DateTime::from_millis(resp.applied_wall_ms),
        "durableWallTime": bson::DateTime::from_millis(resp.durable_wall_ms),
        "configVersion": resp.config_version, "configTerm": resp.config_term,
        "lastCommittedOpTime": resp.commit_point.to_document(), "electable": resp.electable,
        "hbmsg": &resp.message,
    };
    if let Some(primary) = resp.primary_id {
        doc.insert("primaryId", primary);
    }
    if let Some(election) = resp.election_optime {
        doc.insert("electionTime", election.to_document());
    }
    if let Some(sync) = resp.sync_source_id {
        doc.insert("syncSourceId", sync);
    }
    if let Some(config) = &resp.config {
        doc.insert("config", config.to_document());
    }
    doc
}

pub fn heartbeat_response_from_bson(doc: &Document) -> Result<HeartbeatResponse> {
    let state =
        MemberState::from_code(int(doc, "state")? as i32).ok_or_else(|| Error::failed_to_parse("bad member state"))?;
    let config = match doc.get_document("config") {
        Ok(c) => Some(ReplSetConfig::parse_document(c).map_err(|e| Error::failed_to_parse(e.message))?),
        Err(_) => None,
    };
    let wall = |key: &str| match doc.get(key) {
        Some(Bson::DateTime(d)) => d.timestamp_millis(),
        _ => 0,
    };
    Ok(HeartbeatResponse {
        set_name: doc.get_str("set").unwrap_or("").to_string(),
        state,
        term: int(doc, "term")?,
        sender_id: int(doc, "senderId")? as i32,
        primary_id: opt_int(doc, "primaryId").map(|v| v as i32),
        election_optime: doc.get("electionTime").and_then(|v| OpTime::from_bson(v).ok()),
        applied: optime(doc, "appliedOpTime")?,
        durable: optime(doc, "durableOpTime")?,
        applied_wall_ms: wall("appliedWallTime"),
        durable_wall_ms: wall("durableWallTime"),
        sync_source_id: opt_int(doc, "syncSourceId").map(|v| v as i32),
        config_version: int(doc, "configVersion")? as i32,
        config_term: opt_int(doc, "configTerm").unwrap_or(-1),
        config,
        commit_point: optime(doc, "lastCommittedOpTime")?,
        electable: doc.get_bool("electable").unwrap_or(false),
        message: doc.get_str("hbmsg").unwrap_or("").to_string(),
    })
}

pub fn vote_request_to_bson(req: &VoteRequest) -> Document {
    doc! {
        "replSetRequestVotes": 1, "setName": &req.set_name, "dryRun": req.dry_run, "term": req.term,
        "candidateIndex": req.candidate_id, "configVersion": req.config_version, "configTerm": req.config_term,
        "lastAppliedOpTime": req.last_applied.to_document(), "$db": "admin",
    }
}

pub fn vote_request_from_bson(body: &Document) -> Result<VoteRequest> {
    Ok(VoteRequest {
        set_name: body.get_str("setName").unwrap_or("").to_string(),
        dry_run: body.get_bool("dryRun").unwrap_or(false),
        term: int(body, "term")?,
        candidate_id: int(body, "candidateIndex")? as i32,
        config_version: int(body, "configVersion")? as i32,
        config_term: opt_int(body, "configTerm").unwrap_or(-1),
        last_applied: optime(body, "lastAppliedOpTime")?,
    })
}

pub fn vote_response_to_bson(resp: &VoteResponse) -> Document {
    doc! {"term": resp.term, "voteGranted": resp.vote_granted, "reason": &resp.reason, "dryRun": resp.dry_run,
    "requestTerm": resp.request_term}
}

pub fn vote_response_from_bson(doc: &Document) -> Result<VoteResponse> {
    Ok(VoteResponse {
        term: int(doc, "term")?,
        vote_granted: doc.get_bool("voteGranted").unwrap_or(false),
        reason: doc.get_str("reason").unwrap_or("").to_string(),
        dry_run: doc.get_bool("dryRun").unwrap_or(false),
        request_term: opt_int(doc, "requestTerm").unwrap_or(0),
    })
}

/// `replSetUpdatePosition` with the sender's `term` in `$replData`, as mongod sends it: the receiver adopts a
/// newer term (a primary steps down) before it counts the positions.
pub fn update_position_to_bson(term: i64, positions: &[MemberPosition]) -> Document {
    let optimes: Vec<Bson> = positions
        .iter()
        .map(|p| {
            Bson::Document(doc! {
                "memberId": p.member_id, "cfgver": p.config_version,
                "appliedOpTime": p.applied.to_document(), "appliedWallTime": bson::DateTime::from_millis(p.applied_wall_ms),
                "durableOpTime": p.durable.to_document(), "durableWallTime": bson::DateTime::from_millis(p.durable_wall_ms),
            })
        })
        .collect();
    doc! {"replSetUpdatePosition": 1, "optimes": optimes, "$replData": {"term": term}, "$db": "admin"}
}

/// The sender's term (`$replData.term`, when it sent one) and the positions of `replSetUpdatePosition`.
pub fn update_position_from_bson(body: &Document) -> Result<(Option<i64>, Vec<MemberPosition>)> {
    let entries = body
        .get_array("optimes")
        .map_err(|_| Error::failed_to_parse("replSetUpdatePosition: 'optimes' array"))?;
    let mut out = Vec::new();
    for entry in entries {
        let Bson::Document(d) = entry else {
            return Err(Error::failed_to_parse("optimes entries must be objects"));
        };
        let wall = |key: &str| match d.get(key) {
            Some(Bson::DateTime(t)) => t.timestamp_millis(),
            _ => 0,
        };
        out.push(MemberPosition {
            member_id: int(d, "memberId")? as i32,
            config_version: int(d, "cfgver")? as i32,
            applied: optime(d, "appliedOpTime")?,
            applied_wall_ms: wall("appliedWallTime"),
            durable: optime(d, "durableOpTime")?,
            durable_wall_ms: wall("durableWallTime"),
        });
    }
    let term = match body.get("$replData") {
        None => None,
        Some(Bson::Document(repl_data)) => Some(int(repl_data, "term")?),
        Some(_) => {
            return Err(Error::failed_to_parse(
                "replSetUpdatePosition: '$replData' must be an object",
            ));
        }
    };
    Ok((term, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::MemberConfig;

    #[test]
    fn messages_round_trip() {
        let req = HeartbeatRequest {
            set_name: "rs0".into(),
            config_version: 3,
            config_term: 2,
            sender_id: 1,
            sender_host: "h:1".into(),
            term: 4,
            primary_id: Some(2),
        };
        assert_eq!(
            heartbeat_request_from_bson(&heartbeat_request_to_bson(&req)).expect("decodes"),
            req
        );
        let resp = HeartbeatResponse {
            set_name: "rs0".into(),
            state: MemberState::Secondary,
            term: 4,
            sender_id: 2,
            primary_id: Some(1),
            election_optime: None,
            applied: OpTime::new(10, 2, 4),
            durable: OpTime::new(10, 1, 4),
            applied_wall_ms: 10_000,
            durable_wall_ms: 9_000,
            sync_source_id: Some(1),
            config_version: 3,
            config_term: 2,
            config: Some(ReplSetConfig::new("rs0", vec![MemberConfig::new(0, "h:1")])),
            commit_point: OpTime::new(9, 1, 4),
            electable: true,
            message: "error RS102 too stale to catch up".into(),
        };
        assert_eq!(
            heartbeat_response_from_bson(&heartbeat_response_to_bson(&resp)).expect("decodes"),
            resp
        );
        let vote = VoteRequest {
            set_name: "rs0".into(),
            dry_run: true,
            term: 5,
            candidate_id: 2,
            config_version: 3,
            config_term: 2,
            last_applied: OpTime::new(1, 1, 1),
        };
        assert_eq!(
            vote_request_from_bson(&vote_request_to_bson(&vote)).expect("decodes"),
            vote
        );
        let answer = VoteResponse {
            term: 5,
            vote_granted: true,
            reason: String::new(),
            dry_run: true,
            request_term: 5,
        };
        assert_eq!(
            vote_response_from_bson(&vote_response_to_bson(&answer)).expect("decodes"),
            answer
        );
        let pos = vec![MemberPosition {
            member_id: 1,
            config_version: 3,
            applied: OpTime::new(5, 1, 2),
            applied_wall_ms: 5000,
            durable: OpTime::new(5, 1, 2),
            durable_wall_ms: 5000,
        }];
        assert_eq!(
            update_position_from_bson(&update_position_to_bson(7, &pos)).expect("decodes"),
            (Some(7), pos.clone())
        );
        let mut without_term = update_position_to_bson(7, &pos);
        without_term.remove("$replData");
        assert_eq!(update_position_from_bson(&without_term).expect("decodes"), (None, pos));
    }
}
