//! Members die with the harness whatever kills it: after SIGKILL of `faultline cluster`, `faultline test` or
//! `faultline gate` no member keeps running; SIGHUP stops `faultline cluster` cleanly, as Ctrl-C does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use faultline_tests::cluster::processes_mentioning;
use faultline_tests::{free_port, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bin;

/// How long a set may take to start and elect a primary on a loaded machine.
const UP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long members may take to notice that the harness is gone.
const GONE_TIMEOUT: Duration = Duration::from_secs(20);

/// The first of `count` consecutive ports that are free right now.
fn free_ports(count: u16) -> u16 {
    loop {
        let base = free_port();
        let Some(last) = base.checked_add(count - 1) else {
            continue;
        };
        let held: Vec<_> = (base + 1..=last)
            .map_while(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if held.len() == usize::from(count - 1) {
            return base;
        }
    }
}

/// Live members (`faultline node`) whose data directory lies under `dir`. The run that started them
/// (`faultline test --run-dir ...`) mentions `dir` too but is not a member.
fn members_under(dir: &Path) -> Vec<u32> {
    processes_mentioning(&format!("--dbpath {}", dir.display()))
}

/// Every live process whose command line mentions `dir`: members and the runs that own them.
fn processes_under(dir: &Path) -> Vec<u32> {
    processes_mentioning(&dir.to_string_lossy())
}

/// Polls until `count` members run under `dir`; returns their pids.
async fn wait_members(dir: &Path, count: usize, harness: &mut Child) -> anyhow::Result<Vec<u32>> {
    let dir = dir.to_path_buf();
    let harness_pid = harness.id();
    let up = wait_until(UP_TIMEOUT, &format!("{count} members under {}", dir.display()), || {
        let members: Vec<u32> = members_under(&dir).into_iter().filter(|p| *p != harness_pid).collect();
        async move { (members.len() == count).then_some(members) }
    })
    .await;
    if up.is_err() {
        // A failing test leaves no process behind.
        let _ = harness.kill();
        for pid in processes_under(&dir) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    up
}

/// Polls until no member runs under `dir`. On failure the survivors are killed, so that a failing test
/// leaves no process behind.
async fn wait_no_members(dir: &Path, after: &str) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    let gone = wait_until(
        GONE_TIMEOUT,
        &format!("every member under {} to die {after}", dir.display()),
        || {
            let left = processes_under(&dir);
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
    if gone.is_err() {
        for pid in processes_under(&dir) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    gone
}

/// Polls until the harness exits.
async fn wait_exit(child: &mut Child) -> anyhow::Result<ExitStatus> {
    wait_until(GONE_TIMEOUT, "the harness to exit", || {
        let status = child.try_wait().ok().flatten();
        async move { status }
    })
    .await
}

/// Polls until `file` holds `text`.
async fn wait_text(file: &Path, text: &str) -> anyhow::Result<()> {
    let file = file.to_path_buf();
    wait_until(UP_TIMEOUT, &format!("{text:?} in {}", file.display()), || {
        let seen = std::fs::read_to_string(&file).unwrap_or_default().contains(text);
        async move { seen.then_some(()) }
    })
    .await
}

/// `faultline cluster --nodes 3` in `dir/cluster`, its stdout in `dir/out.txt`, once the set is up.
async fn start_cluster(dir: &Path) -> anyhow::Result<(Child, PathBuf)> {
    let data = dir.join("cluster");
    let out = dir.join("out.txt");
    let mut child = Command::new(bin())
        .args([
            "cluster",
            "--nodes",
            "3",
            "--base-port",
            &free_ports(3).to_string(),
            "--dir",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(Stdio::null())
        .spawn()?;
    wait_text(&out, "press Ctrl-C to stop").await?;
    wait_members(&data.join("nodes"), 3, &mut child).await?;
    Ok((child, data))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_faultline_cluster_leaves_no_member() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut harness, data) = start_cluster(dir.path()).await?;
    kill(Pid::from_raw(harness.id() as i32), Signal::SIGKILL)?;
    let status = wait_exit(&mut harness).await?;
    assert_eq!(status.code(), None, "killed by a signal");
    wait_no_members(&data.join("nodes"), "after SIGKILL of faultline cluster").await
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_stops_faultline_cluster_cleanly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut harness, data) = start_cluster(dir.path()).await?;
    kill(Pid::from_raw(harness.id() as i32), Signal::SIGHUP)?;
    let status = wait_exit(&mut harness).await?;
    let out = std::fs::read_to_string(dir.path().join("out.txt"))?;
    assert_eq!(status.code(), Some(0), "a clean stop, as on Ctrl-C:\n{out}");
    assert!(out.contains("stopping 3 members"), "{out}");
    wait_no_members(&data.join("nodes"), "after SIGHUP of faultline cluster").await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_faultline_test_leaves_no_member() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let mut harness = Command::new(bin())
        .args([
            "test",
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "120s",
            "--rate",
            "50",
        ])
        .args([
            "--write-concern",
            "1",
            "--read-concern",
            "local",
            "--concurrency",
            "2",
            "--store",
        ])
        .arg(store.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_members(store.path(), 3, &mut harness).await?;
    kill(Pid::from_raw(harness.id() as i32), Signal::SIGKILL)?;
    wait_exit(&mut harness).await?;
    wait_no_members(store.path(), "after SIGKILL of faultline test").await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_faultline_gate_leaves_no_run_and_no_member() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        "name = \"orphans\"\n[[scenario]]\nname = \"long\"\nexpect = \"valid\"\nseeds = [1]\n\
         [scenario.test]\nnodes = 1\ntime_limit = 120\nnemesis = [\"none\"]\nrate = 50\nconcurrency = 2\n",
    )?;
    let store = dir.path().join("store");
    let mut gate = Command::new(bin())
        .arg("gate")
        .arg(&suite)
        .arg("--store")
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // The gate's `faultline test` child names the spec under the store; its member names its data there.
    wait_members(&store.join("long"), 1, &mut gate).await?;
    kill(Pid::from_raw(gate.id() as i32), Signal::SIGKILL)?;
    wait_exit(&mut gate).await?;
    wait_no_members(&store, "after SIGKILL of faultline gate (its run included)").await
}
