//! Partition shapes as grudges (pure): who cannot hear whom, for `n` members.

use crate::proxy::{Grudge, MemberId};
use faultline_workloads::rng::Rng;

use super::fault::PartitionKind;

/// The grudge for `kind`; `primary` is the current primary if known (else a random member stands in).
pub fn grudge(kind: PartitionKind, n: usize, primary: Option<MemberId>, rng: &mut Rng) -> Grudge {
    let mut grudge = Grudge::new();
    if n < 2 {
        return grudge;
    }
    let pivot = primary.filter(|p| *p < n).unwrap_or_else(|| rng.index(n));
    let others: Vec<MemberId> = (0..n).filter(|m| *m != pivot).collect();
    let mut shuffled: Vec<MemberId> = (0..n).collect();
    rng.shuffle(&mut shuffled);
    match kind {
        PartitionKind::IsolatePrimary => grudge.cut(&[pivot], &others),
        PartitionKind::RandomHalves => {
            let (a, b) = shuffled.split_at(n / 2);
            grudge.cut(a, b);
        }
        PartitionKind::Bridge => {
            // a | bridge | b: the bridge hears and is heard by both sides.
            let half = (n - 1) / 2;
            let (a, rest) = shuffled.split_at(half.max(1));
            let b = &rest[1.min(rest.len())..];
            grudge.cut(a, b);
        }
        PartitionKind::MajoritiesRing => {
            // Each member hears only the next majority-1 members around a shuffled ring.
            let heard = n / 2;
            for (position, &victim) in shuffled.iter().enumerate() {
                for step in (heard + 1)..n {
                    grudge.cannot_hear(victim, shuffled[(position + step) % n]);
                }
            }
        }
        PartitionKind::OneWay => {
            for &other in &others {
                grudge.cannot_hear(other, pivot);
            }
        }
    }
    grudge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hears_count(g: &Grudge, victim: MemberId, n: usize) -> usize {
        (0..n).filter(|f| *f != victim && g.hears(victim, *f)).count()
    }

    #[test]
    fn isolate_primary_cuts_the_primary_both_ways() {
        let g = grudge(PartitionKind::IsolatePrimary, 3, Some(1), &mut Rng::seed_from_u64(1));
        assert!(!g.hears(1, 0) && !g.hears(0, 1) && !g.hears(2, 1) && !g.hears(1, 2));
        assert!(g.hears(0, 2) && g.hears(2, 0));
    }

    #[test]
    fn one_way_silences_the_primary_only() {
        let g = grudge(PartitionKind::OneWay, 3, Some(0), &mut Rng::seed_from_u64(1));
        assert!(!g.hears(1, 0) && !g.hears(2, 0));
        assert!(g.hears(0, 1) && g.hears(0, 2) && g.hears(1, 2));
    }

    #[test]
    fn every_member_of_a_majorities_ring_hears_a_majority_and_they_differ() {
        for n in [3, 5, 7] {
            let g = grudge(
                PartitionKind::MajoritiesRing,
                n,
                None,
                &mut Rng::seed_from_u64(n as u64),
            );
            let mut views = std::collections::BTreeSet::new();
            for victim in 0..n {
                let heard = hears_count(&g, victim, n);
                assert_eq!(heard + 1, n / 2 + 1, "n={n}: member {victim} hears {heard} others");
                let view: Vec<bool> = (0..n).map(|f| f == victim || g.hears(victim, f)).collect();
                views.insert(view);
            }
            assert_eq!(views.len(), n, "n={n}: majorities must differ");
        }
    }

    #[test]
    fn halves_and_bridge_leave_no_majority_side_isolated_from_itself() {
        let g = grudge(PartitionKind::RandomHalves, 5, None, &mut Rng::seed_from_u64(3));
        let cut: usize = (0..5).map(|v| 4 - hears_count(&g, v, 5)).sum();
        assert_eq!(cut, 12, "2×3 members cut both ways");
        let b = grudge(PartitionKind::Bridge, 5, None, &mut Rng::seed_from_u64(3));
        let bridges: Vec<MemberId> = (0..5).filter(|v| hears_count(&b, *v, 5) == 4).collect();
        assert_eq!(bridges.len(), 1, "exactly one member hears everyone");
    }

    #[test]
    fn one_member_cannot_be_partitioned() {
        assert!(grudge(PartitionKind::RandomHalves, 1, None, &mut Rng::seed_from_u64(1)).is_empty());
    }
}
