//! The narrow interface the member's parts (replicator, syncer) have to the driver: read the role the driver
//! publishes, feed the state machine an event, ask it to judge a rollback's common point, install a config
//! adopted from a peer, and stop the member on a fatal condition. Nothing else of the driver is reachable
//! from a part, and a part never holds the driver alive (the handle is weak).

use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::{Member, RoleSnapshot};
use crate::error::{Error, Result, code};
use crate::repl::{Event, OpTime, ReplError, ReplSetConfig};
use crate::tasks::Tasks;

/// A part's handle to the driver (the [`Member`] that composes it).
#[derive(Clone)]
pub(super) struct DriverHandle {
    driver: Weak<Member>,
    role: watch::Receiver<RoleSnapshot>,
    /// The member's task group: a part's tasks die with the member.
    tasks: Tasks,
}

impl DriverHandle {
    pub(super) fn new(driver: Weak<Member>, role: watch::Receiver<RoleSnapshot>, tasks: Tasks) -> DriverHandle {
        DriverHandle { driver, role, tasks }
    }

    /// Spawns a task of the member's (it ends when the member is killed).
    pub(super) fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// What the member currently is (the driver's published snapshot).
    pub(super) fn role(&self) -> RoleSnapshot {
        self.role.borrow().clone()
    }

    /// Runs `event` through the machine and carries out its actions before returning.
    pub(super) async fn feed(&self, event: Event) {
        let Some(driver) = self.driver.upgrade() else { return };
        let actions = driver.handle(event);
        driver.execute(actions).await;
    }

    /// Runs `event` through the machine now and carries out its actions in a task of their own (they may
    /// change the sync source, which aborts the caller's fetcher task).
    pub(super) fn notify(&self, event: Event) {
        let Some(driver) = self.driver.upgrade() else { return };
        let actions = driver.handle(event);
        if !actions.is_empty() {
            self.tasks.spawn(async move { driver.execute(actions).await });
        }
    }

    /// The machine's verdict on rolling back to `common` (it refuses to undo majority-committed entries).
    pub(super) fn check_rollback_common_point(&self, common: OpTime) -> Result<std::result::Result<(), ReplError>> {
        let driver = self.upgrade()?;
        driver.with_machine(|m, _| Ok(m.check_rollback_common_point(common)))
    }

    /// Starts the replica-set machinery for a config adopted from a peer (already stored).
    pub(super) fn install_config(&self, config: ReplSetConfig) -> Result<()> {
        self.upgrade()?.install_machine(config)
    }

    /// Stops the member for good (see [`Member::fail_fatally`]).
    pub(super) fn fail_fatally(&self, message: String) {
        if let Some(driver) = self.driver.upgrade() {
            driver.fail_fatally(message);
        }
    }

    fn upgrade(&self) -> Result<Arc<Member>> {
        self.driver
            .upgrade()
            .ok_or_else(|| Error::new(code::SHUTDOWN_IN_PROGRESS, "the member stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;
    use crate::repl::MemberConfig;

    /// A part that outlives its driver (a task still running at shutdown) neither panics nor keeps it alive:
    /// events are dropped, requests fail with ShutdownInProgress.
    #[tokio::test]
    async fn a_handle_to_a_stopped_driver_does_nothing() {
        let (role, _) = watch::channel(RoleSnapshot::uninitialised());
        let handle = DriverHandle::new(Weak::new(), role.subscribe(), Tasks::default());
        handle.feed(Event::Tick).await;
        handle.notify(Event::Tick);
        handle.fail_fatally("ignored".into());
        let config = ReplSetConfig::new("rs", vec![MemberConfig::new(0, "localhost:27017")]);
        let err = handle.install_config(config).expect_err("no driver to install into");
        assert_eq!(err.code, code::SHUTDOWN_IN_PROGRESS.0);
        assert!(handle.check_rollback_common_point(OpTime::null()).is_err());
        assert_eq!(handle.role().version, 0);
    }
}
