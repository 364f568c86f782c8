//! The run directory: the one owner of its layout and of the typed records in it.
//!
//! `faultline test` and `faultline bench` write run directories, and the reports, `faultline report`,
//! `faultline check RUN_DIR` and the gate read them; all of them name files through [`names`] and
//! [`RunDir`], and read and write records through the types here, so the two sides cannot drift apart.
//!
//! | file | record | writer |
//! |---|---|---|
//! | [`names::SPEC`] `test.toml` | the resolved spec (summary fields: [`RunMeta`]) | `faultline test` |
//! | [`names::HISTORY`] `history.jsonl` | the checker's JSONL history, streamed | `test`, `bench lag` |
//! | [`names::HISTORY_EDN`] `history.edn` | the same history in Jepsen's EDN | `test` |
//! | [`names::LAG`] `lag.jsonl` | one [`LagSample`] per line, through [`LagWriter`] | `test`, `bench lag` |
//! | [`names::CHUNKS`] `chunks.jsonl` | one [`ChunkSample`] per shard per sample, through [`ChunkWriter`] | `test --shards` |
//! | [`names::CHANGE_STREAM`] `change-stream.jsonl` | `faultline_checker::change_stream`'s records | `test --change-stream` |
//! | [`names::RESULTS`] `results.json` | one [`CheckResult`] ([`RunDir::write_results`]) | `test` |
//! | [`names::SUMMARY`] `summary.txt` | the printed summary | `test`, `bench` |
//! | [`names::NODES`]`/<n>/node.log` | member logs | the cluster |
//! | [`names::REPORT`], [`names::PLOTS`] | the report and its plots | the reports |
//!
//! This module lives in the reports crate because that is the lowest crate that both the writer (the
//! harness) and the readers depend on and that may do I/O (the checker below it is pure).

pub mod chunks;
pub mod lag;
pub mod spec;

use std::path::{Path, PathBuf};

use faultline_checker::result::CheckResult;
use thiserror::Error;

pub use chunks::{ChunkSample, ChunkWriter};
pub use lag::{JsonlWriter, LagSample, LagWriter};
pub use spec::RunMeta;

/// File names inside a run directory.
pub mod names {
    /// The history (JSONL).
    pub const HISTORY: &str = "history.jsonl";
    /// The history in Jepsen's EDN.
    pub const HISTORY_EDN: &str = "history.edn";
    /// The lag samples.
    pub const LAG: &str = "lag.jsonl";
    /// Chunks per shard over time (sharded runs only).
    pub const CHUNKS: &str = "chunks.jsonl";
    /// The change stream's events (`faultline test --change-stream`).
    pub const CHANGE_STREAM: &str = "change-stream.jsonl";
    /// The checker results.
    pub const RESULTS: &str = "results.json";
    /// The resolved spec.
    pub const SPEC: &str = "test.toml";
    /// The printed summary.
    pub const SUMMARY: &str = "summary.txt";
    /// The report page.
    pub const REPORT: &str = "report.html";
    /// The interactive history viewer, next to the report.
    pub const VIEWER: &str = "viewer.html";
    /// The directory of member data and logs (`nodes/<n>/`).
    pub const NODES: &str = "nodes";
    /// A member's log inside its directory.
    pub const NODE_LOG: &str = "node.log";
    /// The plots directory.
    pub const PLOTS: &str = "plots";
}

/// A record of the run directory that could not be read or written.
#[derive(Debug, Error)]
pub enum RunDirError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not the record it should be.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A run directory (it need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the run, by one of the [`names`].
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `history.jsonl`.
    pub fn history(&self) -> PathBuf {
        self.file(names::HISTORY)
    }

    /// `history.edn`.
    pub fn history_edn(&self) -> PathBuf {
        self.file(names::HISTORY_EDN)
    }

    /// `lag.jsonl`.
    pub fn lag(&self) -> PathBuf {
        self.file(names::LAG)
    }

    /// `chunks.jsonl`.
    pub fn chunks(&self) -> PathBuf {
        self.file(names::CHUNKS)
    }

    /// `results.json`.
    pub fn results(&self) -> PathBuf {
        self.file(names::RESULTS)
    }

    /// `test.toml`.
    pub fn spec(&self) -> PathBuf {
        self.file(names::SPEC)
    }

    /// `summary.txt`.
    pub fn summary(&self) -> PathBuf {
        self.file(names::SUMMARY)
    }

    /// `report.html`.
    pub fn report(&self) -> PathBuf {
        self.file(names::REPORT)
    }

    /// `plots/`.
    pub fn plots(&self) -> PathBuf {
        self.file(names::PLOTS)
    }

    /// `nodes/`, the members' directories.
    pub fn nodes(&self) -> PathBuf {
        self.file(names::NODES)
    }

    /// Whether `dir` holds a stored run: a directory with a history, results or a spec.
    pub fn is_run(dir: &Path) -> bool {
        dir.is_dir()
            && [names::HISTORY, names::RESULTS, names::SPEC]
                .iter()
                .any(|name| dir.join(name).is_file())
    }

    /// Writes `results.json` (pretty JSON and a newline).
    pub fn write_results(&self, result: &CheckResult) -> Result<(), RunDirError> {
        let path = self.results();
        let json = serde_json::to_string_pretty(result).map_err(|e| RunDirError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write(&path, &(json + "\n"))
    }

    /// Reads `results.json`.
    pub fn read_results(&self) -> Result<CheckResult, RunDirError> {
        let path = self.results();
        let text = read(&path)?;
        serde_json::from_str(&text).map_err(|e| RunDirError::Malformed {
            path,
            message: e.to_string(),
        })
    }

    /// Writes `test.toml`.
    pub fn write_spec(&self, toml: &str) -> Result<(), RunDirError> {
        write(&self.spec(), toml)
    }

    /// Reads the summary fields of `test.toml`.
    pub fn read_meta(&self) -> Result<RunMeta, RunDirError> {
        let path = self.spec();
        let text = read(&path)?;
        RunMeta::from_toml(&text).map_err(|e| RunDirError::Malformed {
            path,
            message: e.to_string(),
        })
    }

    /// Writes `summary.txt`.
    pub fn write_summary(&self, text: &str) -> Result<(), RunDirError> {
        write(&self.summary(), text)
    }
}

fn read(path: &Path) -> Result<String, RunDirError> {
    std::fs::read_to_string(path).map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), RunDirError> {
    std::fs::write(path, text).map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use faultline_checker::result::Validity;

    use super::*;

    #[test]
    fn results_and_spec_round_trip_through_their_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        assert!(!RunDir::is_run(dir.path()));
        let mut result = CheckResult::new("counter");
        result.add_anomaly("counter-out-of-bounds", vec![3], "read 9".into());
        run.write_results(&result).expect("written");
        assert!(RunDir::is_run(dir.path()));
        assert_eq!(run.read_results().expect("read"), result);
        run.write_spec("name = \"c\"\nworkload = \"counter\"\nseed = 7\n")
            .expect("written");
        let meta = run.read_meta().expect("meta");
        assert_eq!(meta.workload.as_deref(), Some("counter"));
        std::fs::write(run.results(), "{\"valid\":3}").expect("written");
        let bad = run.read_results().expect_err("not a result");
        assert!(
            bad.to_string().starts_with(&run.results().display().to_string()),
            "{bad}"
        );
        std::fs::write(run.results(), "{\"valid\":\"unknown\"}").expect("written");
        assert_eq!(run.read_results().expect("lenient").valid, Validity::Unknown);
    }
}
