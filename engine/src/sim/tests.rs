//! The simulation over a few seeds, and a planted bug it must find.

use super::*;

fn quick(seed: u64) -> SimOptions {
    SimOptions {
        steps: 40,
        ..SimOptions::new(seed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_seeds_keep_every_safety_property() {
    for seed in 1..=3 {
        let options = quick(seed);
        let outcome = run(&options).await.expect("the simulation runs");
        assert!(
            outcome.violation.is_none(),
            "seed {seed}: {:?}; reproduce: {}",
            outcome.violation,
            options.reproduce_line()
        );
        assert!(outcome.primaries_seen >= 1, "seed {seed}: a primary was elected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn explore() {
    for planted in [None, Some("skipRollback"), Some("ackMajorityBeforeReplication"), Some("electByTimestamp")] {
        for seed in 1..=4 {
            let options = SimOptions {
                planted: planted.map(String::from),
                ..quick(seed)
            };
            let outcome = run(&options).await.expect("the simulation runs");
            eprintln!("{planted:?} seed {seed}: {outcome:?}");
        }
    }
}
