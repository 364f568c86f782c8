//! `lag.jsonl`: one replica-set status sample per member per line (format in the crate doc).

use serde::{Deserialize, Serialize};

/// One member's state and lag at one moment, as the harness's sampler saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    /// ns since the start of the run.
    pub time: u64,
    /// The member's `host:port`.
    pub member: String,
    /// Its `stateStr`, or `"DOWN"` when unreachable.
    pub state: String,
    /// How far behind the primary it was, in ms (`None` when unknown).
    #[serde(default)]
    pub lag_ms: Option<f64>,
    /// The member reported as primary at that moment.
    #[serde(default)]
    pub primary: Option<String>,
}

/// Parses `lag.jsonl`, skipping blank lines. Returns the samples and the malformed lines (1-based, with why).
pub fn parse(text: &str) -> (Vec<LagSample>, Vec<(usize, String)>) {
    let mut samples = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LagSample>(line) {
            Ok(sample) if sample.lag_ms.is_none_or(f64::is_finite) => samples.push(sample),
            Ok(_) => bad.push((i + 1, "lag_ms is not finite".to_string())),
            Err(e) => bad.push((i + 1, e.to_string())),
        }
    }
    (samples, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_and_names_bad_lines() {
        let text = "{\"time\":1,\"member\":\"a:1\",\"state\":\"SECONDARY\",\"lag_ms\":2.5,\"primary\":\"b:2\"}\n\
                    \n\
                    {\"time\":2,\"member\":\"b:2\",\"state\":\"PRIMARY\",\"lag_ms\":0,\"primary\":\"b:2\",\"x\":1}\n\
                    {\"time\":3,\"member\":\"c:3\",\"state\":\"DOWN\",\"lag_ms\":null,\"primary\":null}\n\
                    not json\n";
        let (samples, bad) = parse(text);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].lag_ms, Some(2.5));
        assert_eq!(samples[2].primary, None);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 5);
    }
}
