//! The nemesis vocabulary: faults, their targets, and the planned steps of a schedule.

use serde::{Deserialize, Serialize};

/// How a partition is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// The primary against everyone else.
    IsolatePrimary,
    /// Two random halves.
    RandomHalves,
    /// Every member hears a different majority.
    MajoritiesRing,
    /// Two halves with one member (the bridge) in both.
    Bridge,
    /// Nobody hears the primary, the primary hears everyone.
    OneWay,
}

/// A fault the nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL, restarted when healed.
    Kill,
    /// SIGSTOP, SIGCONT when healed.
    Pause,
    /// SIGTERM (graceful), restarted when healed.
    Stop,
    /// SIGKILL, delete the data, restart empty (initial sync).
    Wipe,
    /// Network partition through the proxies.
    Partition(PartitionKind),
    /// Every member link delayed by 50 ms ± 25 ms.
    Slow,
    /// Remove a secondary from the replica-set config (`rs.remove`), then add it back (`rs.add`).
    Membership,
    /// Run the targets' wall clocks up to a minute ahead or behind (the `skewClock` fail point); reset on heal.
    Clock,
    /// Jepsen's primary-divergence sequence: isolate the primary and run its clock a minute ahead, so the
    /// writes it still takes carry later timestamps than the new primary's; on heal, kill the new primary,
    /// heal the network, wait for an election, restart the killed member and reset the clock. Only terms in
    /// optimes keep the old primary's diverged oplog from winning that election.
    PrimaryDivergence,
}

/// Which members a process fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary,
    /// A random minority (at least one member).
    Minority,
    /// A random majority.
    Majority,
    All,
    /// One member by index.
    Named(usize),
}

impl Target {
    /// Parses `primary`, `minority`, `majority`, `all` or a member name `n1`, `n2`, ...
    pub fn from_name(name: &str) -> Option<Target> {
        match name {
            "primary" => Some(Target::Primary),
            "minority" => Some(Target::Minority),
            "majority" => Some(Target::Majority),
            "all" => Some(Target::All),
            other => other
                .strip_prefix('n')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .map(|n| Target::Named(n - 1)),
        }
    }

    /// Every target name a set of `members` members accepts, for messages: `primary, ..., n1 to n5`.
    pub fn names(members: usize) -> Vec<String> {
        let mut names: Vec<String> = ["primary", "minority", "majority", "all"].map(String::from).to_vec();
        names.push(match members {
            0 => return names,
            1 => "n1".to_string(),
            n => format!("n1 to n{n}"),
        });
        names
    }

    /// The name as written in specs and histories.
    pub fn name(self) -> String {
        match self {
            Target::Primary => "primary".into(),
            Target::Minority => "minority".into(),
            Target::Majority => "majority".into(),
            Target::All => "all".into(),
            Target::Named(i) => format!("n{}", i + 1),
        }
    }
}

impl Fault {
    /// Every name [`Fault::expand`] accepts, for help and messages.
    pub const NAMES: [&'static str; 16] = [
        "kill",
        "pause",
        "stop",
        "wipe",
        "partition",
        "partition-isolate-primary",
        "partition-halves",
        "partition-ring",
        "partition-bridge",
        "partition-one-way",
        "slow",
        "membership",
        "clock",
        "primary-divergence",
        "all",
        "none",
    ];

    /// Expands a `--nemesis` name into faults: `kill`, `pause`, `stop`, `wipe`, `partition` (every shape),
    /// `partition-isolate-primary`, `partition-halves`, `partition-ring`, `partition-bridge`,
    /// `partition-one-way`, `clock`, `primary-divergence`, `all`; `none` is no fault.
    pub fn expand(name: &str) -> Option<Vec<Fault>> {
        use PartitionKind::*;
        let every_partition = [IsolatePrimary, RandomHalves, MajoritiesRing, Bridge, OneWay].map(Fault::Partition);
        Some(match name {
            "none" => vec![],
            "kill" => vec![Fault::Kill],
            "pause" => vec![Fault::Pause],
            "stop" => vec![Fault::Stop],
            "wipe" => vec![Fault::Wipe],
            "slow" => vec![Fault::Slow],
            "membership" => vec![Fault::Membership],
            "clock" => vec![Fault::Clock],
            "primary-divergence" => vec![Fault::PrimaryDivergence],
            "partition" => every_partition.to_vec(),
            "partition-isolate-primary" => vec![Fault::Partition(IsolatePrimary)],
            "partition-halves" => vec![Fault::Partition(RandomHalves)],
            "partition-ring" => vec![Fault::Partition(MajoritiesRing)],
            "partition-bridge" => vec![Fault::Partition(Bridge)],
            "partition-one-way" => vec![Fault::Partition(OneWay)],
            "all" => {
                let mut all = vec![
                    Fault::Kill,
                    Fault::Pause,
                    Fault::Stop,
                    Fault::Wipe,
                    Fault::Slow,
                    Fault::Membership,
                    Fault::Clock,
                    Fault::PrimaryDivergence,
                ];
                all.extend(every_partition);
                all
            }
            _ => return None,
        })
    }

    /// The `f` of the operation that starts the fault.
    pub fn start_f(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Stop => "stop",
            Fault::Wipe => "wipe",
            Fault::Partition(_) => "start-partition",
            Fault::Slow => "start-slow",
            Fault::Membership => "start-membership",
            Fault::Clock => "start-clock",
            Fault::PrimaryDivergence => "start-divergence",
        }
    }

    /// The `f` of the operation that undoes it.
    pub fn heal_f(self) -> &'static str {
        match self {
            Fault::Kill | Fault::Stop | Fault::Wipe => "restart",
            Fault::Pause => "resume",
            Fault::Partition(_) => "stop-partition",
            Fault::Slow => "stop-slow",
            Fault::Membership => "stop-membership",
            Fault::Clock => "stop-clock",
            Fault::PrimaryDivergence => "stop-divergence",
        }
    }

    /// The shape's name for partitions, the fault's otherwise.
    pub fn describe(self) -> String {
        match self {
            Fault::Partition(kind) => format!("partition {}", kind_name(kind)),
            Fault::PrimaryDivergence => "primary-divergence".into(),
            Fault::Clock => "clock".into(),
            other => other.start_f().to_string(),
        }
    }

    /// Targets drawn from when the spec names none.
    pub fn default_targets(self) -> &'static [Target] {
        match self {
            Fault::Kill | Fault::Pause | Fault::Stop => &[Target::Primary, Target::Minority],
            Fault::Wipe => &[Target::Minority],
            Fault::Partition(_) | Fault::Slow => &[Target::All],
            Fault::Membership => &[Target::Minority],
            Fault::Clock => &[Target::Primary, Target::Minority, Target::All],
            Fault::PrimaryDivergence => &[Target::Primary],
        }
    }
}

/// The kebab-case name of a partition shape.
pub fn kind_name(kind: PartitionKind) -> &'static str {
    match kind {
        PartitionKind::IsolatePrimary => "isolate-primary",
        PartitionKind::RandomHalves => "random-halves",
        PartitionKind::MajoritiesRing => "majorities-ring",
        PartitionKind::Bridge => "bridge",
        PartitionKind::OneWay => "one-way",
    }
}

/// One planned nemesis action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Start(Fault, Target),
    Heal(Fault),
}

/// A step at a time (seconds since the run started).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedStep {
    pub at_secs: f64,
    pub step: Step,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(Target::from_name("n2"), Some(Target::Named(1)));
        assert_eq!(Target::from_name("n0"), None);
        assert_eq!(Target::from_name("majority"), Some(Target::Majority));
        for name in Fault::NAMES {
            assert!(Fault::expand(name).is_some(), "{name} is listed but not accepted");
        }
        assert_eq!(Target::names(3).last().map(String::as_str), Some("n1 to n3"));
        assert_eq!(Fault::expand("partition").map(|f| f.len()), Some(5));
        assert_eq!(Fault::expand("none"), Some(vec![]));
        assert_eq!(Fault::expand("bogus"), None);
        assert_eq!(Fault::expand("membership"), Some(vec![Fault::Membership]));
        assert_eq!(
            Fault::expand("all").map(|f| f.len()),
            Some(13),
            "every fault, membership changes, clocks and divergence included"
        );
        assert_eq!(Fault::expand("clock"), Some(vec![Fault::Clock]));
        assert_eq!(
            Fault::expand("primary-divergence"),
            Some(vec![Fault::PrimaryDivergence])
        );
    }
}
