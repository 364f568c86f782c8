//! `SplitMix64`: the tiny seeded random-number generator the state machine owns for election jitter.
//!
//! The stream is the workspace's one SplitMix64 (`faultline-splitmix`); this wrapper keeps the signed
//! `below` the state machine uses.

/// A seeded SplitMix64 generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        faultline_splitmix::splitmix64(&mut self.state)
    }

    /// A value in `0..bound`, or 0 when `bound` is 0 or negative.
    pub fn below(&mut self, bound: i64) -> i64 {
        match u64::try_from(bound) {
            Ok(bound) if bound > 0 => (self.next_u64() % bound) as i64,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut first = SplitMix64::new(42);
        let mut second = SplitMix64::new(42);
        let a: Vec<u64> = (0..5).map(|_| first.next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|_| second.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], SplitMix64::new(43).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| (0..10).contains(&rng.below(10))));
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(-5), 0);
    }
}
