//! Chunks per shard over time (`chunks.jsonl` of a sharded run), one series per shard.

use std::collections::BTreeMap;

use super::{Series, seconds};
use crate::run_dir::ChunkSample;

/// One series per shard, in shard order: `(seconds, chunks)` at each sample.
pub fn chunk_series(samples: &[ChunkSample]) -> Vec<Series> {
    let mut by_shard: BTreeMap<&str, Vec<&ChunkSample>> = BTreeMap::new();
    for s in samples {
        by_shard.entry(&s.shard).or_default().push(s);
    }
    by_shard
        .into_iter()
        .map(|(shard, mut samples)| {
            samples.sort_by_key(|s| s.time);
            let mut series = Series::new(shard);
            series.points = samples.iter().map(|s| (seconds(s.time), s.chunks as f64)).collect();
            series
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_shard_in_time_order() {
        let sample = |time: u64, shard: &str, chunks: u64| ChunkSample {
            time,
            shard: shard.into(),
            chunks,
        };
        let series = chunk_series(&[
            sample(2_000_000_000, "shard1", 3),
            sample(1_000_000_000, "shard1", 2),
            sample(1_000_000_000, "shard2", 2),
        ]);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].name, "shard1");
        assert_eq!(series[0].points, vec![(1.0, 2.0), (2.0, 3.0)]);
    }
}
