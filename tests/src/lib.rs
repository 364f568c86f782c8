//! Fixtures for Faultline's end-to-end tests.
//!
//! The tests themselves live beside this crate (`tests/e2e/…`) and are compiled as integration tests of the
//! `faultline` binary package, so they can find the binary (`CARGO_BIN_EXE_faultline`) and start it as real
//! processes. Nothing here sleeps to wait: [`wait_until`] polls a condition with a deadline and a message.

pub mod cluster;
pub mod proxy;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use bson::{Document, doc};
use mongodb::Client;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a member may take to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, or fails with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A free TCP port on 127.0.0.1 that this process has not handed out before. The OS may give a port it
/// just released to the next `bind(0)`, so the ports already handed out (to members and proxies of tests
/// running in parallel) are remembered and skipped.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Option<std::collections::HashSet<u16>>> = std::sync::Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(Default::default);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && handed_out.insert(port) {
            return port;
        }
    }
}

/// One `faultline node` child process with its own data directory and log file.
pub struct NodeProcess {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// Environment variables the next starts get (test aids such as a crash in a checkpoint).
    env: Vec<(String, String)>,
}

impl NodeProcess {
    /// Starts a member on a free port and waits until it answers `hello`.
    pub async fn start(bin: &Path, extra_args: &[&str]) -> anyhow::Result<NodeProcess> {
        NodeProcess::start_with_port(bin, free_port(), extra_args).await
    }

    /// Starts a member on a given port (other members' routes may already point at it).
    pub async fn start_with_port(bin: &Path, port: u16, extra_args: &[&str]) -> anyhow::Result<NodeProcess> {
        let dir = tempfile::Builder::new().prefix("faultline-node-").tempdir()?;
        let mut node = NodeProcess {
            bin: bin.to_path_buf(),
            child: None,
            port,
            dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        node.spawn().await?;
        Ok(node)
    }

    pub fn dbpath(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    pub fn logpath(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .arg("node")
            .arg("--dbpath")
            .arg(self.dbpath())
            .arg("--logpath")
            .arg(self.logpath())
            // One log across restarts, so `log()` shows every run.
            .arg("--logappend")
            .args(&self.extra_args)
            .args(self.port_flag())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let port = self.port;
        wait_until(
            START_TIMEOUT,
            &format!("faultline node on port {port} to answer hello"),
            || async move { raw_command(port, doc! {"hello": 1, "$db": "admin"}).await.ok() },
        )
        .await
        .with_context(|| format!("node log:\n{}", self.log()))?;
        Ok(())
    }

    /// `--port P` unless the extra arguments already name the port.
    fn port_flag(&self) -> Vec<String> {
        if self.extra_args.iter().any(|a| a == "--port") {
            Vec::new()
        } else {
            vec!["--port".into(), self.port.to_string()]
        }
    }

    /// The member's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logpath()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Sets an environment variable for the member's next starts (`None` removes it).
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.to_string(), value.to_string()));
        }
    }

    /// Waits for the process to exit by itself (as a test aid makes it abort), up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("node is not running")?;
        let status = wait_until(timeout, "the member to exit", || {
            let exited = child.try_wait().ok().flatten();
            async move { exited }
        })
        .await?;
        self.child = None;
        Ok(status)
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) {
        self.signal_and_reap(Signal::SIGKILL);
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("node is not running")?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        Ok(child.wait()?)
    }

    fn signal_and_reap(&mut self, signal: Signal) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
            let _ = child.wait();
        }
    }

    /// Starts the member again on the same port and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.signal_and_reap(Signal::SIGKILL);
        self.spawn().await
    }

    /// A direct-connection URI to this member.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::with_uri_str(self.uri()).await?)
    }

    /// `rs.initiate()` with no config, then waits until this member is a writable primary.
    pub async fn initiate(&self) -> anyhow::Result<()> {
        let reply = raw_command(self.port, doc! {"replSetInitiate": {}, "$db": "admin"}).await?;
        anyhow::ensure!(
            reply.get_f64("ok").unwrap_or(0.0) == 1.0,
            "replSetInitiate failed: {reply}"
        );
        self.wait_primary().await
    }

    pub async fn wait_primary(&self) -> anyhow::Result<()> {
        let port = self.port;
        wait_until(START_TIMEOUT, "the member to become PRIMARY", || async move {
            let hello = raw_command(port, doc! {"hello": 1, "$db": "admin"}).await.ok()?;
            hello.get_bool("isWritablePrimary").ok().filter(|p| *p).map(|_| ())
        })
        .await
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.signal_and_reap(Signal::SIGKILL);
    }
}

/// Sends one OP_MSG command on a fresh connection and returns the reply body.
pub async fn raw_command(port: u16, body: Document) -> anyhow::Result<Document> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    send_op_msg(&mut stream, 1, &body).await?;
    read_reply(&mut stream).await
}

/// Writes an OP_MSG request with one kind-0 section.
pub async fn send_op_msg(stream: &mut TcpStream, request_id: i32, body: &Document) -> anyhow::Result<()> {
    let bytes = faultline_engine::wire::try_encode_msg(request_id, 0, 0, body)?;
    stream.write_all(&bytes).await?;
    Ok(())
}

/// Reads one reply (OP_MSG or OP_REPLY) and returns its document.
pub async fn read_reply(stream: &mut TcpStream) -> anyhow::Result<Document> {
    let mut header = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut header))
        .await
        .context("reply timed out")??;
    let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let op_code = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    anyhow::ensure!((16..=48_000_000).contains(&len), "bad reply length {len}");
    let mut body = vec![0u8; len - 16];
    stream.read_exact(&mut body).await?;
    let doc_bytes = match op_code {
        2013 => &body[5..], // flags (4) + section kind (1)
        1 => &body[20..],   // responseFlags, cursorID, startingFrom, numberReturned
        other => bail!("unexpected reply opcode {other}"),
    };
    Ok(Document::from_reader(doc_bytes)?)
}
