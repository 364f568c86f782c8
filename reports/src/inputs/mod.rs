//! Reading a run directory for a report: the history, lag samples, checker results, the spec and the member
//! logs, through the layout and records of [`crate::run_dir`].
//!
//! Every input is optional. A missing file is normal (a run may have been interrupted, or a workload writes
//! no lag samples); a malformed one becomes a warning and is treated as empty, so a report can always be
//! drawn.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use faultline_checker::formats::jsonl;
use faultline_checker::history::History;
use faultline_checker::result::CheckResult;

pub use crate::run_dir::{ChunkSample, LagSample, RunMeta, chunks, lag, names, spec};

use crate::error::ReportError;
use crate::run_dir::RunDir;

/// Everything read from one run directory.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The run directory.
    pub dir: PathBuf,
    /// The history (empty when missing or malformed).
    pub history: History,
    /// Replication lag samples in file order.
    pub lag: Vec<LagSample>,
    /// Chunks per shard over time (sharded runs; empty otherwise).
    pub chunks: Vec<ChunkSample>,
    /// The checkers' verdict, when `results.json` exists and parses.
    pub results: Option<CheckResult>,
    /// `test.toml` verbatim.
    pub spec_text: Option<String>,
    /// Summary fields read from the spec.
    pub meta: RunMeta,
    /// Member logs, relative to the run directory, sorted.
    pub node_logs: Vec<PathBuf>,
    /// What was missing or malformed.
    pub warnings: Vec<String>,
}

impl RunInputs {
    /// Reads `dir`. Fails only when `dir` is not a directory.
    pub fn load(dir: &Path) -> Result<RunInputs, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NotADirectory(dir.to_path_buf()));
        }
        let mut inputs = RunInputs {
            dir: dir.to_path_buf(),
            ..RunInputs::default()
        };
        inputs.history = inputs.read_history();
        if let Some(text) = inputs.read_text(names::LAG) {
            let (samples, bad) = lag::parse(&text);
            inputs.lag = samples;
            if let Some((line, why)) = bad.first() {
                let n = bad.len();
                inputs.warn(format!(
                    "{}: {n} malformed line(s) skipped, first at line {line}: {why}",
                    names::LAG
                ));
            }
        }
        if dir.join(names::CHUNKS).exists()
            && let Some(text) = inputs.read_text(names::CHUNKS)
        {
            let (samples, bad) = chunks::parse(&text);
            inputs.chunks = samples;
            if let Some((line, why)) = bad.first() {
                let n = bad.len();
                inputs.warn(format!(
                    "{}: {n} malformed line(s) skipped, first at line {line}: {why}",
                    names::CHUNKS
                ));
            }
        }
        if dir.join(names::RESULTS).exists() {
            match RunDir::new(dir).read_results() {
                Ok(result) => inputs.results = Some(result),
                Err(e) => inputs.warn(format!("{}: {}", names::RESULTS, cause(&e))),
            }
        } else {
            inputs.warn(format!("{}: missing", names::RESULTS));
        }
        inputs.spec_text = inputs.read_text(names::SPEC);
        if let Some(text) = &inputs.spec_text {
            match spec::RunMeta::from_toml(text) {
                Ok(meta) => inputs.meta = meta,
                Err(e) => inputs.warn(format!("{}: {e}", names::SPEC)),
            }
        }
        inputs.node_logs = find_node_logs(dir);
        Ok(inputs)
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Reads a text file; a missing file is `None` and a warning, other errors are warnings too.
    fn read_text(&mut self, name: &str) -> Option<String> {
        match std::fs::read_to_string(self.dir.join(name)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warn(format!("{name}: missing"));
                None
            }
            Err(e) => {
                self.warn(format!("{name}: {e}"));
                None
            }
        }
    }

    fn read_history(&mut self) -> History {
        let path = self.dir.join(names::HISTORY);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "missing".to_string()
                } else {
                    e.to_string()
                };
                self.warn(format!("{}: {why}", names::HISTORY));
                return History::new();
            }
        };
        match jsonl::read(BufReader::new(file)) {
            Ok(history) => history,
            Err(e) => {
                self.warn(format!("{}: {e}", names::HISTORY));
                History::new()
            }
        }
    }
}

/// What went wrong with a record, without the path (the warnings name the file).
fn cause(error: &crate::run_dir::RunDirError) -> String {
    match error {
        crate::run_dir::RunDirError::Io { source, .. } => source.to_string(),
        crate::run_dir::RunDirError::Malformed { message, .. } => message.clone(),
    }
}

/// `nodes/<n>/node.log` paths relative to `dir`, sorted by member directory name.
fn find_node_logs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(names::NODES)) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| Path::new(names::NODES).join(entry.file_name()).join(names::NODE_LOG))
        .filter(|relative| dir.join(relative).is_file())
        .collect();
    logs.sort();
    logs
}
