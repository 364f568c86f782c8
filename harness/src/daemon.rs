//! `faultline node --fork` (or `processManagement.fork: true`): daemonise as mongod does, without unsafe code.
//!
//! The parent re-executes the current executable with the same arguments, detached (its own process group,
//! standard streams on /dev/null) and marked by [`FORKED_CHILD_ENV`] so that it runs the member instead of
//! forking again. It prints mongod's lines (`about to fork child process, ...`, `forked process: <pid>`) and
//! exits 0 once the member answers a `ping` — or reports the child's failure (its exit status) and exits
//! non-zero if the child exits first or is not ready before [`READY_TIMEOUT`].

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use faultline_engine::NodeOptions;

/// Set (to `1`) in the forked child's environment: it is the daemon and must not fork again.
pub const FORKED_CHILD_ENV: &str = "FAULTLINE_NODE_FORKED_CHILD";

/// How long the parent waits for the member to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The pause between two readiness probes (each probe itself waits up to [`PROBE_TIMEOUT`]).
const PROBE_PAUSE: Duration = Duration::from_millis(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether this process is the child a `--fork` parent started.
pub fn is_forked_child() -> bool {
    std::env::var_os(FORKED_CHILD_ENV).is_some_and(|v| v == "1")
}

/// Starts the member in the background and waits until it answers; returns the parent's exit code.
pub fn fork_and_wait(options: &NodeOptions) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the faultline executable to fork")?;
    let probe = probe_address(options)?;
    println!("about to fork child process, waiting until server is ready for connections.");
    let mut child = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(FORKED_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    println!("forked process: {}", child.id());
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for the forked process")? {
            println!("ERROR: child process failed, {}", describe(status));
            println!("To see additional information in this output, start without the \"--fork\" option.");
            return Ok(status.code().filter(|c| *c != 0).unwrap_or(255));
        }
        if answers_ping(probe) {
            println!("child process started successfully, parent exiting");
            return Ok(0);
        }
        if Instant::now() >= deadline {
            // A daemon that never became ready is not left behind unreported: stop it.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            println!(
                "ERROR: child process {} did not accept connections on {probe} within {}s; sent it SIGTERM",
                child.id(),
                READY_TIMEOUT.as_secs()
            );
            return Ok(255);
        }
        std::thread::sleep(PROBE_PAUSE);
    }
}

/// mongod's wording for how the child ended.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with error number {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Where to reach the member: its first bind address, with a wildcard address replaced by loopback.
fn probe_address(options: &NodeOptions) -> anyhow::Result<SocketAddr> {
    let addrs = options.bind_addrs().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let first = addrs.first().context("no address to listen on")?;
    let ip = match first.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, first.port()))
}

/// Whether a member at `addr` answers `ping` (a connection alone is not enough: the listener is bound
/// before storage is open, and connections wait in the backlog until it is).
fn answers_ping(addr: SocketAddr) -> bool {
    let attempt = || -> anyhow::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
        let request = faultline_engine::wire::try_encode_msg(1, 0, 0, &bson::doc! {"ping": 1, "$db": "admin"})?;
        stream.write_all(&request)?;
        let mut header = [0u8; 16];
        stream.read_exact(&mut header)?;
        let len = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let op_code = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        let Ok(body_len) = usize::try_from(len - 16) else {
            return Ok(false);
        };
        if op_code != 2013 || !(5..=16 * 1024 * 1024).contains(&body_len) {
            return Ok(false);
        }
        let mut body = vec![0u8; body_len];
        stream.read_exact(&mut body)?;
        let reply = bson::Document::from_reader(&body[5..])?;
        Ok(reply.get_f64("ok").ok() == Some(1.0) || reply.get_i32("ok").ok() == Some(1))
    };
    attempt().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_dials_loopback_for_a_wildcard_bind() {
        let options = NodeOptions {
            bind_ip: vec!["0.0.0.0".into()],
            port: 27123,
            ..NodeOptions::default()
        };
        assert_eq!(probe_address(&options).expect("probe").to_string(), "127.0.0.1:27123");
        let options = NodeOptions {
            bind_ip: vec!["::".into(), "127.0.0.1".into()],
            ..options
        };
        assert_eq!(probe_address(&options).expect("probe").to_string(), "[::1]:27123");
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port")
            .port();
        assert!(!answers_ping(SocketAddr::from(([127, 0, 0, 1], port))));
    }
}
