//! `chunks.jsonl` (`faultline test --shards`): how many chunks of the workload's collection each shard owned,
//! sampled from `config.chunks` during the run; written through a [`ChunkWriter`], read by [`parse`].

use serde::{Deserialize, Serialize};

use super::lag::JsonlWriter;

/// One shard's chunk count at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkSample {
    /// ns since the start of the run.
    pub time: u64,
    /// The shard's id (`shard1`, ...).
    pub shard: String,
    /// Chunks of the collection `config.chunks` names it the owner of.
    pub chunks: u64,
}

/// The one writer of `chunks.jsonl`.
pub type ChunkWriter = JsonlWriter<ChunkSample>;

/// Parses `chunks.jsonl`, skipping blank lines. Returns the samples and the malformed lines (1-based, with why).
pub fn parse(text: &str) -> (Vec<ChunkSample>, Vec<(usize, String)>) {
    let mut samples = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<ChunkSample>(line) {
            Ok(sample) => samples.push(sample),
            Err(e) => bad.push((i + 1, e.to_string())),
        }
    }
    (samples, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_samples_parse_back_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chunks.jsonl");
        let sample = ChunkSample {
            time: 5,
            shard: "shard1".into(),
            chunks: 3,
        };
        let mut writer = ChunkWriter::create(&path).expect("create");
        writer.write(std::slice::from_ref(&sample)).expect("write");
        let text = std::fs::read_to_string(&path).expect("read") + "\nnot json\n";
        let (samples, bad) = parse(&text);
        assert_eq!(samples, vec![sample]);
        assert_eq!(bad.first().map(|b| b.0), Some(3));
    }
}
