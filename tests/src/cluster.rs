//! Fixtures for the harness's end-to-end tests: run `faultline test` as a real process, find its stored run,
//! and look for leftover member processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context;

/// One finished `faultline test` invocation.
pub struct TestRun {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `<store>/latest`, resolved.
    pub run_dir: PathBuf,
}

impl TestRun {
    /// A file of the stored run, as text.
    pub fn file(&self, name: &str) -> anyhow::Result<String> {
        let path = self.run_dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// Everything the run printed, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `faultline test --store <store> <args>` to completion.
pub fn run_faultline_test(bin: &Path, store: &Path, args: &[&str]) -> anyhow::Result<TestRun> {
    let output: Output = Command::new(bin)
        .arg("test")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    Ok(TestRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        run_dir: latest_run(store)?,
    })
}

/// The run `<store>/latest` points at.
pub fn latest_run(store: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(store.join("latest")).with_context(|| format!("no {}/latest", store.display()))
}

/// Pids of live processes whose command line mentions `needle` (e.g. a run directory), from `/proc`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Zombies (state Z) are already dead; they only wait to be reaped by their parent.
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            text.contains(needle) && !zombie
        })
        .collect()
}
