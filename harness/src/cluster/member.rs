//! One member: a `faultline node` child process with its own data directory, log file and process group.
//!
//! Layout under the member's directory: `db/` (data), `node.log` (the member's log), `stderr.log` (anything
//! the process printed outside its log, e.g. a panic). Every spawned child is in the [`super::registry`] until
//! it has been reaped.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::process::ProcessGroup;
pub use super::process::RunState;

/// How long a graceful stop may take before the member is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start a member's process.
#[derive(Debug, Clone)]
pub struct LaunchArgs {
    /// The `faultline` binary.
    pub bin: PathBuf,
    pub repl_set: String,
    /// `--setParameter` values (NAME=VALUE).
    pub set_parameters: Vec<String>,
    /// `--peer-route HOST=ADDR` values (only for multi-member sets).
    pub peer_routes: Vec<String>,
    /// Pass `--die-with-parent <this process>`: the member dies with the harness, however the harness dies.
    /// The kernel's parent-death signal is tied to the spawning *thread*, so members are only spawned from
    /// threads that live as long as the harness (the main thread or the runtime's workers).
    pub die_with_harness: bool,
    /// Further `faultline node` flags (`--shardsvr`, `--configsvr`).
    pub node_flags: Vec<String>,
    /// `--worker-threads`.
    pub worker_threads: u16,
}

/// One replica-set member process.
#[derive(Debug)]
pub struct Member {
    /// Position in the replica-set config (`_id`).
    pub index: usize,
    /// Short name used in histories and logs: `n1`, `n2`, ...
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub arbiter: bool,
    launch: LaunchArgs,
    process: ProcessGroup,
}

impl Member {
    /// A member that is not started yet.
    pub fn new(index: usize, port: u16, dir: PathBuf, arbiter: bool, launch: LaunchArgs) -> Member {
        Member {
            index,
            name: format!("n{}", index + 1),
            port,
            dir,
            arbiter,
            launch,
            process: ProcessGroup::default(),
        }
    }

    /// `127.0.0.1:port`, the host name in the replica-set config.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dbpath(&self) -> PathBuf {
        self.dir.join("db")
    }

    pub fn logpath(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The OS process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Running, paused or down (reaps the child if it exited by itself).
    pub fn run_state(&mut self) -> RunState {
        self.process.run_state()
    }

    /// Starts the process (no-op if it is already running).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.run_state() != RunState::Down {
            return Ok(());
        }
        std::fs::create_dir_all(self.dbpath()).with_context(|| format!("cannot create {}", self.dbpath().display()))?;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .with_context(|| format!("cannot open {}/stderr.log", self.dir.display()))?;
        let mut command = Command::new(&self.launch.bin);
        command
            .arg("node")
            .args(["--port", &self.port.to_string(), "--bind_ip", "127.0.0.1"])
            .arg("--dbpath")
            .arg(self.dbpath())
            .arg("--logpath")
            .arg(self.logpath())
            // One log across restarts (without it the member would move the previous log aside, as mongod).
            .arg("--logappend")
            .args(["--replSet", &self.launch.repl_set]);
        for parameter in &self.launch.set_parameters {
            command.args(["--setParameter", parameter]);
        }
        command.args(&self.launch.node_flags);
        command.args(["--worker-threads", &self.launch.worker_threads.to_string()]);
        for route in &self.launch.peer_routes {
            command.args(["--peer-route", route]);
        }
        if self.launch.die_with_harness {
            command.args(["--die-with-parent", &std::process::id().to_string()]);
        }
        command.stderr(Stdio::from(stderr));
        self.process.spawn(&mut command, &self.launch.bin)
    }

    /// SIGKILL and reap. Returns whether a process was running.
    pub fn kill(&mut self) -> bool {
        self.process.kill()
    }

    /// SIGTERM (and SIGCONT, in case it is paused), then wait up to `grace` before SIGKILL. Returns whether a
    /// process was running.
    pub async fn stop(&mut self, grace: Duration) -> bool {
        self.process.stop(grace).await
    }

    /// SIGSTOP the member's process group. Returns whether it was running and is now paused.
    pub fn pause(&mut self) -> bool {
        self.process.pause()
    }

    /// SIGCONT. Returns whether it was paused.
    pub fn resume(&mut self) -> bool {
        self.process.resume()
    }

    /// Deletes the data directory (the member must be down).
    pub fn wipe_data(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.run_state() == RunState::Down, "{} is still running", self.name);
        remove_dir_if_present(&self.dbpath())
    }

    /// Lets the process outlive the harness: forgets it without killing it; returns its pid.
    pub fn detach(&mut self) -> Option<u32> {
        self.process.detach()
    }

    /// The end of the member's log (for error messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.logpath()).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().chain(err.lines()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn remove_dir_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}
