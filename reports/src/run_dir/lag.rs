//! `lag.jsonl`: one replica-set status sample per member per line (format in the crate doc), written by
//! [`LagWriter`] and read by [`parse`].

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunDirError;

/// One member's state and lag at one moment, as the harness's sampler saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    /// ns since the start of the run.
    pub time: u64,
    /// The member's name (`n1`, ... in the harness's runs).
    pub member: String,
    /// Its `stateStr`, or `"DOWN"` when unreachable.
    pub state: String,
    /// How far behind the primary it was, in ms (`None` when unknown).
    #[serde(default)]
    pub lag_ms: Option<f64>,
    /// The member reported as primary at that moment (named as `member` is).
    #[serde(default)]
    pub primary: Option<String>,
}

/// The one writer of `lag.jsonl`: one [`LagSample`] per line, flushed after each batch.
pub type LagWriter = JsonlWriter<LagSample>;

/// A writer of one record of type `T` per line, flushed after each batch (`lag.jsonl`, `chunks.jsonl`).
pub struct JsonlWriter<T> {
    path: PathBuf,
    out: BufWriter<File>,
    records: std::marker::PhantomData<T>,
}

impl<T: Serialize> JsonlWriter<T> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<JsonlWriter<T>, RunDirError> {
        let file = File::create(path).map_err(|source| RunDirError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JsonlWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            records: std::marker::PhantomData,
        })
    }

    /// Appends `samples` and flushes them.
    pub fn write(&mut self, samples: &[T]) -> Result<(), RunDirError> {
        let io = |source| RunDirError::Io {
            path: self.path.clone(),
            source,
        };
        for sample in samples {
            let line = serde_json::to_string(sample).map_err(|e| RunDirError::Malformed {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            writeln!(self.out, "{line}").map_err(io)?;
        }
        self.out.flush().map_err(io)
    }
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

    #[test]
    fn what_the_writer_writes_the_parser_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lag.jsonl");
        let samples = vec![
            LagSample {
                time: 5,
                member: "n1".into(),
                state: "PRIMARY".into(),
                lag_ms: Some(0.0),
                primary: Some("n1".into()),
            },
            LagSample {
                time: 5,
                member: "n2".into(),
                state: "DOWN".into(),
                lag_ms: None,
                primary: Some("n1".into()),
            },
        ];
        let mut writer = LagWriter::create(&path).expect("created");
        writer.write(&samples[..1]).expect("written");
        writer.write(&samples[1..]).expect("written");
        let (read, bad) = parse(&std::fs::read_to_string(&path).expect("read"));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(read, samples);
    }
}
