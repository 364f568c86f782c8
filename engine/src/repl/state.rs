//! `MemberState`: the replica-set member states with MongoDB's numeric codes (`myState`, `state`) and names
//! (`stateStr`).

use std::fmt;

/// The state of a replica-set member, as reported by `replSetGetStatus` and heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// 0: starting up, config not loaded yet.
    Startup,
    /// 1: the primary; accepts writes.
    Primary,
    /// 2: a secondary; replicates and may serve reads.
    Secondary,
    /// 3: alive but not serving reads (e.g. too stale, maintenance).
    Recovering,
    /// 5: initial sync in progress.
    Startup2,
    /// 6: not yet known (seen from another member).
    Unknown,
    /// 7: an arbiter: votes, holds no data.
    Arbiter,
    /// 8: unreachable (seen from another member).
    Down,
    /// 9: rolling back diverged oplog entries.
    Rollback,
    /// 10: no longer in the config.
    Removed,
}

impl MemberState {
    /// Every state, in code order.
    pub const ALL: [MemberState; 10] = [
        Self::Startup,
        Self::Primary,
        Self::Secondary,
        Self::Recovering,
        Self::Startup2,
        Self::Unknown,
        Self::Arbiter,
        Self::Down,
        Self::Rollback,
        Self::Removed,
    ];

    /// MongoDB's numeric code (`myState`, `members[].state`).
    pub fn code(self) -> i32 {
        match self {
            Self::Startup => 0,
            Self::Primary => 1,
            Self::Secondary => 2,
            Self::Recovering => 3,
            Self::Startup2 => 5,
            Self::Unknown => 6,
            Self::Arbiter => 7,
            Self::Down => 8,
            Self::Rollback => 9,
            Self::Removed => 10,
        }
    }

    /// The state for a numeric code, if the code is one MongoDB uses.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.code() == code)
    }

    /// MongoDB's name for the state (`stateStr`), e.g. `"PRIMARY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "STARTUP",
            Self::Primary => "PRIMARY",
            Self::Secondary => "SECONDARY",
            Self::Recovering => "RECOVERING",
            Self::Startup2 => "STARTUP2",
            Self::Unknown => "UNKNOWN",
            Self::Arbiter => "ARBITER",
            Self::Down => "DOWN",
            Self::Rollback => "ROLLBACK",
            Self::Removed => "REMOVED",
        }
    }

    /// Whether a member in this state serves reads (PRIMARY, or SECONDARY when the client allows it).
    /// RECOVERING, STARTUP2 and ROLLBACK members reject reads with 13436.
    pub fn readable(self) -> bool {
        matches!(self, Self::Primary | Self::Secondary)
    }

    /// Whether this is PRIMARY.
    pub fn is_primary(self) -> bool {
        self == Self::Primary
    }

    /// Whether this is SECONDARY.
    pub fn is_secondary(self) -> bool {
        self == Self::Secondary
    }

    /// Whether a member in this state answers heartbeats as a working member of the set (not DOWN, UNKNOWN or
    /// REMOVED, and not still starting).
    pub fn is_up(self) -> bool {
        !matches!(self, Self::Startup | Self::Unknown | Self::Down | Self::Removed)
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_match_mongodb() {
        let expected = [
            (0, "STARTUP"),
            (1, "PRIMARY"),
            (2, "SECONDARY"),
            (3, "RECOVERING"),
            (5, "STARTUP2"),
            (6, "UNKNOWN"),
            (7, "ARBITER"),
            (8, "DOWN"),
            (9, "ROLLBACK"),
            (10, "REMOVED"),
        ];
        let actual: Vec<_> = MemberState::ALL
            .iter()
            .map(|state| (state.code(), state.as_str()))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn from_code_round_trips_and_rejects_unknown_codes() {
        for state in MemberState::ALL {
            assert_eq!(MemberState::from_code(state.code()), Some(state));
        }
        assert_eq!(MemberState::from_code(4), None);
        assert_eq!(MemberState::from_code(-1), None);
        assert_eq!(MemberState::from_code(11), None);
    }

    #[test]
    fn only_primary_and_secondary_are_readable() {
        let readable: Vec<_> = MemberState::ALL.into_iter().filter(|state| state.readable()).collect();
        assert_eq!(readable, [MemberState::Primary, MemberState::Secondary]);
        assert_eq!(MemberState::Rollback.to_string(), "ROLLBACK");
    }
}
