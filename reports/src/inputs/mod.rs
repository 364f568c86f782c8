//! Reading a run directory: the history, lag samples, checker results, the spec and the member logs.
//!
//! Every input is optional. A missing file is normal (a run may have been interrupted, or a workload writes
//! no lag samples); a malformed one becomes a warning and is treated as empty, so a report can always be
//! drawn.

pub mod lag;
pub mod spec;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use faultline_checker::formats::jsonl;
use faultline_checker::history::History;
use faultline_checker::result::CheckResult;

pub use lag::LagSample;
pub use spec::RunMeta;

use crate::error::ReportError;

/// File names inside a run directory.
pub mod names {
    /// The history.
    pub const HISTORY: &str = "history.jsonl";
    /// The lag samples.
    pub const LAG: &str = "lag.jsonl";
    /// The checker results.
    pub const RESULTS: &str = "results.json";
    /// The resolved spec.
    pub const SPEC: &str = "test.toml";
    /// The report page.
    pub const REPORT: &str = "report.html";
    /// The interactive history viewer, next to the report.
    pub const VIEWER: &str = "viewer.html";
    /// The directory of member logs (`nodes/<n>/node.log`).
    pub const NODES: &str = "nodes";
    /// The plots directory.
    pub const PLOTS: &str = "plots";
}

/// Everything read from one run directory.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The run directory.
    pub dir: PathBuf,
    /// The history (empty when missing or malformed).
    pub history: History,
    /// Replication lag samples in file order.
    pub lag: Vec<LagSample>,
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
        if let Some(text) = inputs.read_text(names::RESULTS) {
            match serde_json::from_str(&text) {
                Ok(result) => inputs.results = Some(result),
                Err(e) => inputs.warn(format!("{}: {e}", names::RESULTS)),
            }
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

/// `nodes/<n>/node.log` paths relative to `dir`, sorted by member directory name.
fn find_node_logs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(names::NODES)) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| Path::new(names::NODES).join(entry.file_name()).join("node.log"))
        .filter(|relative| dir.join(relative).is_file())
        .collect();
    logs.sort();
    logs
}
