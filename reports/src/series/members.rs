//! Replication lag per member and member states over time, from `lag.jsonl` samples.

use std::collections::BTreeMap;

use super::{Series, seconds};
use crate::inputs::LagSample;

/// Lag (ms) over time (s) of every member that was ever a secondary with a known lag; one series per member,
/// sorted by member name. A sample where the member was primary or its lag unknown is a gap: a point with a
/// NaN lag, so that lines are not drawn across it.
pub fn lag_series(samples: &[LagSample]) -> Vec<Series> {
    let mut by_member: BTreeMap<&str, Vec<&LagSample>> = BTreeMap::new();
    for s in samples {
        by_member.entry(&s.member).or_default().push(s);
    }
    let mut out = Vec::new();
    for (member, mut samples) in by_member {
        samples.sort_by_key(|s| s.time);
        let mut series = Series::new(member);
        for s in samples {
            let lag = s
                .lag_ms
                .filter(|_| s.state != "PRIMARY")
                .map_or(f64::NAN, |lag| lag.max(0.0));
            let previous_is_gap = series.points.last().is_none_or(|p| p.1.is_nan());
            if lag.is_finite() || !previous_is_gap {
                series.points.push((seconds(s.time), lag));
            }
        }
        if series.points.iter().any(|p| p.1.is_finite()) {
            out.push(series);
        }
    }
    out
}

/// A stretch of time during which a member was in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSegment {
    /// Index into the member list.
    pub member: usize,
    /// The `stateStr` (or `DOWN`).
    pub state: String,
    /// Start, s since the start of the run.
    pub start_s: f64,
    /// End, s since the start of the run.
    pub end_s: f64,
}

/// Members (sorted) and their state segments: each sample holds until the member's next sample; the last
/// one holds until the last sample of the run.
pub fn state_segments(samples: &[LagSample]) -> (Vec<String>, Vec<StateSegment>) {
    let mut by_member: BTreeMap<&str, Vec<(f64, &str)>> = BTreeMap::new();
    for s in samples {
        by_member
            .entry(&s.member)
            .or_default()
            .push((seconds(s.time), &s.state));
    }
    let end = samples.iter().map(|s| seconds(s.time)).fold(0.0, f64::max);
    let members: Vec<String> = by_member.keys().map(|m| m.to_string()).collect();
    let mut segments = Vec::new();
    for (member, mut points) in by_member.into_values().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, (t, state)) in points.iter().enumerate() {
            let next = points.get(i + 1).map_or(end, |p| p.0);
            match segments.last_mut() {
                Some(StateSegment {
                    member: m,
                    state: s,
                    end_s,
                    ..
                }) if *m == member && s == state => *end_s = next,
                _ => segments.push(StateSegment {
                    member,
                    state: state.to_string(),
                    start_s: *t,
                    end_s: next,
                }),
            }
        }
    }
    (members, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time_s: u64, member: &str, state: &str, lag: Option<f64>) -> LagSample {
        LagSample {
            time: time_s * 1_000_000_000,
            member: member.to_string(),
            state: state.to_string(),
            lag_ms: lag,
            primary: None,
        }
    }

    #[test]
    fn lag_excludes_primaries_and_unknown_lag() {
        let samples = [
            sample(0, "b", "SECONDARY", Some(3.0)),
            sample(0, "a", "PRIMARY", Some(0.0)),
            sample(1, "b", "DOWN", None),
            sample(2, "b", "SECONDARY", Some(5.0)),
        ];
        let series = lag_series(&samples);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].name, "b");
        let points = &series[0].points;
        assert_eq!(points.len(), 3);
        assert_eq!((points[0], points[2]), ((0.0, 3.0), (2.0, 5.0)));
        assert!(points[1].1.is_nan(), "the down sample is a gap");
    }

    #[test]
    fn consecutive_equal_states_merge() {
        let samples = [
            sample(0, "a", "PRIMARY", None),
            sample(1, "a", "PRIMARY", None),
            sample(2, "a", "SECONDARY", None),
            sample(0, "b", "SECONDARY", None),
            sample(3, "b", "PRIMARY", None),
        ];
        let (members, segments) = state_segments(&samples);
        assert_eq!(members, vec!["a", "b"]);
        let a: Vec<_> = segments
            .iter()
            .filter(|s| s.member == 0)
            .map(|s| (s.state.as_str(), s.start_s, s.end_s))
            .collect();
        assert_eq!(a, vec![("PRIMARY", 0.0, 2.0), ("SECONDARY", 2.0, 3.0)]);
        assert_eq!(segments.iter().filter(|s| s.member == 1).count(), 2);
    }
}
