//! The stop signal shared by a member's listeners and connections: a `watch` flag that turns true once.

use tokio::sync::watch;

/// Completes once the stop flag is set (the guard `wait_for` returns is dropped here, not held).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
