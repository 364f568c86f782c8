//! SIGINT in the middle of a run: the harness stops, leaves a history `faultline check` accepts, and no
//! `faultline node` process of the run survives.

use std::process::{Command, Stdio};
use std::time::Duration;

use faultline_tests::cluster::{latest_run, processes_mentioning};
use faultline_tests::wait_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bin;

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_run_leaves_a_checkable_history_and_no_members() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let mut child = Command::new(bin())
        .args([
            "test",
            "--nodes",
            "1",
            "--nemesis",
            "none",
            "--time-limit",
            "60s",
            "--rate",
            "0",
        ])
        .args([
            "--write-concern",
            "1",
            "--read-concern",
            "local",
            "--concurrency",
            "4",
            "--store",
        ])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let history = wait_until(Duration::from_secs(30), "the run to record operations", || {
        let store = store.path().to_path_buf();
        async move {
            let run = latest_run(&store).ok()?;
            let text = std::fs::read_to_string(run.join("history.jsonl")).ok()?;
            (text.lines().count() >= 50).then_some(run)
        }
    })
    .await?;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT)?;
    let status = wait_until(Duration::from_secs(30), "the harness to exit", || {
        let status = child.try_wait().ok().flatten();
        async move { status }
    })
    .await?;
    assert_eq!(status.code(), Some(2), "an interrupted run's verdict is unknown");
    let run_dir = history.to_string_lossy().to_string();
    assert!(
        processes_mentioning(&run_dir).is_empty(),
        "member processes survived the harness"
    );
    let check = Command::new(bin())
        .arg("check")
        .arg(history.join("history.jsonl"))
        .output()?;
    assert!(
        matches!(check.status.code(), Some(0..=2)),
        "faultline check rejected the history: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        history.join("history.edn").is_file(),
        "the EDN export is written even when interrupted"
    );
    Ok(())
}
