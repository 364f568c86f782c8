//! The nemesis schedule (pure): from the seed, the faults and the interval, which fault starts when, against
//! which target, and when it is healed. Same inputs, same plan.

use faultline_workloads::rng::Rng;

use super::fault::{Fault, PlannedStep, Step, Target};

/// Mixed into the run's seed so the nemesis stream differs from the clients'.
const NEMESIS_STREAM: u64 = 0x6E65_6D65_7369_7300;

/// Alternates start and heal every `interval` seconds, from `interval` until `time_limit`; each start draws a
/// fault from `faults` and a target (the given one, or one of the fault's defaults).
pub fn plan(seed: u64, faults: &[Fault], target: Option<Target>, interval: f64, time_limit: f64) -> Vec<PlannedStep> {
    let mut steps = Vec::new();
    if faults.is_empty() || interval.is_nan() || interval <= 0.0 {
        return steps;
    }
    let mut rng = Rng::seed_from_u64(seed ^ NEMESIS_STREAM);
    let mut at = interval;
    while at < time_limit {
        let fault = *rng.choose(faults).unwrap_or(&faults[0]);
        let target = target.unwrap_or_else(|| *rng.choose(fault.default_targets()).unwrap_or(&Target::Primary));
        steps.push(PlannedStep {
            at_secs: at,
            step: Step::Start(fault, target),
        });
        at += interval;
        if at >= time_limit {
            break;
        }
        steps.push(PlannedStep {
            at_secs: at,
            step: Step::Heal(fault),
        });
        at += interval;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults() -> Vec<Fault> {
        let mut f = Fault::expand("partition").expect("partition");
        f.push(Fault::Kill);
        f
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = plan(42, &faults(), None, 1.0, 60.0);
        assert_eq!(a, plan(42, &faults(), None, 1.0, 60.0));
        assert_ne!(a, plan(43, &faults(), None, 1.0, 60.0));
    }

    #[test]
    fn starts_and_heals_alternate_within_the_time_limit() {
        let steps = plan(1, &faults(), Some(Target::Primary), 2.0, 11.0);
        assert_eq!(steps.len(), 5, "starts at 2, 6, 10; heals at 4, 8");
        for (i, s) in steps.iter().enumerate() {
            assert!(s.at_secs < 11.0);
            match (i % 2, s.step) {
                (0, Step::Start(_, target)) => assert_eq!(target, Target::Primary),
                (1, Step::Heal(fault)) => match steps[i - 1].step {
                    Step::Start(started, _) => assert_eq!(fault, started),
                    Step::Heal(_) => panic!("two heals in a row"),
                },
                other => panic!("unexpected step order {other:?}"),
            }
        }
    }

    #[test]
    fn starts_draw_every_given_fault_and_only_those_with_their_default_targets() {
        let faults = faults();
        let steps = plan(1, &faults, None, 1.0, 200.0);
        let started: Vec<(Fault, Target)> = steps
            .iter()
            .filter_map(|s| match s.step {
                Step::Start(fault, target) => Some((fault, target)),
                Step::Heal(_) => None,
            })
            .collect();
        assert_eq!(started.len(), 100);
        for (fault, target) in &started {
            assert!(faults.contains(fault), "{fault:?} was not asked for");
            assert!(
                fault.default_targets().contains(target),
                "{fault:?} against {target:?}, not one of its default targets"
            );
        }
        for fault in &faults {
            assert!(
                started.iter().any(|(f, _)| f == fault),
                "{fault:?} never started in 100 draws: {started:?}"
            );
        }
    }

    #[test]
    fn no_faults_no_plan() {
        assert!(plan(1, &[], None, 1.0, 10.0).is_empty());
        assert!(plan(1, &faults(), None, 0.0, 10.0).is_empty());
    }
}
