//! Proxy rules: an ordered, iptables-like table evaluated per directed flow of bytes (from member → to member).
//!
//! Rules are checked in order. `pass`, `drop` and `reject` end the evaluation (like ACCEPT, DROP and REJECT);
//! `delay` and `bandwidth` shape the flow and let evaluation continue (delays add up, the lowest bandwidth
//! wins). A flow no terminal rule matches passes. A [`Grudge`] — who cannot hear whom — turns into drop rules,
//! so a one-way partition is simply a grudge in one direction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A member's position in the replica-set config.
pub type MemberId = usize;

/// What a rule does to the bytes of a flow it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// Forward (terminal).
    Pass,
    /// Blackhole: bytes are held, the connection stays open and stalls until the rule goes (terminal).
    Drop,
    /// Reset the connection (RST), and every new one (terminal).
    Reject,
    /// Hold each chunk `delay_ms` ± `jitter_ms` after it arrived (non-terminal).
    Delay { delay_ms: u64, jitter_ms: u64 },
    /// At most this many bytes per second (non-terminal).
    Bandwidth { bytes_per_sec: u64 },
}

/// One rule: a match on the flow's source and destination (`None` matches any member) and an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub from: Option<MemberId>,
    pub to: Option<MemberId>,
    #[serde(flatten)]
    pub action: Action,
}

impl Rule {
    /// A rule for the flow `from → to`.
    pub fn flow(from: MemberId, to: MemberId, action: Action) -> Rule {
        Rule {
            from: Some(from),
            to: Some(to),
            action,
        }
    }

    /// A rule for every flow.
    pub fn all(action: Action) -> Rule {
        Rule {
            from: None,
            to: None,
            action,
        }
    }

    fn matches(&self, from: MemberId, to: MemberId) -> bool {
        self.from.is_none_or(|f| f == from) && self.to.is_none_or(|t| t == to)
    }
}

/// Where the evaluation of a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Pass,
    Drop,
    Reject,
}

/// The evaluated treatment of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub disposition: Disposition,
    pub delay: Duration,
    pub jitter: Duration,
    pub bytes_per_sec: Option<u64>,
}

/// The ordered rule table shared by every proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTable {
    pub rules: Vec<Rule>,
}

impl RuleTable {
    /// Evaluates the table for the flow `from → to`.
    pub fn verdict(&self, from: MemberId, to: MemberId) -> Verdict {
        let mut verdict = Verdict {
            disposition: Disposition::Pass,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            bytes_per_sec: None,
        };
        for rule in self.rules.iter().filter(|r| r.matches(from, to)) {
            match rule.action {
                Action::Pass => return verdict,
                Action::Drop => {
                    verdict.disposition = Disposition::Drop;
                    return verdict;
                }
                Action::Reject => {
                    verdict.disposition = Disposition::Reject;
                    return verdict;
                }
                Action::Delay { delay_ms, jitter_ms } => {
                    verdict.delay += Duration::from_millis(delay_ms);
                    verdict.jitter += Duration::from_millis(jitter_ms);
                }
                Action::Bandwidth { bytes_per_sec } => {
                    let limit = bytes_per_sec.max(1);
                    verdict.bytes_per_sec = Some(verdict.bytes_per_sec.map_or(limit, |b| b.min(limit)));
                }
            }
        }
        verdict
    }
}

/// Who cannot hear whom: `victim → the members whose bytes it does not receive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grudge(pub BTreeMap<MemberId, BTreeSet<MemberId>>);

impl Grudge {
    /// No grudges.
    pub fn new() -> Grudge {
        Grudge::default()
    }

    /// `victim` stops hearing `from` (one direction).
    pub fn cannot_hear(&mut self, victim: MemberId, from: MemberId) {
        if victim != from {
            self.0.entry(victim).or_default().insert(from);
        }
    }

    /// Every member of `a` and every member of `b` stop hearing each other.
    pub fn cut(&mut self, a: &[MemberId], b: &[MemberId]) {
        for &x in a {
            for &y in b {
                self.cannot_hear(x, y);
                self.cannot_hear(y, x);
            }
        }
    }

    /// The same grudge with every member id moved up by `offset` (a replica set's members inside a larger
    /// proxy network).
    pub fn shifted(&self, offset: MemberId) -> Grudge {
        Grudge(
            self.0
                .iter()
                .map(|(victim, from)| (victim + offset, from.iter().map(|f| f + offset).collect()))
                .collect(),
        )
    }

    /// Whether `victim` hears `from`.
    #[cfg(test)]
    pub fn hears(&self, victim: MemberId, from: MemberId) -> bool {
        !self.0.get(&victim).is_some_and(|s| s.contains(&from))
    }

    /// True when nobody has a grudge.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    /// The rules that enforce the grudge with `action` (`Drop` or `Reject`) on each cut flow.
    pub fn rules(&self, action: Action) -> Vec<Rule> {
        self.0
            .iter()
            .flat_map(|(victim, froms)| froms.iter().map(move |from| Rule::flow(*from, *victim, action)))
            .collect()
    }

    /// `n2 ✗← n1,n3; n1 ✗← n2` style text (members numbered from 1).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(_, froms)| !froms.is_empty())
            .map(|(victim, froms)| {
                let froms: Vec<String> = froms.iter().map(|f| format!("n{}", f + 1)).collect();
                format!("n{} cannot hear {}", victim + 1, froms.join(","))
            })
            .collect();
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_terminal_rule_wins_and_default_is_pass() {
        let table = RuleTable {
            rules: vec![
                Rule::flow(0, 1, Action::Drop),
                Rule::all(Action::Reject),
                Rule::flow(1, 0, Action::Pass),
            ],
        };
        assert_eq!(table.verdict(0, 1).disposition, Disposition::Drop);
        assert_eq!(table.verdict(1, 0).disposition, Disposition::Reject);
        assert_eq!(RuleTable::default().verdict(2, 0).disposition, Disposition::Pass);
    }

    #[test]
    fn shaping_rules_accumulate_until_a_terminal_rule() {
        let table = RuleTable {
            rules: vec![
                Rule::all(Action::Delay {
                    delay_ms: 10,
                    jitter_ms: 2,
                }),
                Rule::flow(
                    0,
                    1,
                    Action::Delay {
                        delay_ms: 5,
                        jitter_ms: 0,
                    },
                ),
                Rule::all(Action::Bandwidth { bytes_per_sec: 1000 }),
                Rule::flow(0, 1, Action::Bandwidth { bytes_per_sec: 10 }),
                Rule::flow(0, 1, Action::Pass),
                Rule::all(Action::Drop),
            ],
        };
        let v = table.verdict(0, 1);
        assert_eq!(v.disposition, Disposition::Pass);
        assert_eq!(v.delay, Duration::from_millis(15));
        assert_eq!(v.jitter, Duration::from_millis(2));
        assert_eq!(v.bytes_per_sec, Some(10));
        let other = table.verdict(1, 0);
        assert_eq!(other.disposition, Disposition::Drop);
        assert_eq!(other.delay, Duration::from_millis(10));
    }

    #[test]
    fn a_one_way_grudge_cuts_one_direction_only() {
        let mut grudge = Grudge::new();
        grudge.cannot_hear(1, 0);
        let table = RuleTable {
            rules: grudge.rules(Action::Drop),
        };
        assert_eq!(table.verdict(0, 1).disposition, Disposition::Drop);
        assert_eq!(table.verdict(1, 0).disposition, Disposition::Pass);
        assert!(!grudge.hears(1, 0) && grudge.hears(0, 1));
        assert_eq!(grudge.describe(), "n2 cannot hear n1");
    }

    #[test]
    fn a_cut_is_symmetric_and_ignores_self_links() {
        let mut grudge = Grudge::new();
        grudge.cut(&[0], &[0, 1, 2]);
        assert!(!grudge.hears(0, 1) && !grudge.hears(1, 0) && !grudge.hears(2, 0) && !grudge.hears(0, 2));
        assert!(grudge.hears(0, 0) && grudge.hears(1, 2));
        assert_eq!(grudge.rules(Action::Drop).len(), 4);
    }

    #[test]
    fn rules_round_trip_through_toml() {
        let table = RuleTable {
            rules: vec![
                Rule::flow(
                    0,
                    1,
                    Action::Delay {
                        delay_ms: 50,
                        jitter_ms: 10,
                    },
                ),
                Rule::all(Action::Reject),
            ],
        };
        let text = toml::to_string(&table).expect("toml");
        assert_eq!(toml::from_str::<RuleTable>(&text).expect("parse"), table);
    }
}
