//! Reading and writing `ReplSetConfig` as a BSON document with MongoDB's field names.
//!
//! Numbers are accepted as int32, int64 or double (shells send doubles), booleans also as numbers; unknown
//! fields are ignored. Type errors and missing required fields are InvalidReplicaSetConfig (93).
//! `from_document` also validates; `parse_document` only reads.

use std::collections::BTreeMap;

use bson::{Bson, Document, doc};

use super::{MemberConfig, ReplSetConfig, ReplSetSettings};
use crate::repl::error::ReplError;
use crate::repl::optime::UNINITIALIZED_TERM;

impl ReplSetConfig {
    /// Reads and validates a config document (`replSetInitiate`, `replSetReconfig`, heartbeats).
    pub fn from_document(document: &Document) -> Result<Self, ReplError> {
        let config = Self::parse_document(document)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a config document without checking MongoDB's validity rules.
    pub fn parse_document(document: &Document) -> Result<Self, ReplError> {
        let set_name = required_str(document, "_id", "config")?.to_owned();
        let version = required_i32(document, "version", "config")?;
        let term = optional_int(document, "term", "config")?.unwrap_or(UNINITIALIZED_TERM);
        let protocol_version = optional_int(document, "protocolVersion", "config")?.unwrap_or(1);
        let journal_default = optional_bool(document, "writeConcernMajorityJournalDefault", "config")?;
        let members = match document.get("members") {
            Some(Bson::Array(members)) => members.iter().map(parse_member).collect::<Result<Vec<_>, _>>()?,
            _ => return Err(ReplError::invalid_config("config field 'members' must be an array")),
        };
        let settings = match document.get("settings") {
            None | Some(Bson::Null) => ReplSetSettings::default(),
            Some(Bson::Document(settings)) => parse_settings(settings)?,
            Some(_) => return Err(ReplError::invalid_config("config field 'settings' must be a document")),
        };
        Ok(Self {
            set_name,
            version,
            term,
            protocol_version,
            write_concern_majority_journal_default: journal_default.unwrap_or(true),
            members,
            settings,
        })
    }

    /// The config as MongoDB writes it (`replSetGetConfig`, `local.system.replset`).
    pub fn to_document(&self) -> Document {
        let members: Vec<Bson> = self
            .members
            .iter()
            .map(|member| Bson::Document(member.to_document()))
            .collect();
        doc! {
            "_id": &self.set_name,
            "version": self.version,
            "term": self.term,
            "protocolVersion": self.protocol_version,
            "writeConcernMajorityJournalDefault": self.write_concern_majority_journal_default,
            "members": members,
            "settings": self.settings.to_document(),
        }
    }
}

impl MemberConfig {
    /// The member as MongoDB writes it.
    pub fn to_document(&self) -> Document {
        let tags: Document = self
            .tags
            .iter()
            .map(|(key, value)| (key.clone(), Bson::from(value.as_str())))
            .collect();
        let mut out = doc! {
            "_id": self.id,
            "host": &self.host,
            "arbiterOnly": self.arbiter_only,
            "buildIndexes": self.build_indexes,
            "hidden": self.hidden,
            "priority": self.priority,
            "tags": tags,
            "secondaryDelaySecs": self.secondary_delay_secs,
            "votes": self.votes,
        };
        if self.newly_added {
            out.insert("newlyAdded", true);
        }
        out
    }
}

impl ReplSetSettings {
    /// The settings as MongoDB writes them.
    pub fn to_document(&self) -> Document {
        let modes: Document = self
            .get_last_error_modes
            .iter()
            .map(|(mode, tags)| {
                let counts: Document = tags
                    .iter()
                    .map(|(tag, count)| (tag.clone(), Bson::Int32(*count)))
                    .collect();
                (mode.clone(), Bson::Document(counts))
            })
            .collect();
        let mut document = doc! {
            "chainingAllowed": self.chaining_allowed,
            "heartbeatIntervalMillis": self.heartbeat_interval_millis,
            "heartbeatTimeoutSecs": self.heartbeat_timeout_secs,
            "electionTimeoutMillis": self.election_timeout_millis,
            "catchUpTimeoutMillis": self.catch_up_timeout_millis,
            "catchUpTakeoverDelayMillis": self.catch_up_takeover_delay_millis,
            "getLastErrorModes": modes,
            "getLastErrorDefaults": { "w": 1, "wtimeout": 0 },
        };
        if let Some(id) = self.replica_set_id {
            document.insert("replicaSetId", id);
        }
        document
    }
}

fn parse_member(value: &Bson) -> Result<MemberConfig, ReplError> {
    let Bson::Document(document) = value else {
        return Err(ReplError::invalid_config("each entry of 'members' must be a document"));
    };
    let id = required_i32(document, "_id", "member")?;
    let host = required_str(document, "host", "member")?.to_owned();
    let arbiter_only = optional_bool(document, "arbiterOnly", "member")?.unwrap_or(false);
    let default_priority = if arbiter_only { 0.0 } else { 1.0 };
    Ok(MemberConfig {
        id,
        host,
        priority: optional_number(document, "priority", "member")?.unwrap_or(default_priority),
        votes: optional_i32(document, "votes", "member")?.unwrap_or(1),
        arbiter_only,
        hidden: optional_bool(document, "hidden", "member")?.unwrap_or(false),
        secondary_delay_secs: optional_int(document, "secondaryDelaySecs", "member")?.unwrap_or(0),
        build_indexes: optional_bool(document, "buildIndexes", "member")?.unwrap_or(true),
        tags: parse_tags(document)?,
        newly_added: optional_bool(document, "newlyAdded", "member")?.unwrap_or(false),
    })
}

fn parse_tags(member: &Document) -> Result<BTreeMap<String, String>, ReplError> {
    let tags = match member.get("tags") {
        None | Some(Bson::Null) => return Ok(BTreeMap::new()),
        Some(Bson::Document(tags)) => tags,
        Some(_) => return Err(ReplError::invalid_config("member field 'tags' must be a document")),
    };
    tags.iter()
        .map(|(key, value)| match value {
            Bson::String(value) => Ok((key.clone(), value.clone())),
            _ => Err(ReplError::invalid_config(format!(
                "tag '{key}' must have a string value"
            ))),
        })
        .collect()
}

fn parse_settings(document: &Document) -> Result<ReplSetSettings, ReplError> {
    let defaults = ReplSetSettings::default();
    let int_or = |key: &str, default: i64| optional_int(document, key, "settings").map(|v| v.unwrap_or(default));
    let replica_set_id = match document.get("replicaSetId") {
        None | Some(Bson::Null) => None,
        Some(Bson::ObjectId(id)) => Some(*id),
        Some(_) => {
            return Err(ReplError::invalid_config(
                "settings field 'replicaSetId' must be an ObjectId",
            ));
        }
    };
    Ok(ReplSetSettings {
        heartbeat_interval_millis: int_or("heartbeatIntervalMillis", defaults.heartbeat_interval_millis)?,
        heartbeat_timeout_secs: int_or("heartbeatTimeoutSecs", defaults.heartbeat_timeout_secs)?,
        election_timeout_millis: int_or("electionTimeoutMillis", defaults.election_timeout_millis)?,
        catch_up_timeout_millis: int_or("catchUpTimeoutMillis", defaults.catch_up_timeout_millis)?,
        catch_up_takeover_delay_millis: int_or("catchUpTakeoverDelayMillis", defaults.catch_up_takeover_delay_millis)?,
        chaining_allowed: optional_bool(document, "chainingAllowed", "settings")?.unwrap_or(true),
        replica_set_id,
        get_last_error_modes: parse_modes(document)?,
    })
}

fn parse_modes(settings: &Document) -> Result<BTreeMap<String, BTreeMap<String, i32>>, ReplError> {
    let modes = match settings.get("getLastErrorModes") {
        None | Some(Bson::Null) => return Ok(BTreeMap::new()),
        Some(Bson::Document(modes)) => modes,
        Some(_) => {
            return Err(ReplError::invalid_config(
                "settings field 'getLastErrorModes' must be a document",
            ));
        }
    };
    let mut parsed = BTreeMap::new();
    for (mode, counts) in modes {
        let Bson::Document(counts) = counts else {
            return Err(ReplError::invalid_config(format!(
                "getLastErrorModes.{mode} must be a document"
            )));
        };
        let mut tags = BTreeMap::new();
        for tag in counts.keys() {
            tags.insert(tag.clone(), required_i32(counts, tag, "getLastErrorModes")?);
        }
        parsed.insert(mode.clone(), tags);
    }
    Ok(parsed)
}

fn required_str<'a>(document: &'a Document, key: &str, context: &str) -> Result<&'a str, ReplError> {
    match document.get(key) {
        Some(Bson::String(value)) => Ok(value),
        Some(_) => Err(ReplError::invalid_config(format!(
            "{context} field '{key}' must be a string"
        ))),
        None => Err(ReplError::invalid_config(format!(
            "{context} is missing required field '{key}'"
        ))),
    }
}

fn required_i32(document: &Document, key: &str, context: &str) -> Result<i32, ReplError> {
    optional_i32(document, key, context)?
        .ok_or_else(|| ReplError::invalid_config(format!("{context} is missing required field '{key}'")))
}

fn optional_i32(document: &Document, key: &str, context: &str) -> Result<Option<i32>, ReplError> {
    match optional_int(document, key, context)? {
        None => Ok(None),
        Some(value) => i32::try_from(value)
            .map(Some)
            .map_err(|_| ReplError::invalid_config(format!("{context} field '{key}' is out of range"))),
    }
}

/// An integral number of any BSON numeric type; `None` when absent or null.
fn optional_int(document: &Document, key: &str, context: &str) -> Result<Option<i64>, ReplError> {
    match document.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(value)) => Ok(Some(i64::from(*value))),
        Some(Bson::Int64(value)) => Ok(Some(*value)),
        Some(Bson::Double(value)) if value.fract() == 0.0 && value.abs() < 9.0e15 => Ok(Some(*value as i64)),
        Some(_) => Err(ReplError::invalid_config(format!(
            "{context} field '{key}' must be an integer"
        ))),
    }
}

fn optional_number(document: &Document, key: &str, context: &str) -> Result<Option<f64>, ReplError> {
    match document.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(value)) => Ok(Some(f64::from(*value))),
        Some(Bson::Int64(value)) => Ok(Some(*value as f64)),
        Some(Bson::Double(value)) if value.is_finite() => Ok(Some(*value)),
        Some(_) => Err(ReplError::invalid_config(format!(
            "{context} field '{key}' must be a finite number"
        ))),
    }
}

fn optional_bool(document: &Document, key: &str, context: &str) -> Result<Option<bool>, ReplError> {
    match document.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(value)) => Ok(Some(*value)),
        Some(Bson::Int32(value)) => Ok(Some(*value != 0)),
        Some(Bson::Int64(value)) => Ok(Some(*value != 0)),
        Some(Bson::Double(value)) => Ok(Some(*value != 0.0)),
        Some(_) => Err(ReplError::invalid_config(format!(
            "{context} field '{key}' must be a boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use bson::oid::ObjectId;

    use super::*;

    fn three_members() -> Document {
        doc! {
            "_id": "rs0",
            "version": 1,
            "members": [
                {"_id": 0, "host": "127.0.0.1:27017"},
                {"_id": 1, "host": "127.0.0.1:27018", "priority": 2.5, "tags": {"dc": "east"}},
                {"_id": 2, "host": "127.0.0.1:27019", "arbiterOnly": true},
            ],
        }
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let config = ReplSetConfig::from_document(&three_members()).expect("valid config");
        assert_eq!(config.set_name, "rs0");
        assert_eq!(config.term, -1);
        assert_eq!(config.protocol_version, 1);
        assert_eq!(config.settings, ReplSetSettings::default());
        assert_eq!(config.members[0].priority, 1.0);
        assert_eq!(config.members[0].votes, 1);
        assert!(config.members[0].build_indexes);
        assert_eq!(config.members[1].priority, 2.5);
        assert_eq!(config.members[1].tags.get("dc").map(String::as_str), Some("east"));
        assert_eq!(config.members[2].priority, 0.0, "arbiters default to priority 0");
    }

    #[test]
    fn round_trip_through_document() {
        let mut config = ReplSetConfig::from_document(&three_members()).expect("valid config");
        config.term = 4;
        config.settings.replica_set_id = Some(ObjectId::from_bytes([7; 12]));
        config.settings.election_timeout_millis = 1000;
        config
            .settings
            .get_last_error_modes
            .insert("east".into(), [("dc".to_owned(), 1)].into());
        let document = config.to_document();
        assert_eq!(document.get_i64("term").ok(), Some(4));
        assert_eq!(document.get_i32("version").ok(), Some(1));
        assert_eq!(document.get_i64("protocolVersion").ok(), Some(1));
        assert_eq!(ReplSetConfig::from_document(&document), Ok(config));
    }

    #[test]
    fn accepts_shell_doubles_and_int64() {
        let document = doc! {
            "_id": "rs0", "version": 2.0, "term": 3_i32,
            "members": [{"_id": 0.0, "host": "a:1", "votes": 1_i64, "hidden": 0}],
            "settings": {"electionTimeoutMillis": 500_i32, "chainingAllowed": false},
        };
        let config = ReplSetConfig::parse_document(&document).expect("parses");
        assert_eq!((config.version, config.term, config.members[0].id), (2, 3, 0));
        assert_eq!(config.settings.election_timeout_millis, 500);
        assert!(!config.settings.chaining_allowed);
    }

    #[test]
    fn type_errors_are_code_93() {
        let cases = [
            doc! {"version": 1, "members": []},
            doc! {"_id": 5, "version": 1, "members": []},
            doc! {"_id": "rs0", "members": []},
            doc! {"_id": "rs0", "version": 1.5, "members": []},
            doc! {"_id": "rs0", "version": 1_i64 << 40, "members": []},
            doc! {"_id": "rs0", "version": 1, "members": {}},
            doc! {"_id": "rs0", "version": 1, "members": [1]},
            doc! {"_id": "rs0", "version": 1, "members": [{"_id": 0}]},
            doc! {"_id": "rs0", "version": 1, "members": [{"_id": 0, "host": "a:1", "priority": "high"}]},
            doc! {"_id": "rs0", "version": 1, "members": [{"_id": 0, "host": "a:1", "tags": {"dc": 1}}]},
            doc! {"_id": "rs0", "version": 1, "members": [], "settings": 3},
            doc! {"_id": "rs0", "version": 1, "members": [], "settings": {"replicaSetId": "x"}},
            doc! {"_id": "rs0", "version": 1, "members": [], "settings": {"getLastErrorModes": {"m": 1}}},
        ];
        for case in cases {
            let error = ReplSetConfig::parse_document(&case).expect_err("must be rejected");
            assert_eq!(error.code, 93, "{case}: {error}");
        }
    }
}
