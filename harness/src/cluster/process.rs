//! A child process in its own process group, as the harness runs members and routers: registered in the
//! [`super::registry`] from spawn until reaped, killed, stopped, paused and resumed as a group, and killed
//! when dropped.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::registry;

/// Whether a process is up, and whether it is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// SIGSTOPped.
    Paused,
    /// No process (killed, stopped or never started).
    Down,
}

/// At most one child process at a time, and whether it is paused.
#[derive(Debug, Default)]
pub struct ProcessGroup {
    child: Option<Child>,
    paused: bool,
}

impl ProcessGroup {
    /// Spawns `command` (its standard error already set by the caller) in a new process group, with no
    /// standard input or output.
    pub fn spawn(&mut self, command: &mut Command, bin: &Path) -> anyhow::Result<()> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        registry::register(child.id());
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Running, paused or down (reaps the child if it exited by itself).
    pub fn run_state(&mut self) -> RunState {
        let exited = match self.child.as_mut() {
            None => return RunState::Down,
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
        };
        if exited {
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
                registry::unregister(child.id());
            }
            self.paused = false;
            return RunState::Down;
        }
        if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    /// SIGKILL and reap. Returns whether a process was running.
    pub fn kill(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        registry::unregister(child.id());
        self.paused = false;
        true
    }

    /// SIGTERM (and SIGCONT, in case it is paused), then wait up to `grace` before SIGKILL. Returns whether a
    /// process was running.
    pub async fn stop(&mut self, grace: Duration) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let _ = killpg(group, Signal::SIGCONT);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if self.run_state() == RunState::Down {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.kill()
    }

    /// SIGSTOP the process group. Returns whether it was running and is now paused.
    pub fn pause(&mut self) -> bool {
        match (self.run_state(), self.pid()) {
            (RunState::Running, Some(pid)) => {
                self.paused = killpg(Pid::from_raw(pid as i32), Signal::SIGSTOP).is_ok();
                self.paused
            }
            _ => false,
        }
    }

    /// SIGCONT. Returns whether it was paused.
    pub fn resume(&mut self) -> bool {
        match (self.run_state(), self.pid()) {
            (RunState::Paused, Some(pid)) => {
                let resumed = killpg(Pid::from_raw(pid as i32), Signal::SIGCONT).is_ok();
                self.paused = !resumed;
                resumed
            }
            _ => false,
        }
    }

    /// Lets the process outlive the harness: forgets it without killing it; returns its pid.
    pub fn detach(&mut self) -> Option<u32> {
        let child = self.child.take()?;
        registry::unregister(child.id());
        Some(child.id())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
