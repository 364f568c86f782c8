//! `faultline node`: run one member of the bundled database, with mongod's flag names and YAML keys.
//!
//! The flags and the `--config` file are merged and checked before anything starts; a bad flag, key or
//! value is a [`crate::UsageError`] (exit code 254) naming it. With `--fork` the process daemonises as
//! mongod does (see [`crate::daemon`]); the member writes `--pidfilepath` at start, forked or not.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use faultline_engine::NodeOptions;
use faultline_engine::options::split_bind_ip;

/// Flags of `faultline node` (mongod's names; they override the `--config` file).
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Directory for the member's data files [default: data/db].
    #[arg(long)]
    pub dbpath: Option<PathBuf>,
    /// Replica-set name [default: rs0]. A member is always a replica-set member.
    #[arg(long = "replSet")]
    pub repl_set: Option<String>,
    /// mongod-style YAML configuration file. Accepted keys: net.port, net.bindIp, net.bindIpAll,
    /// net.tls.mode (disabled), storage.dbPath, storage.journal.enabled (true), replication.replSetName,
    /// replication.oplogSizeMB, systemLog.destination (file), systemLog.path, systemLog.logAppend,
    /// systemLog.verbosity, systemLog.quiet, processManagement.fork, processManagement.pidFilePath,
    /// security.authorization (disabled), sharding.clusterRole, setParameter. Any other key is refused.
    #[arg(long, short = 'f')]
    pub config: Option<PathBuf>,
    /// Run in the background (needs --logpath): returns once the member accepts connections.
    #[arg(long)]
    pub fork: bool,
    /// Maximum size of the oplog in MB when it is created [default: 5% of free disk space, 990 MB to 50 GB].
    #[arg(long = "oplogSize", value_name = "MB", allow_negative_numbers = true)]
    pub oplog_size: Option<i64>,
    /// Server parameter NAME=VALUE; repeatable. Known: enableTestCommands (1/0/true/false, default 1),
    /// cursorTimeoutMillis, failpoint.NAME (e.g. failpoint.NAME=alwaysOn). Unknown names are refused.
    #[arg(long = "setParameter", value_name = "NAME=VALUE")]
    pub set_parameter: Vec<String>,
    /// Start as a shard of a sharded cluster (sharding.clusterRole: shardsvr; default port 27018; needs --replSet).
    #[arg(long)]
    pub shardsvr: bool,
    /// Start as a config server of a sharded cluster (sharding.clusterRole: configsvr; default port 27019;
    /// needs --replSet).
    #[arg(long)]
    pub configsvr: bool,
    /// Dial member HOST (as written in the replica-set config) at ADDR instead; repeatable. This is how the
    /// harness puts a fault proxy on every member-to-member link.
    #[arg(long = "peer-route", value_name = "HOST=ADDR")]
    pub peer_route: Vec<String>,
}

impl NodeArgs {
    /// The config file (if any) with the flags applied on top.
    pub fn resolve(&self) -> anyhow::Result<NodeOptions> {
        let mut options = read_config(self.config.as_deref(), NodeOptions::from_yaml)?.unwrap_or_default();
        let port_given = self.process.apply(ProcessSettings {
            port: &mut options.port,
            bind_ip: &mut options.bind_ip,
            logpath: &mut options.logpath,
            log_append: &mut options.log_append,
            pid_file: &mut options.pid_file,
        })?;
        options.port_given |= port_given;
        if let Some(path) = &self.dbpath {
            options.dbpath = path.clone();
        }
        if let Some(name) = &self.repl_set {
            anyhow::ensure!(
                !name.is_empty() && !name.contains('/'),
                "--replSet: invalid replica set name '{name}'"
            );
            options.repl_set = name.clone();
            options.repl_set_given = true;
        }
        match (self.shardsvr, self.configsvr) {
            (true, true) => anyhow::bail!("Cannot specify both --shardsvr and --configsvr"),
            (true, false) => options.cluster_role = faultline_engine::options::ClusterRole::ShardServer,
            (false, true) => options.cluster_role = faultline_engine::options::ClusterRole::ConfigServer,
            (false, false) => {}
        }
        options.apply_role_default_port();
        if self.fork {
            options.fork = true;
        }
        if let Some(size) = self.oplog_size {
            options.oplog_size_mb = Some(
                faultline_engine::options::parse_oplog_size(Some(size))
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?,
            );
        }
        for pair in &self.set_parameter {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--setParameter expects NAME=VALUE, got '{pair}'"))?;
            options.set_parameters.insert(name.to_string(), value.to_string());
        }
        options.peer_routes = parse_peer_routes(&self.peer_route)?;
        options.validate().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        options.argv = std::env::args().collect();
        Ok(options)
    }
}

/// `--peer-route HOST:PORT=ADDR:PORT` values as a route table (`faultline node` and `faultline mongos`).
pub fn parse_peer_routes(pairs: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(h, a)| h.contains(':') && a.contains(':'))
                .map(|(h, a)| (h.to_string(), a.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--peer-route expects HOST:PORT=ADDR:PORT, got '{pair}'"))
        })
        .collect()
}

/// Runs a member until SIGTERM or Ctrl-C (or, with `--fork`, starts one in the background and waits until it
/// accepts connections); returns the exit code.
pub fn run(args: &NodeArgs) -> anyhow::Result<i32> {
    let options = args
        .resolve()
        .map_err(|e| faultline::support::errors::UsageError(format!("{e:#}")))?;
    if options.fork && !crate::daemon::is_forked_child() {
        return crate::daemon::fork_and_wait(&options);
    }
    let (_log_guard, runtime) = start_process(
        options.logpath.as_deref(),
        options.log_append,
        options.verbosity,
        options.pid_file.as_deref(),
        args.process.worker_threads,
    )?;
    tracing::info!(port = options.port, dbpath = %options.dbpath.display(), replset = %options.repl_set, "starting faultline node");
    let logs_to_file = options.logpath.is_some();
    let stopped = runtime
        .block_on(faultline_engine::server::run(options, shutdown_signal()))
        .map_err(|e| {
            // A forked member's standard error is /dev/null: the log file is where its failure shows.
            if logs_to_file {
                tracing::error!(error = %e.message, "member stopped");
            }
            anyhow::anyhow!("{}", e.message)
        })?;
    match stopped {
        faultline_engine::server::Stopped::Shutdown => Ok(0),
        faultline_engine::server::Stopped::Fatal(message) => {
            eprintln!("faultline: fatal: {message}");
            // mongod's exit code after a fatal assertion (EXIT_ABRUPT).
            Ok(14)
        }
    }
}

/// The flags `faultline node` and `faultline mongos` share, by mongod's and mongos' names: where to listen,
/// where to log, the pid file. They override the `--config` file.
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// TCP port to listen on [default: 27017; for a node, 27018 with --shardsvr and 27019 with --configsvr].
    #[arg(long)]
    pub port: Option<u16>,
    /// Comma-separated addresses to listen on [default: 127.0.0.1].
    #[arg(long = "bind_ip")]
    pub bind_ip: Option<String>,
    /// Listen on all IPv4 addresses (0.0.0.0).
    #[arg(long = "bind_ip_all")]
    pub bind_ip_all: bool,
    /// Write the log to this file instead of standard error.
    #[arg(long)]
    pub logpath: Option<PathBuf>,
    /// Append to an existing log file; without this an existing log file is renamed <path>.<timestamp>.
    #[arg(long = "logappend")]
    pub log_append: bool,
    /// Write the process id to this file at start (its directory is created).
    #[arg(long = "pidfilepath", value_name = "FILE")]
    pub pid_file_path: Option<PathBuf>,
    /// Threads that serve connections and run replication (not a mongod flag) [default: one per CPU core].
    /// Members that share a host do better with a share of its cores each: every idle thread woken for a
    /// message costs a context switch. `faultline cluster`, `test` and `bench` give their members
    /// cores / members (at least 1).
    #[arg(long = "worker-threads", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

/// The settings [`ProcessArgs`] override, wherever a program's options keep them.
pub struct ProcessSettings<'a> {
    pub port: &'a mut u16,
    pub bind_ip: &'a mut Vec<String>,
    pub logpath: &'a mut Option<PathBuf>,
    pub log_append: &'a mut bool,
    pub pid_file: &'a mut Option<PathBuf>,
}

impl ProcessArgs {
    /// Applies the flags given; returns whether `--port` was one of them.
    pub fn apply(&self, settings: ProcessSettings<'_>) -> anyhow::Result<bool> {
        if let Some(port) = self.port {
            anyhow::ensure!(port > 0, "--port must be between 1 and 65535");
            *settings.port = port;
        }
        if let Some(bind) = &self.bind_ip {
            *settings.bind_ip = split_bind_ip(bind);
            anyhow::ensure!(!settings.bind_ip.is_empty(), "--bind_ip needs at least one address");
        }
        if self.bind_ip_all {
            *settings.bind_ip = vec!["0.0.0.0".into()];
        }
        if let Some(path) = &self.logpath {
            anyhow::ensure!(!path.as_os_str().is_empty(), "logpath cannot be empty if supplied");
            *settings.logpath = Some(path.clone());
        }
        if self.log_append {
            *settings.log_append = true;
        }
        if let Some(path) = &self.pid_file_path {
            anyhow::ensure!(!path.as_os_str().is_empty(), "--pidfilepath cannot be empty");
            *settings.pid_file = Some(path.clone());
        }
        Ok(self.port.is_some())
    }
}

/// Reads and parses the `--config` file, if one was named; errors name the file.
pub fn read_config<T>(
    path: Option<&Path>,
    parse: impl FnOnce(&str) -> faultline_engine::error::Result<T>,
) -> anyhow::Result<Option<T>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let options = parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message))?;
    Ok(Some(options))
}

/// What a member and a router do before they serve: start logging, write the pid file (creating its
/// directory, as mongod does), and build the async runtime with the engine's worker stack size and
/// `worker_threads` threads (one per core when `None`).
pub fn start_process(
    logpath: Option<&Path>,
    append: bool,
    verbosity: u32,
    pid_file: Option<&Path>,
    worker_threads: Option<u16>,
) -> anyhow::Result<(crate::logging::LogGuard, tokio::runtime::Runtime)> {
    let guard = crate::logging::init(&crate::logging::LogSettings {
        path: logpath,
        append,
        verbosity,
    })?;
    if let Some(path) = pid_file {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create pid file directory {}", dir.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("Cannot write pid file to {}", path.display()))?;
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = builder
        .enable_all()
        .thread_stack_size(faultline_engine::depth::WORKER_STACK_BYTES)
        .build()
        .context("cannot start the async runtime")?;
    Ok((guard, runtime))
}

/// Completes on SIGTERM or Ctrl-C (shared with `faultline mongos`).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<NodeOptions> {
        let cli = Cli::try_parse_from(std::iter::once("node").chain(args.iter().copied()))?;
        cli.node.resolve()
    }

    #[test]
    fn mongod_flags_reach_the_options() {
        let options = resolve(&[
            "--fork",
            "--logpath",
            "m.log",
            "--logappend",
            "--pidfilepath",
            "run/m.pid",
            "--oplogSize",
            "64",
            "--bind_ip",
            "localhost,127.0.0.1",
            "--setParameter",
            "cursorTimeoutMillis=1000",
        ])
        .expect("valid flags");
        assert!(options.fork && options.log_append);
        assert_eq!(options.pid_file, Some(PathBuf::from("run/m.pid")));
        assert_eq!(options.oplog_size_mb, Some(64));
        assert_eq!(options.bind_addrs().expect("addresses").len(), 1);
        assert_eq!(options.cursor_timeout(), std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_flags_are_refused_naming_them() {
        let message = |args: &[&str]| format!("{:#}", resolve(args).expect_err("refused"));
        assert_eq!(message(&["--fork"]), "--fork has to be used with --logpath or --syslog");
        assert!(message(&["--oplogSize", "0"]).contains("--oplogSize"));
        assert!(message(&["--bind_ip", "nonsense"]).contains("'nonsense'"));
        assert_eq!(
            message(&["--setParameter", "noSuchParameter=1"]),
            "Unknown --setParameter 'noSuchParameter'"
        );
        assert!(message(&["--setParameter", "failpoint.nope=alwaysOn"]).contains("failpoint.nope"));
        assert!(message(&["--setParameter", "nameonly"]).contains("NAME=VALUE"));
    }

    #[test]
    fn role_flags_set_the_role_and_its_default_port() {
        let shard = resolve(&["--shardsvr", "--replSet", "rs1"]).expect("a shard");
        assert_eq!(shard.port, 27018);
        let config = resolve(&["--configsvr", "--replSet", "cfg", "--port", "40000"]).expect("a config server");
        assert_eq!(config.port, 40000);
        let message = |args: &[&str]| format!("{:#}", resolve(args).expect_err("refused"));
        assert!(message(&["--configsvr"]).contains("Cannot start a configsvr as a standalone server"));
        assert!(message(&["--shardsvr", "--configsvr", "--replSet", "x"]).contains("both"));
    }

    #[test]
    fn flags_override_the_file_and_the_whole_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("m.conf");
        std::fs::write(
            &config,
            "processManagement:\n  fork: true\nreplication:\n  oplogSizeMB: 10\n",
        )
        .expect("write");
        let config = config.to_str().expect("utf-8 path");
        assert!(format!("{:#}", resolve(&["-f", config]).expect_err("fork without a log")).contains("--fork"));
        let options = resolve(&["-f", config, "--logpath", "m.log", "--oplogSize", "20"]).expect("valid");
        assert!(options.fork);
        assert_eq!(options.oplog_size_mb, Some(20));
        std::fs::write(dir.path().join("m.conf"), "setParameter:\n  enableTestCommands: 0\n").expect("write");
        let refused =
            resolve(&["-f", config, "--setParameter", "failpoint.skipRollback=alwaysOn"]).expect_err("refused");
        assert!(format!("{refused:#}").contains("enableTestCommands"), "{refused:#}");
    }
}
