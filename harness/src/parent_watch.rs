//! Dying with the harness: a process the harness starts (a `faultline node` member, or the `faultline test`
//! child of `faultline gate`) asks the kernel to SIGKILL it when its parent dies, whatever kills the parent
//! (SIGKILL included, which leaves the parent no chance to clean up).
//!
//! The parent passes its own pid (`--die-with-parent PID`, a hidden flag); the child calls [`die_with_parent`]
//! first thing. `PR_SET_PDEATHSIG` only covers a parent that dies *after* the call, so the child then checks
//! that its parent is still the expected process: if the harness died between `fork` and the call, the child
//! has already been re-parented (to init or a sub-reaper) and gives up at once.
//!
//! SIGKILL rather than SIGTERM: a member may be SIGSTOPped by a pause fault, and a stopped process leaves a
//! SIGTERM pending for ever, still holding its port. Caveat (Linux): the signal fires when the parent
//! *thread* that spawned the child exits, so the harness spawns members from threads that live as long as it
//! does (the main thread or the async runtime's workers, never a short-lived blocking-pool thread).

use anyhow::bail;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::getppid;

/// Arranges for SIGKILL when the parent dies, then checks that the parent is `expected_parent`: an error
/// means it is not (it already died, or this process was started by someone else) and the caller should exit
/// at once.
pub fn die_with_parent(expected_parent: u32) -> anyhow::Result<()> {
    prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|errno| anyhow::anyhow!("cannot ask to die with the parent process: {errno}"))?;
    check_parent(expected_parent, getppid().as_raw())
}

fn check_parent(expected: u32, actual: i32) -> anyhow::Result<()> {
    if i64::from(actual) != i64::from(expected) {
        bail!("the process that started this one (pid {expected}) is gone (the parent is now pid {actual}); exiting");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_parent_is_accepted_and_the_death_signal_is_set() {
        let parent = u32::try_from(getppid().as_raw()).expect("a pid is positive");
        let before = prctl::get_pdeathsig().expect("readable");
        die_with_parent(parent).expect("the test runner is our parent");
        assert_eq!(prctl::get_pdeathsig().expect("readable"), Some(Signal::SIGKILL));
        // Leave the test process as it was.
        prctl::set_pdeathsig(before).expect("restored");
    }

    #[test]
    fn another_parent_is_refused_with_both_pids_named() {
        let parent = getppid().as_raw();
        let expected = u32::try_from(parent).expect("positive") + 1;
        let refused = check_parent(expected, parent).expect_err("not our parent");
        let message = refused.to_string();
        assert!(
            message.contains(&expected.to_string()) && message.contains(&parent.to_string()),
            "{message}"
        );
        assert!(check_parent(7, 1).is_err(), "re-parented to init");
    }
}
