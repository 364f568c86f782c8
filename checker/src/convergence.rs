//! The convergence checker (ARCHITECTURE §5): after healing, every data-bearing member holds the same data.
//!
//! The harness collects one content hash per member (`dbHash` of the workload database), polling until they
//! agree or its patience runs out; this module decides whether a set of hashes agrees and turns the last set
//! into a verdict. A member that could not be reached counts as disagreeing.

use std::time::Duration;

use crate::result::CheckResult;

/// One member's content hash, or `None` when the member could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHash {
    /// The member's name (`n1`, ...).
    pub member: String,
    /// The hash of its data.
    pub hash: Option<String>,
}

/// Whether every member was reached and all hold the same data.
pub fn agree(hashes: &[MemberHash]) -> bool {
    hashes.iter().all(|h| h.hash.is_some()) && hashes.windows(2).all(|w| w[0].hash == w[1].hash)
}

/// The verdict on the last hashes seen, `waited` after healing: valid when they agree, else a `divergence`.
pub fn check(hashes: &[MemberHash], waited: Duration) -> CheckResult {
    let mut result = CheckResult::new("convergence");
    result.set_count("members", hashes.len() as u64);
    if agree(hashes) {
        return result;
    }
    let shown: Vec<String> = hashes
        .iter()
        .map(|h| format!("{}={}", h.member, h.hash.as_deref().unwrap_or("unreachable")))
        .collect();
    result.add_anomaly(
        "divergence",
        Vec::new(),
        format!(
            "members still hold different data {waited:?} after healing: {}",
            shown.join(", ")
        ),
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Validity;

    fn hashes(list: &[(&str, Option<&str>)]) -> Vec<MemberHash> {
        list.iter()
            .map(|(member, hash)| MemberHash {
                member: member.to_string(),
                hash: hash.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn equal_hashes_converge_and_different_or_missing_ones_diverge() {
        let same = hashes(&[("n1", Some("a")), ("n2", Some("a"))]);
        assert!(agree(&same));
        assert_eq!(check(&same, Duration::from_secs(1)).valid, Validity::True);
        let different = hashes(&[("n1", Some("a")), ("n2", Some("b"))]);
        let verdict = check(&different, Duration::from_secs(15));
        assert_eq!(verdict.valid, Validity::False);
        assert_eq!(verdict.anomalies, vec!["divergence"]);
        assert!(verdict.examples[0].description.ends_with("n1=a, n2=b"), "{verdict:?}");
        let unreachable = hashes(&[("n1", Some("a")), ("n2", None)]);
        assert!(!agree(&unreachable));
        assert!(
            check(&unreachable, Duration::ZERO).examples[0]
                .description
                .contains("n2=unreachable")
        );
    }
}
