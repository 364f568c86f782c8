//! A member's background tasks as one group that can be stopped at once.
//!
//! A real member stops when its process exits; under simulation several members share one process, and a
//! simulated kill must end every loop, fetcher and RPC of the killed member (and nothing else) without
//! waiting for them. Each task spawned through [`Tasks::spawn`] races its work against the group's stop
//! signal and is dropped, wherever it waits, as soon as [`Tasks::stop_all`] is called. A task runs in the
//! tracing span it was spawned from, so that the simulation's members, each working inside a span of its
//! own, keep their names in the log (a lone member has no span, and logs as before).

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// The group; clones share it.
#[derive(Debug, Clone)]
pub struct Tasks {
    stopped: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            stopped: watch::Sender::new(false),
        }
    }
}

impl Tasks {
    /// Spawns `work` on the runtime as a member of the group.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stopped = self.stopped.subscribe();
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                tokio::select! {
                    biased;
                    _ = stopped.wait_for(|stopped| *stopped) => {}
                    () = work => {}
                }
            }
            .instrument(span),
        )
    }

    /// Stops every task of the group, now and from now on.
    pub fn stop_all(&self) {
        self.stopped.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_waiting_tasks_and_later_ones() {
        let tasks = Tasks::default();
        let waiting = tasks.spawn(std::future::pending());
        tasks.stop_all();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("a waiting task ends once the group stops")
            .expect("it ends without a panic");
        let later = tasks.spawn(std::future::pending());
        tokio::time::timeout(std::time::Duration::from_secs(1), later)
            .await
            .expect("a task spawned after the stop ends at once")
            .expect("it ends without a panic");
        assert!(tasks.is_stopped());
    }
}
