//! Comparing what the runs of a scenario found with what the scenario expects (pure; unit-tested).

use super::suite::Expect;

/// What one seed's run found.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    pub seed: u64,
    /// `valid`, `INVALID`, `unknown`, or `error` when the run itself failed.
    pub verdict: RunVerdict,
    /// Anomaly kinds named anywhere in the results (sorted, unique).
    pub anomalies: Vec<String>,
    /// The run's store directory, when it got one.
    pub run_dir: Option<String>,
    pub seconds: f64,
}

/// A run's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum RunVerdict {
    Valid,
    Invalid,
    Unknown,
    /// The run could not finish (harness failure, timeout, bad spec): the message says why.
    Error(String),
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunVerdict::Valid => f.write_str("valid"),
            RunVerdict::Invalid => f.write_str("invalid"),
            RunVerdict::Unknown => f.write_str("unknown"),
            RunVerdict::Error(_) => f.write_str("error"),
        }
    }
}

/// Whether a scenario's expectation held, and a sentence saying why (or why not).
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub passed: bool,
    pub message: String,
}

/// Whether `run` is the expected anomaly: invalid and naming every expected kind.
pub fn catches(run: &SeedRun, expected: &[String]) -> bool {
    run.verdict == RunVerdict::Invalid && expected.iter().all(|kind| run.anomalies.contains(kind))
}

/// Judges the runs of a scenario against its expectation.
pub fn judge(expect: Expect, expected: &[String], runs: &[SeedRun]) -> Judgement {
    match expect {
        Expect::Valid => judge_valid(runs),
        Expect::Invalid => judge_invalid(expected, runs),
    }
}

fn judge_valid(runs: &[SeedRun]) -> Judgement {
    match runs.iter().find(|r| r.verdict != RunVerdict::Valid) {
        None => Judgement {
            passed: !runs.is_empty(),
            message: format!("valid on all {} seed(s)", runs.len()),
        },
        Some(run) => Judgement {
            passed: false,
            message: format!("expected valid, but seed {} was {}", run.seed, describe(run)),
        },
    }
}

fn judge_invalid(expected: &[String], runs: &[SeedRun]) -> Judgement {
    if let Some(position) = runs.iter().position(|r| catches(r, expected)) {
        let run = &runs[position];
        return Judgement {
            passed: true,
            message: format!(
                "caught on seed {} ({} of {} seed(s) run): {}",
                run.seed,
                position + 1,
                runs.len(),
                run.anomalies.join(", ")
            ),
        };
    }
    let wanted = if expected.is_empty() {
        "an invalid verdict".to_string()
    } else {
        format!("anomaly {}", expected.join(" + "))
    };
    let seen: Vec<String> = runs
        .iter()
        .map(|r| format!("seed {}: {}", r.seed, describe(r)))
        .collect();
    Judgement {
        passed: false,
        message: format!(
            "expected {wanted}, but no seed showed it ({}); the checker did not catch the fault",
            seen.join("; ")
        ),
    }
}

fn describe(run: &SeedRun) -> String {
    match &run.verdict {
        RunVerdict::Error(why) => format!("an error: {why}"),
        RunVerdict::Invalid => format!("invalid [{}]", run.anomalies.join(", ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, verdict: RunVerdict, anomalies: &[&str]) -> SeedRun {
        SeedRun {
            seed,
            verdict,
            anomalies: anomalies.iter().map(|s| s.to_string()).collect(),
            run_dir: None,
            seconds: 1.0,
        }
    }

    #[test]
    fn valid_needs_every_seed_valid() {
        let good = [run(1, RunVerdict::Valid, &[]), run(2, RunVerdict::Valid, &[])];
        assert!(judge(Expect::Valid, &[], &good).passed);
        let bad = [run(1, RunVerdict::Valid, &[]), run(2, RunVerdict::Invalid, &["lost"])];
        let j = judge(Expect::Valid, &[], &bad);
        assert!(!j.passed);
        assert!(
            j.message.contains("seed 2") && j.message.contains("lost"),
            "{}",
            j.message
        );
        assert!(!judge(Expect::Valid, &[], &[run(1, RunVerdict::Unknown, &[])]).passed);
        assert!(!judge(Expect::Valid, &[], &[]).passed, "no runs prove nothing");
    }

    #[test]
    fn invalid_needs_one_seed_with_every_expected_kind() {
        let expected = vec!["lost".to_string()];
        let runs = [
            run(1, RunVerdict::Valid, &[]),
            run(2, RunVerdict::Invalid, &["lost", "unexpected"]),
        ];
        let j = judge(Expect::Invalid, &expected, &runs);
        assert!(j.passed, "{}", j.message);
        assert!(j.message.contains("seed 2 (2 of 2"), "{}", j.message);
        let wrong_kind = [run(1, RunVerdict::Invalid, &["stale-read"])];
        let j = judge(Expect::Invalid, &expected, &wrong_kind);
        assert!(!j.passed);
        assert!(
            j.message.contains("anomaly lost") && j.message.contains("did not catch"),
            "{}",
            j.message
        );
        let errored = [run(1, RunVerdict::Error("timed out".into()), &[])];
        assert!(
            judge(Expect::Invalid, &expected, &errored)
                .message
                .contains("timed out")
        );
        assert!(judge(Expect::Invalid, &[], &[run(4, RunVerdict::Invalid, &["x"])]).passed);
    }
}
