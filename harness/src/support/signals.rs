//! The signals that stop the harness cleanly.

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (a closed terminal or SSH session stops the harness cleanly, as
/// Ctrl-C does, instead of killing it and orphaning its members).
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let hangup = signal(SignalKind::hangup());
    match (term, hangup) {
        (Ok(mut term), Ok(mut hangup)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = hangup.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
