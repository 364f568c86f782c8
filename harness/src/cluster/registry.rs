//! The process registry: every `faultline node` child the harness started, so that all of them die with the
//! harness whatever way it exits.
//!
//! Each child runs in its own process group (its pid is the group id). [`kill_all`] sends SIGKILL to every
//! registered group; it is called by [`super::Cluster`]'s `Drop`, by the panic hook [`install_panic_hook`]
//! installs, and by the commands' Ctrl-C / SIGTERM handling before they exit. (A harness killed with SIGKILL
//! cannot clean up; its children then keep running until killed.)

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, Once};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<i32>> {
    // A panic while holding the lock must not stop the clean-up of children.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records a child whose process group is `pid`.
pub fn register(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        live().insert(pid);
    }
}

/// Forgets a child that has been reaped.
pub fn unregister(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        live().remove(&pid);
    }
}

/// SIGKILLs every registered process group (SIGKILL also ends stopped processes). Safe to call repeatedly.
pub fn kill_all() {
    let groups = std::mem::take(&mut *live());
    for pid in groups {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Chains a panic hook that kills every child before the default report.
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_all();
            previous(info);
        }));
    });
}
