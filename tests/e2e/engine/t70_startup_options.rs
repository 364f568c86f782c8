//! Start-up options as mongod takes them: a tutorial's YAML file with every key Faultline honours, refusals
//! (unknown keys and parameters, security options it cannot honour, `--fork` without a log file) that exit
//! with 254 and one line naming the culprit, `--fork` daemonising with a pid file, `--bind_ip` naming one
//! address twice, and a standard-error log without colour codes when it is not a terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use bson::doc;
use faultline_tests::{NodeProcess, START_TIMEOUT, free_port, raw_command, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bin;

/// How long a refused start-up may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a `faultline node` process left behind when it exited by itself.
struct Exited {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `faultline node ARGS` in `dir` with its output captured in files, and waits (polling, with a
/// deadline) for it to exit by itself; a process that is still running at the deadline is killed and the
/// test fails.
async fn run_to_exit(dir: &Path, args: &[String]) -> anyhow::Result<Exited> {
    let stdout_path = dir.join(format!("stdout-{}.txt", free_port()));
    let stderr_path = stdout_path.with_extension("err");
    let mut child = Command::new(bin())
        .arg("node")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let waited = wait_until(
        REFUSAL_TIMEOUT,
        &format!("`faultline node {}` to exit", args.join(" ")),
        || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        },
    )
    .await;
    let status = match waited {
        Ok(status) => status,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err.context(format!(
                "it kept running; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )));
        }
    };
    Ok(Exited {
        status,
        stdout: std::fs::read_to_string(&stdout_path)?,
        stderr: std::fs::read_to_string(&stderr_path)?,
    })
}

/// Asserts a refused start-up: exit code 254 and exactly one line on standard error, naming `culprit`.
fn assert_refused(exited: &Exited, culprit: &str, what: &str) {
    assert_eq!(
        exited.status.code(),
        Some(254),
        "{what}: exit code; stderr:\n{}",
        exited.stderr
    );
    let lines: Vec<&str> = exited.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one line expected on stderr, got:\n{}",
        exited.stderr
    );
    assert!(
        lines[0].contains(culprit),
        "{what}: the message should name {culprit:?}: {}",
        lines[0]
    );
}

/// SIGKILLs a daemonised member when the test ends, whatever happened, and waits for its port to close.
struct KillOnDrop {
    pid: Option<i32>,
    port: u16,
}

impl KillOnDrop {
    /// Kills now and fails unless the member stops answering.
    async fn kill_and_wait(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid.take() {
            kill(Pid::from_raw(pid), Signal::SIGKILL)?;
        }
        let port = self.port;
        wait_until(START_TIMEOUT, "the killed member's port to close", || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        })
        .await
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The pid in the parent's `forked process: <pid>` line.
fn forked_pid(stdout: &str) -> Option<i32> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("forked process: "))
        .and_then(|p| p.trim().parse().ok())
}

/// Checks the parent's mongod-style report and that the member answers at once (no waiting: the parent
/// must only have exited once it did). Returns the pid from the pid file.
async fn check_forked(exited: &Exited, port: u16, pid_file: &Path, guard: &KillOnDrop) -> anyhow::Result<i32> {
    assert_eq!(
        exited.status.code(),
        Some(0),
        "the parent exits 0 once the member is ready; stdout:\n{}\nstderr:\n{}",
        exited.stdout,
        exited.stderr
    );
    let lines: Vec<&str> = exited.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("about to fork child process, waiting until server is ready for connections."),
        "{}",
        exited.stdout
    );
    assert_eq!(
        lines.last().copied(),
        Some("child process started successfully, parent exiting"),
        "{}",
        exited.stdout
    );
    let ping = raw_command(port, doc! {"ping": 1, "$db": "admin"}).await;
    assert!(
        ping.as_ref().is_ok_and(|r| r.get_f64("ok").ok() == Some(1.0)),
        "the member must answer as soon as the parent has exited: {ping:?}"
    );
    let text = std::fs::read_to_string(pid_file)?;
    let pid: i32 = text.trim().parse()?;
    assert_eq!(Some(pid), guard.pid, "the pid file holds the forked process's pid");
    assert!(kill(Pid::from_raw(pid), None).is_ok(), "pid {pid} is alive");
    assert_ne!(pid as u32, std::process::id());
    Ok(pid)
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// A mongod tutorial's file with every key Faultline accepts: it forks, writes its pid file (creating the
/// directory), moves the previous log aside (`logAppend: false`), serves, and reports what it was given.
#[tokio::test(flavor = "multi_thread")]
async fn tutorial_config_with_every_key_forks_and_serves() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let log_dir = dir.path().join("log");
    std::fs::create_dir_all(&log_dir)?;
    let log = log_dir.join("mongod.log");
    std::fs::write(&log, "the previous run's log\n")?;
    let pid_file = dir.path().join("run").join("mongod.pid");
    let config = dir.path().join("mongod.conf");
    std::fs::write(
        &config,
        format!(
            "# where to write logging data.
systemLog:
  destination: file
  logAppend: false
  path: {log}
  verbosity: 0
  quiet: false
storage:
  dbPath: {db}
  journal:
    enabled: true
processManagement:
  fork: true
  pidFilePath: {pid}
net:
  port: {port}
  bindIp: localhost,127.0.0.1
  bindIpAll: false
  tls:
    mode: disabled
security:
  authorization: disabled
replication:
  replSetName: tutorial
  oplogSizeMB: 128
setParameter:
  enableTestCommands: 1
  cursorTimeoutMillis: 60000
  failpoint.skipRollback: 'off'
",
            log = log.display(),
            db = dir.path().join("db").display(),
            pid = pid_file.display(),
        ),
    )?;

    let exited = run_to_exit(dir.path(), &["--config".into(), path_arg(&config)]).await?;
    let mut guard = KillOnDrop {
        pid: forked_pid(&exited.stdout),
        port,
    };
    check_forked(&exited, port, &pid_file, &guard).await?;

    let opts = raw_command(port, doc! {"getCmdLineOpts": 1, "$db": "admin"}).await?;
    let parsed = opts.get_document("parsed")?;
    assert_eq!(
        parsed.get_document("replication")?.get_str("replSetName")?,
        "tutorial",
        "{opts}"
    );
    assert_eq!(
        parsed.get_document("replication")?.get_i32("oplogSizeMB")?,
        128,
        "{opts}"
    );
    assert!(parsed.get_document("processManagement")?.get_bool("fork")?, "{opts}");
    let params = raw_command(port, doc! {"getParameter": "*", "$db": "admin"}).await?;
    assert!(params.get_bool("enableTestCommands")?, "{params}");
    assert_eq!(params.get_i64("cursorTimeoutMillis")?, 60_000, "{params}");

    // logAppend: false moved the previous log aside as <path>.<timestamp>.
    let aside: Vec<PathBuf> = std::fs::read_dir(&log_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p != &log)
        .collect();
    assert_eq!(aside.len(), 1, "one old log moved aside: {aside:?}");
    let aside_name = aside[0].file_name().unwrap_or_default().to_string_lossy().to_string();
    assert!(aside_name.starts_with("mongod.log.20"), "{aside_name}");
    assert_eq!(std::fs::read_to_string(&aside[0])?, "the previous run's log\n");
    let current = std::fs::read_to_string(&log)?;
    assert!(!current.contains("previous run"), "{current}");
    assert!(current.contains("waiting for connections"), "{current}");
    assert!(!current.contains('\x1b'), "a log file never gets colour codes");

    guard.kill_and_wait().await
}

/// `--fork --logpath F --pidfilepath P` returns 0 only once the member answers; the pid file (in a directory
/// that did not exist) holds the live member's pid.
#[tokio::test(flavor = "multi_thread")]
async fn fork_flag_returns_once_the_member_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let pid_file = dir.path().join("pids").join("member.pid");
    let args: Vec<String> = vec![
        "--fork".into(),
        "--port".into(),
        port.to_string(),
        "--dbpath".into(),
        path_arg(&dir.path().join("db")),
        "--logpath".into(),
        path_arg(&dir.path().join("member.log")),
        "--pidfilepath".into(),
        path_arg(&pid_file),
    ];
    let exited = run_to_exit(dir.path(), &args).await?;
    let mut guard = KillOnDrop {
        pid: forked_pid(&exited.stdout),
        port,
    };
    check_forked(&exited, port, &pid_file, &guard).await?;
    guard.kill_and_wait().await
}

/// A forked member that fails (here: its port is taken) makes the parent report the child's exit status and
/// exit non-zero; the reason is in the member's log file.
#[tokio::test(flavor = "multi_thread")]
async fn fork_reports_a_child_that_fails_to_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let log = dir.path().join("member.log");
    let args: Vec<String> = vec![
        "--fork".into(),
        "--port".into(),
        port.to_string(),
        "--dbpath".into(),
        path_arg(&dir.path().join("db")),
        "--logpath".into(),
        path_arg(&log),
    ];
    let exited = run_to_exit(dir.path(), &args).await?;
    // Only a child the parent did not see exit may still be running (and is then killed).
    let _guard = KillOnDrop {
        pid: forked_pid(&exited.stdout).filter(|_| exited.status.success()),
        port,
    };
    assert!(forked_pid(&exited.stdout).is_some(), "{}", exited.stdout);
    assert_ne!(exited.status.code(), Some(0), "stdout:\n{}", exited.stdout);
    assert!(
        exited
            .stdout
            .contains("ERROR: child process failed, exited with error number 255"),
        "{}",
        exited.stdout
    );
    assert!(!exited.stdout.contains("started successfully"), "{}", exited.stdout);
    let log = std::fs::read_to_string(&log)?;
    assert!(log.contains("cannot listen on 127.0.0.1"), "{log}");
    drop(taken);
    Ok(())
}

/// mongod refuses `--fork` without a log destination, and so does Faultline (before starting anything).
#[tokio::test(flavor = "multi_thread")]
async fn fork_without_a_log_path_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let args: Vec<String> = vec![
        "--fork".into(),
        "--port".into(),
        port.to_string(),
        "--dbpath".into(),
        path_arg(&dir.path().join("db")),
    ];
    let exited = run_to_exit(dir.path(), &args).await?;
    assert_refused(
        &exited,
        "--fork has to be used with --logpath",
        "--fork without --logpath",
    );
    assert!(
        raw_command(port, doc! {"ping": 1, "$db": "admin"}).await.is_err(),
        "nothing was started"
    );
    let config = dir.path().join("fork.conf");
    std::fs::write(&config, "processManagement:\n  fork: true\n")?;
    let exited = run_to_exit(dir.path(), &["--config".into(), path_arg(&config)]).await?;
    assert_refused(
        &exited,
        "--fork has to be used with --logpath",
        "processManagement.fork without a log path",
    );
    Ok(())
}

/// Unknown YAML keys, security options Faultline cannot honour, and bad systemLog settings refuse to start.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_unsupported_yaml_keys_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cases = [
        ("net:\n  port: 27999\n  foo: 1\n", "Unrecognized option: net.foo"),
        (
            "storage:\n  engine: wiredTiger\n",
            "Unrecognized option: storage.engine",
        ),
        ("security:\n  authorization: enabled\n", "security.authorization"),
        ("security:\n  keyFile: /etc/mongo.key\n", "security.keyFile"),
        ("net:\n  tls:\n    mode: requireTLS\n", "net.tls.mode"),
        ("storage:\n  journal:\n    enabled: false\n", "storage.journal.enabled"),
        ("systemLog:\n  destination: syslog\n", "syslog"),
        ("systemLog:\n  destination: file\n", "systemLog.path is required"),
        ("replication:\n  oplogSizeMB: 0\n", "replication.oplogSizeMB"),
    ];
    for (i, (yaml, culprit)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("case{i}.conf"));
        std::fs::write(&config, yaml)?;
        let port = free_port();
        let exited = run_to_exit(
            dir.path(),
            &[
                "--config".into(),
                path_arg(&config),
                "--port".into(),
                port.to_string(),
                "--dbpath".into(),
                path_arg(&dir.path().join(format!("db{i}"))),
            ],
        )
        .await?;
        assert_refused(&exited, culprit, yaml);
    }
    Ok(())
}

/// Unknown `--setParameter` names (flag or YAML), unknown fail points and bad values refuse to start.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_set_parameters_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let flag_cases = [
        ("noSuchParameter=1", "Unknown --setParameter 'noSuchParameter'"),
        ("failpoint.noSuchPoint=alwaysOn", "failpoint.noSuchPoint"),
        ("cursorTimeoutMillis=-5", "cursorTimeoutMillis"),
        ("enableTestCommands=maybe", "enableTestCommands"),
    ];
    for (i, (pair, culprit)) in flag_cases.iter().enumerate() {
        let port = free_port();
        let exited = run_to_exit(
            dir.path(),
            &[
                "--setParameter".into(),
                pair.to_string(),
                "--port".into(),
                port.to_string(),
                "--dbpath".into(),
                path_arg(&dir.path().join(format!("db{i}"))),
            ],
        )
        .await?;
        assert_refused(&exited, culprit, pair);
    }
    let config = dir.path().join("params.conf");
    std::fs::write(&config, "setParameter:\n  notAParameter: 5\n")?;
    let exited = run_to_exit(
        dir.path(),
        &[
            "--config".into(),
            path_arg(&config),
            "--port".into(),
            free_port().to_string(),
        ],
    )
    .await?;
    assert_refused(&exited, "Unknown --setParameter 'notAParameter'", "YAML setParameter");
    Ok(())
}

/// `--bind_ip localhost,127.0.0.1` names one address twice: it is bound once. An address that is not one
/// refuses to start.
#[tokio::test(flavor = "multi_thread")]
async fn bind_ip_naming_one_address_twice_starts() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &["--bind_ip", "localhost,127.0.0.1"]).await?;
    let ping = raw_command(node.port, doc! {"ping": 1, "$db": "admin"}).await?;
    assert_eq!(ping.get_f64("ok")?, 1.0);

    let dir = tempfile::tempdir()?;
    let exited = run_to_exit(
        dir.path(),
        &[
            "--bind_ip".into(),
            "127.0.0.1,not-an-address".into(),
            "--port".into(),
            free_port().to_string(),
            "--dbpath".into(),
            path_arg(&dir.path().join("db")),
        ],
    )
    .await?;
    assert_refused(&exited, "not-an-address", "an unparseable bind address");
    Ok(())
}

/// The threads a process's async runtime runs on (named `tokio-rt-worker`).
fn runtime_threads(pid: i32) -> anyhow::Result<usize> {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        n += usize::from(comm.trim() == "tokio-rt-worker");
    }
    Ok(n)
}

/// `--worker-threads N` (a Faultline flag) runs the member's connections and replication on N threads; 0 is
/// refused.
#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_flag_sets_the_runtime_threads() -> anyhow::Result<()> {
    for threads in [1, 3] {
        let node = NodeProcess::start(bin(), &["--worker-threads", &threads.to_string()]).await?;
        let pid = node
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| anyhow::anyhow!("no pid"))?;
        assert_eq!(runtime_threads(pid)?, threads, "--worker-threads {threads}");
    }
    let dir = tempfile::tempdir()?;
    let exited = run_to_exit(
        dir.path(),
        &[
            "--worker-threads".into(),
            "0".into(),
            "--port".into(),
            free_port().to_string(),
            "--dbpath".into(),
            path_arg(&dir.path().join("db")),
        ],
    )
    .await?;
    assert_refused(&exited, "--worker-threads", "zero worker threads");
    Ok(())
}

/// `--oplogSize` is reported as mongod does; `enableTestCommands=0` takes the test commands away.
#[tokio::test(flavor = "multi_thread")]
async fn oplog_size_flag_and_test_commands_switch() -> anyhow::Result<()> {
    let node = NodeProcess::start(bin(), &["--oplogSize", "64", "--setParameter", "enableTestCommands=0"]).await?;
    let opts = raw_command(node.port, doc! {"getCmdLineOpts": 1, "$db": "admin"}).await?;
    assert_eq!(
        opts.get_document("parsed")?
            .get_document("replication")?
            .get_i32("oplogSizeMB")?,
        64,
        "{opts}"
    );
    let param = raw_command(
        node.port,
        doc! {"getParameter": 1, "enableTestCommands": 1, "$db": "admin"},
    )
    .await?;
    assert!(!param.get_bool("enableTestCommands")?, "{param}");
    let refused = raw_command(
        node.port,
        doc! {"configureFailPoint": "skipRollback", "mode": "alwaysOn", "$db": "admin"},
    )
    .await?;
    assert_eq!(refused.get_i32("code")?, 59, "{refused}");

    // By default (Faultline is a test database) test commands are on, and getParameter says so.
    let default = NodeProcess::start(bin(), &[]).await?;
    let param = raw_command(
        default.port,
        doc! {"getParameter": 1, "enableTestCommands": 1, "$db": "admin"},
    )
    .await?;
    assert!(param.get_bool("enableTestCommands")?, "{param}");
    Ok(())
}

/// Logging to standard error that is not a terminal carries no ANSI colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn stderr_log_has_no_colour_codes_when_not_a_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let stderr_path = dir.path().join("stderr.txt");
    let child = Command::new(bin())
        .arg("node")
        .args(["--port", &port.to_string(), "--dbpath"])
        .arg(dir.path().join("db"))
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let mut guard = KillOnDrop {
        pid: Some(child.id() as i32),
        port,
    };
    let mut child = child;
    wait_until(START_TIMEOUT, "the member to answer ping", || async move {
        raw_command(port, doc! {"ping": 1, "$db": "admin"}).await.ok()
    })
    .await?;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
    guard.pid = None;
    child.wait()?;
    let log = std::fs::read_to_string(&stderr_path)?;
    assert!(log.contains("waiting for connections"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a non-terminal log:\n{log:?}");
    guard.kill_and_wait().await
}
