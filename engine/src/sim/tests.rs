//! The simulation over a few seeds, and a planted bug it must find.

use super::*;

fn quick(seed: u64) -> SimOptions {
    SimOptions {
        steps: 40,
        ..SimOptions::new(seed)
    }
}

#[test]
fn a_few_seeds_keep_every_safety_property() {
    for seed in 1..=3 {
        let options = quick(seed);
        let outcome = run_isolated(&options).expect("the simulation runs");
        assert!(
            outcome.violation.is_none(),
            "seed {seed}: {:?}; reproduce: {}",
            outcome.violation,
            options.reproduce_line()
        );
        assert!(outcome.primaries_seen >= 1, "seed {seed}: a primary was elected");
    }
}

/// The checks are worth something only if they catch a bug: with `skipRollback` a deposed primary keeps its
/// unreplicated writes, and the members never agree again.
#[test]
fn the_planted_skip_rollback_bug_is_found_within_a_few_seeds() {
    let mut found = None;
    for seed in 1..=8 {
        let options = SimOptions {
            planted: Some(crate::failpoint::SKIP_ROLLBACK.to_string()),
            ..quick(seed)
        };
        let outcome = run_isolated(&options).expect("the simulation runs");
        if let Some(violation) = outcome.violation {
            found = Some((options.reproduce_line(), violation));
            break;
        }
    }
    let (reproduce, violation) = found.expect("skipRollback is caught within 8 seeds");
    assert!(reproduce.contains("--planted skipRollback"), "{reproduce}");
    assert!(violation.starts_with("convergence"), "{violation}");
}
