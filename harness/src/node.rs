//! `faultline node`: run one member of the bundled database, with mongod's flag names.

use std::path::PathBuf;

use anyhow::Context as _;
use faultline_engine::NodeOptions;
use faultline_engine::options::split_bind_ip;

/// Flags of `faultline node` (mongod's names; they override the `--config` file).
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// TCP port to listen on [default: 27017].
    #[arg(long)]
    pub port: Option<u16>,
    /// Directory for the member's data files [default: data/db].
    #[arg(long)]
    pub dbpath: Option<PathBuf>,
    /// Replica-set name [default: rs0]. A member is always a replica-set member.
    #[arg(long = "replSet")]
    pub repl_set: Option<String>,
    /// Comma-separated addresses to listen on [default: 127.0.0.1].
    #[arg(long = "bind_ip")]
    pub bind_ip: Option<String>,
    /// Listen on all IPv4 addresses (0.0.0.0).
    #[arg(long = "bind_ip_all")]
    pub bind_ip_all: bool,
    /// mongod-style YAML configuration file (net.port, net.bindIp, storage.dbPath, replication.replSetName,
    /// systemLog.path, setParameter).
    #[arg(long, short = 'f')]
    pub config: Option<PathBuf>,
    /// Write the log to this file instead of standard error.
    #[arg(long)]
    pub logpath: Option<PathBuf>,
    /// Server parameter NAME=VALUE; repeatable. `failpoint.NAME=alwaysOn` turns a fail point on.
    #[arg(long = "setParameter", value_name = "NAME=VALUE")]
    pub set_parameter: Vec<String>,
    /// Dial member HOST (as written in the replica-set config) at ADDR instead; repeatable. This is how the
    /// harness puts a fault proxy on every member-to-member link.
    #[arg(long = "peer-route", value_name = "HOST=ADDR")]
    pub peer_route: Vec<String>,
}

impl NodeArgs {
    /// The config file (if any) with the flags applied on top.
    pub fn resolve(&self) -> anyhow::Result<NodeOptions> {
        let mut options = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                NodeOptions::from_yaml(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message))?
            }
            None => NodeOptions::default(),
        };
        if let Some(port) = self.port {
            anyhow::ensure!(port > 0, "--port must be between 1 and 65535");
            options.port = port;
        }
        if let Some(path) = &self.dbpath {
            options.dbpath = path.clone();
        }
        if let Some(name) = &self.repl_set {
            anyhow::ensure!(
                !name.is_empty() && !name.contains('/'),
                "--replSet: invalid replica set name '{name}'"
            );
            options.repl_set = name.clone();
        }
        if let Some(bind) = &self.bind_ip {
            options.bind_ip = split_bind_ip(bind);
            anyhow::ensure!(!options.bind_ip.is_empty(), "--bind_ip needs at least one address");
        }
        if self.bind_ip_all {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        if let Some(path) = &self.logpath {
            options.logpath = Some(path.clone());
        }
        for pair in &self.set_parameter {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--setParameter expects NAME=VALUE, got '{pair}'"))?;
            options.set_parameters.insert(name.to_string(), value.to_string());
        }
        for pair in &self.peer_route {
            let (host, addr) = pair
                .split_once('=')
                .filter(|(h, a)| h.contains(':') && a.contains(':'))
                .ok_or_else(|| anyhow::anyhow!("--peer-route expects HOST:PORT=ADDR:PORT, got '{pair}'"))?;
            options.peer_routes.insert(host.to_string(), addr.to_string());
        }
        options.argv = std::env::args().collect();
        Ok(options)
    }
}

/// Runs a member until SIGTERM or Ctrl-C; returns the exit code.
pub fn run(args: &NodeArgs) -> anyhow::Result<i32> {
    let options = args.resolve().map_err(|e| crate::UsageError(format!("{e:#}")))?;
    let _log_guard = crate::logging::init(options.logpath.as_deref())?;
    tracing::info!(port = options.port, dbpath = %options.dbpath.display(), replset = %options.repl_set, "starting faultline node");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(faultline_engine::server::WORKER_STACK_BYTES)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        faultline_engine::server::run(options, shutdown_signal())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
    })?;
    Ok(0)
}

async fn shutdown_signal() {
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
