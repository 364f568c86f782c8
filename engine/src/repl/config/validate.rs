//! MongoDB's config rules: `validate` (a config on its own, code 93 InvalidReplicaSetConfig) and
//! `validate_reconfig_from` (a new config as a safe successor of the old one, code 103
//! NewReplicaSetConfigurationIncompatible).

use std::collections::BTreeSet;

use super::{
    MAX_MEMBERS, MAX_PRIORITY, MAX_SECONDARY_DELAY_SECS, MAX_VOTING_MEMBERS, MemberConfig, ReplSetConfig,
    ReplSetSettings,
};
use crate::repl::error::ReplError;

impl ReplSetConfig {
    /// Checks every rule MongoDB applies to a config on its own.
    pub fn validate(&self) -> Result<(), ReplError> {
        if self.set_name.is_empty() {
            return Err(ReplError::invalid_config("replica set name (_id) must not be empty"));
        }
        if self.version < 1 {
            return Err(ReplError::invalid_config(format!(
                "version must be at least 1, not {}",
                self.version
            )));
        }
        if self.protocol_version != 1 {
            return Err(ReplError::invalid_config("only protocolVersion 1 is supported"));
        }
        self.members.iter().try_for_each(validate_member)?;
        validate_unique(&self.members)?;
        self.validate_counts()?;
        validate_settings(&self.settings)?;
        self.validate_modes()
    }

    /// Checks that `self` may replace `old`: same set, higher version, same member roles, and (unless `force`)
    /// at most one voter added or removed. Also validates `self` on its own first.
    pub fn validate_reconfig_from(&self, old: &ReplSetConfig, force: bool) -> Result<(), ReplError> {
        self.validate()?;
        if self.set_name != old.set_name {
            return Err(ReplError::incompatible_config(format!(
                "new config's set name '{}' differs from the current '{}'",
                self.set_name, old.set_name
            )));
        }
        if let (Some(new_id), Some(old_id)) = (self.settings.replica_set_id, old.settings.replica_set_id)
            && new_id != old_id
        {
            return Err(ReplError::incompatible_config("settings.replicaSetId may not change"));
        }
        if self.version <= old.version {
            return Err(ReplError::incompatible_config(format!(
                "new config version {} must be greater than the current version {}",
                self.version, old.version
            )));
        }
        self.validate_member_continuity(old)?;
        if !force {
            self.validate_single_voter_change(old)?;
        }
        Ok(())
    }

    fn validate_counts(&self) -> Result<(), ReplError> {
        if self.members.is_empty() {
            return Err(ReplError::invalid_config("a config needs at least one member"));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(ReplError::invalid_config(format!(
                "a config may have at most {MAX_MEMBERS} members, not {}",
                self.members.len()
            )));
        }
        // Members still `newlyAdded` count toward the limit: they will vote.
        let voters = self.members.iter().filter(|member| member.votes > 0).count();
        if voters == 0 {
            return Err(ReplError::invalid_config("a config needs at least one voting member"));
        }
        if voters > MAX_VOTING_MEMBERS {
            return Err(ReplError::invalid_config(format!(
                "a config may have at most {MAX_VOTING_MEMBERS} voting members, not {voters}"
            )));
        }
        if !self.members.iter().any(MemberConfig::is_electable) {
            return Err(ReplError::invalid_config(
                "a config needs at least one electable member (priority > 0)",
            ));
        }
        Ok(())
    }

    fn validate_modes(&self) -> Result<(), ReplError> {
        for (mode, tags) in &self.settings.get_last_error_modes {
            if mode == "majority" {
                return Err(ReplError::invalid_config(
                    "getLastErrorModes may not redefine 'majority'",
                ));
            }
            for (tag, count) in tags {
                if *count <= 0 {
                    return Err(ReplError::invalid_config(format!(
                        "mode '{mode}': count for '{tag}' must be > 0"
                    )));
                }
                if !self.members.iter().any(|member| member.tags.contains_key(tag)) {
                    return Err(ReplError::invalid_config(format!(
                        "mode '{mode}' uses undefined tag '{tag}'"
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate_member_continuity(&self, old: &ReplSetConfig) -> Result<(), ReplError> {
        for member in &self.members {
            if let Some(previous) = old.find_member_by_id(member.id)
                && previous.arbiter_only != member.arbiter_only
            {
                return Err(ReplError::incompatible_config(format!(
                    "member {} may not change its arbiterOnly field in a reconfig",
                    member.id
                )));
            }
            if let Some(previous) = old.find_member_by_host(&member.host)
                && previous.id != member.id
            {
                return Err(ReplError::incompatible_config(format!(
                    "host {} has _id {} in the new config but {} in the current one",
                    member.host, member.id, previous.id
                )));
            }
        }
        Ok(())
    }

    fn validate_single_voter_change(&self, old: &ReplSetConfig) -> Result<(), ReplError> {
        let new_voters: BTreeSet<i32> = self.voting_members().map(|member| member.id).collect();
        let old_voters: BTreeSet<i32> = old.voting_members().map(|member| member.id).collect();
        let changed = new_voters.symmetric_difference(&old_voters).count();
        if changed > 1 {
            return Err(ReplError::incompatible_config(format!(
                "a non-force reconfig may add or remove at most one voting member; this one changes {changed}"
            )));
        }
        Ok(())
    }
}

fn validate_member(member: &MemberConfig) -> Result<(), ReplError> {
    let id = member.id;
    if id < 0 {
        return Err(ReplError::invalid_config(format!(
            "member _id must be non-negative, not {id}"
        )));
    }
    validate_host(&member.host)?;
    if !(0.0..=MAX_PRIORITY).contains(&member.priority) {
        return Err(ReplError::invalid_config(format!(
            "member {id}: priority must be between 0 and 1000"
        )));
    }
    if member.votes != 0 && member.votes != 1 {
        return Err(ReplError::invalid_config(format!("member {id}: votes must be 0 or 1")));
    }
    if !(0..=MAX_SECONDARY_DELAY_SECS).contains(&member.secondary_delay_secs) {
        return Err(ReplError::invalid_config(format!(
            "member {id}: secondaryDelaySecs is out of range"
        )));
    }
    if member.arbiter_only && member.votes == 0 {
        return Err(ReplError::invalid_config(format!(
            "member {id}: an arbiter must have votes 1"
        )));
    }
    if member.priority > 0.0 {
        let reason = if member.arbiter_only {
            Some("arbiters")
        } else if member.hidden {
            Some("hidden members")
        } else if member.secondary_delay_secs > 0 {
            Some("delayed members")
        } else if member.votes == 0 {
            Some("non-voting members")
        } else if !member.build_indexes {
            Some("members with buildIndexes false")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ReplError::invalid_config(format!(
                "member {id}: {reason} must have priority 0"
            )));
        }
    }
    Ok(())
}

/// A host is "name" or "name:port" with a port in 1..=65535 and no whitespace.
fn validate_host(host: &str) -> Result<(), ReplError> {
    let invalid = || ReplError::invalid_config(format!("member host '{host}' is not a valid host:port"));
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    // IPv6 literals are bracketed: "[::1]:27017".
    let port = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && (!name.contains(':') || name.ends_with(']')) => Some(port),
        Some(_) if host.starts_with('[') => return Err(invalid()),
        Some(_) => return Err(invalid()),
        None => None,
    };
    match port.map(str::parse::<u16>) {
        None => Ok(()),
        Some(Ok(port)) if port > 0 => Ok(()),
        Some(_) => Err(invalid()),
    }
}

fn validate_unique(members: &[MemberConfig]) -> Result<(), ReplError> {
    let mut ids = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for member in members {
        if !ids.insert(member.id) {
            return Err(ReplError::invalid_config(format!("duplicate member _id {}", member.id)));
        }
        if !hosts.insert(member.host.as_str()) {
            return Err(ReplError::invalid_config(format!(
                "duplicate member host {}",
                member.host
            )));
        }
    }
    Ok(())
}

fn validate_settings(settings: &ReplSetSettings) -> Result<(), ReplError> {
    let positive = [
        ("heartbeatIntervalMillis", settings.heartbeat_interval_millis),
        ("heartbeatTimeoutSecs", settings.heartbeat_timeout_secs),
        ("electionTimeoutMillis", settings.election_timeout_millis),
    ];
    for (name, value) in positive {
        if value <= 0 {
            return Err(ReplError::invalid_config(format!(
                "settings.{name} must be positive, not {value}"
            )));
        }
    }
    let at_least_minus_one = [
        ("catchUpTimeoutMillis", settings.catch_up_timeout_millis),
        ("catchUpTakeoverDelayMillis", settings.catch_up_takeover_delay_millis),
    ];
    for (name, value) in at_least_minus_one {
        if value < -1 {
            return Err(ReplError::invalid_config(format!(
                "settings.{name} must be -1 or more, not {value}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bson::oid::ObjectId;

    use super::*;

    fn member(id: i32) -> MemberConfig {
        MemberConfig::new(id, format!("127.0.0.1:{}", 27017 + id))
    }

    fn config_of(members: Vec<MemberConfig>) -> ReplSetConfig {
        ReplSetConfig::new("rs0", members)
    }

    fn code(config: &ReplSetConfig) -> Option<i32> {
        config.validate().err().map(|error| error.code)
    }

    #[test]
    fn a_plain_three_member_set_is_valid() {
        assert_eq!(code(&config_of(vec![member(0), member(1), member(2)])), None);
    }

    #[test]
    fn duplicate_ids_and_hosts_are_rejected() {
        assert_eq!(code(&config_of(vec![member(0), member(0)])), Some(93));
        let same_host = MemberConfig { id: 1, ..member(0) };
        assert_eq!(code(&config_of(vec![member(0), same_host])), Some(93));
    }

    #[test]
    fn member_and_voter_limits() {
        let fifty: Vec<_> = (0..50)
            .map(|id| MemberConfig {
                votes: 0,
                priority: 0.0,
                ..member(id)
            })
            .collect();
        let mut ok = fifty.clone();
        ok[0] = member(0);
        assert_eq!(code(&config_of(ok.clone())), None);
        ok.push(MemberConfig {
            votes: 0,
            priority: 0.0,
            ..member(50)
        });
        assert_eq!(code(&config_of(ok)), Some(93), "51 members");
        assert_eq!(code(&config_of((0..7).map(member).collect())), None);
        assert_eq!(code(&config_of((0..8).map(member).collect())), Some(93), "8 voters");
        assert_eq!(code(&config_of(fifty)), Some(93), "no voting member");
    }

    #[test]
    fn special_members_need_priority_zero() {
        let cases = [
            MemberConfig {
                arbiter_only: true,
                ..member(1)
            },
            MemberConfig {
                hidden: true,
                ..member(1)
            },
            MemberConfig {
                secondary_delay_secs: 60,
                ..member(1)
            },
            MemberConfig { votes: 0, ..member(1) },
            MemberConfig {
                build_indexes: false,
                ..member(1)
            },
        ];
        for special in cases {
            let fixed = MemberConfig {
                priority: 0.0,
                ..special.clone()
            };
            assert_eq!(code(&config_of(vec![member(0), special])), Some(93));
            assert_eq!(code(&config_of(vec![member(0), fixed])), None);
        }
    }

    #[test]
    fn value_ranges() {
        let cases = [
            MemberConfig { votes: 2, ..member(1) },
            MemberConfig { votes: -1, ..member(1) },
            MemberConfig {
                priority: 1000.5,
                ..member(1)
            },
            MemberConfig {
                priority: -1.0,
                ..member(1)
            },
            MemberConfig { id: -3, ..member(1) },
            MemberConfig {
                secondary_delay_secs: -1,
                priority: 0.0,
                ..member(1)
            },
            MemberConfig {
                votes: 0,
                priority: 0.0,
                ..MemberConfig::arbiter(1, "x:1")
            },
            MemberConfig {
                host: String::new(),
                ..member(1)
            },
            MemberConfig {
                host: "a b:1".into(),
                ..member(1)
            },
            MemberConfig {
                host: "a:0".into(),
                ..member(1)
            },
            MemberConfig {
                host: "a:99999".into(),
                ..member(1)
            },
            MemberConfig {
                host: "::1:5".into(),
                ..member(1)
            },
        ];
        for bad in cases {
            assert_eq!(code(&config_of(vec![member(0), bad.clone()])), Some(93), "{bad:?}");
        }
        let fine = [
            MemberConfig {
                priority: 1000.0,
                ..member(1)
            },
            MemberConfig {
                host: "[::1]:27018".into(),
                ..member(1)
            },
        ];
        for good in fine {
            assert_eq!(code(&config_of(vec![member(0), good])), None);
        }
    }

    #[test]
    fn needs_an_electable_member() {
        let all_zero = vec![
            MemberConfig {
                priority: 0.0,
                ..member(0)
            },
            MemberConfig::arbiter(1, "x:1"),
        ];
        assert_eq!(code(&config_of(all_zero)), Some(93));
    }

    #[test]
    fn top_level_and_settings_rules() {
        let base = config_of(vec![member(0)]);
        assert_eq!(
            code(&ReplSetConfig {
                set_name: String::new(),
                ..base.clone()
            }),
            Some(93)
        );
        assert_eq!(
            code(&ReplSetConfig {
                version: 0,
                ..base.clone()
            }),
            Some(93)
        );
        assert_eq!(
            code(&ReplSetConfig {
                protocol_version: 0,
                ..base.clone()
            }),
            Some(93)
        );
        assert_eq!(
            code(&ReplSetConfig {
                members: vec![],
                ..base.clone()
            }),
            Some(93)
        );
        let mut bad = base.clone();
        bad.settings.election_timeout_millis = 0;
        assert_eq!(code(&bad), Some(93));
        let mut bad = base.clone();
        bad.settings.catch_up_timeout_millis = -2;
        assert_eq!(code(&bad), Some(93));
        let mut modes = base.clone();
        modes
            .settings
            .get_last_error_modes
            .insert("m".into(), [("dc".to_owned(), 1)].into());
        assert_eq!(code(&modes), Some(93), "undefined tag");
        modes.members[0].tags.insert("dc".into(), "east".into());
        assert_eq!(code(&modes), None);
    }

    fn successor(old: &ReplSetConfig, members: Vec<MemberConfig>) -> ReplSetConfig {
        ReplSetConfig {
            version: old.version + 1,
            members,
            ..old.clone()
        }
    }

    fn reconfig_code(new: &ReplSetConfig, old: &ReplSetConfig, force: bool) -> Option<i32> {
        new.validate_reconfig_from(old, force).err().map(|error| error.code)
    }

    #[test]
    fn reconfig_adds_or_removes_one_voter_at_a_time() {
        let old = config_of(vec![member(0), member(1), member(2)]);
        let add_one = successor(&old, vec![member(0), member(1), member(2), member(3)]);
        assert_eq!(reconfig_code(&add_one, &old, false), None);
        let remove_one = successor(&old, vec![member(0), member(1)]);
        assert_eq!(reconfig_code(&remove_one, &old, false), None);
        let add_two = successor(&old, vec![member(0), member(1), member(2), member(3), member(4)]);
        assert_eq!(reconfig_code(&add_two, &old, false), Some(103));
        assert_eq!(reconfig_code(&add_two, &old, true), None, "force skips the voter rule");
        let swap = successor(&old, vec![member(0), member(1), member(3)]);
        assert_eq!(reconfig_code(&swap, &old, false), Some(103));
        let non_voter = MemberConfig {
            votes: 0,
            priority: 0.0,
            ..member(3)
        };
        let add_non_voter = successor(&old, vec![member(0), member(1), member(2), non_voter]);
        assert_eq!(reconfig_code(&add_non_voter, &old, false), None);
    }

    #[test]
    fn reconfig_needs_higher_version_same_name_same_roles() {
        let old = config_of(vec![member(0), member(1), member(2)]);
        let same_version = ReplSetConfig {
            version: old.version,
            ..old.clone()
        };
        assert_eq!(reconfig_code(&same_version, &old, true), Some(103));
        let renamed = ReplSetConfig {
            set_name: "rs1".into(),
            ..successor(&old, old.members.clone())
        };
        assert_eq!(reconfig_code(&renamed, &old, true), Some(103));
        let mut new_id = successor(&old, old.members.clone());
        new_id.settings.replica_set_id = Some(ObjectId::from_bytes([1; 12]));
        let mut old_with_id = old.clone();
        old_with_id.settings.replica_set_id = Some(ObjectId::from_bytes([2; 12]));
        assert_eq!(reconfig_code(&new_id, &old_with_id, false), Some(103));
        let to_arbiter = successor(
            &old,
            vec![member(0), member(1), MemberConfig::arbiter(2, "127.0.0.1:27019")],
        );
        assert_eq!(reconfig_code(&to_arbiter, &old, false), Some(103));
        let moved_id = successor(&old, vec![member(0), member(1), MemberConfig { id: 9, ..member(2) }]);
        assert_eq!(reconfig_code(&moved_id, &old, true), Some(103));
        let invalid = successor(&old, vec![member(0), member(0)]);
        assert_eq!(reconfig_code(&invalid, &old, false), Some(93));
    }
}
