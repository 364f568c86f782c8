//! `faultline mongos`: run a query router of a sharded cluster, with mongos' flag names and YAML keys
//! (`--configdb cfgRS/h:p,...`, `--port`, `--bind_ip`, `-f FILE` with `sharding.configDB`, `net.*`,
//! `systemLog.*`). Bad flags and keys are a [`faultline::support::errors::UsageError`] (exit code 254).

use std::path::PathBuf;

use anyhow::Context as _;
use faultline_engine::options::split_bind_ip;
use faultline_engine::router::RouterOptions;
use faultline_engine::router::options::parse_config_db;

/// Flags of `faultline mongos` (mongos' names; they override the `--config` file).
#[derive(clap::Args, Debug)]
pub struct MongosArgs {
    /// The config servers' replica set: cfgRS/host:port[,host:port...].
    #[arg(long = "configdb", value_name = "SET/HOST:PORT,...")]
    pub config_db: Option<String>,
    /// TCP port to listen on [default: 27017].
    #[arg(long)]
    pub port: Option<u16>,
    /// Comma-separated addresses to listen on [default: 127.0.0.1].
    #[arg(long = "bind_ip")]
    pub bind_ip: Option<String>,
    /// Listen on all IPv4 addresses (0.0.0.0).
    #[arg(long = "bind_ip_all")]
    pub bind_ip_all: bool,
    /// mongos-style YAML configuration file. Accepted keys: sharding.configDB, net.port, net.bindIp,
    /// net.bindIpAll, systemLog.destination (file), systemLog.path, systemLog.logAppend, systemLog.verbosity,
    /// systemLog.quiet, processManagement.pidFilePath. Any other key is refused.
    #[arg(long, short = 'f')]
    pub config: Option<PathBuf>,
    /// Write the log to this file instead of standard error.
    #[arg(long)]
    pub logpath: Option<PathBuf>,
    /// Append to an existing log file.
    #[arg(long = "logappend")]
    pub log_append: bool,
    /// Write the router's process id to this file at start.
    #[arg(long = "pidfilepath", value_name = "FILE")]
    pub pid_file_path: Option<PathBuf>,
    /// Dial HOST (a shard member or config server, as the cluster names it) at ADDR instead; repeatable. This
    /// is how `faultline test --shards` puts a fault proxy on every router link (not a mongos flag).
    #[arg(long = "peer-route", value_name = "HOST=ADDR")]
    pub peer_route: Vec<String>,
}

impl MongosArgs {
    /// The config file (if any) with the flags applied on top, checked as a whole.
    pub fn resolve(&self) -> anyhow::Result<RouterOptions> {
        let mut options = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                RouterOptions::from_yaml(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message))?
            }
            None => RouterOptions::default(),
        };
        if let Some(text) = &self.config_db {
            options.config_db = Some(parse_config_db(text).map_err(|e| anyhow::anyhow!("--configdb: {}", e.message))?);
        }
        if let Some(port) = self.port {
            anyhow::ensure!(port > 0, "--port must be between 1 and 65535");
            options.port = port;
        }
        if let Some(bind) = &self.bind_ip {
            options.bind_ip = split_bind_ip(bind);
        }
        if self.bind_ip_all {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        if let Some(path) = &self.logpath {
            options.logpath = Some(path.clone());
        }
        if self.log_append {
            options.log_append = true;
        }
        if let Some(path) = &self.pid_file_path {
            options.pid_file = Some(path.clone());
        }
        options.validate().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        options.argv = std::env::args().collect();
        Ok(options)
    }
}

/// Runs a router until SIGTERM or Ctrl-C; returns the exit code.
pub fn run(args: &MongosArgs) -> anyhow::Result<i32> {
    let options = args
        .resolve()
        .map_err(|e| faultline::support::errors::UsageError(format!("{e:#}")))?;
    let routes = crate::node::parse_peer_routes(&args.peer_route)
        .map_err(|e| faultline::support::errors::UsageError(format!("{e:#}")))?;
    faultline_engine::wire::client::install_dial_routes(routes);
    let _log_guard = crate::logging::init(&crate::logging::LogSettings {
        path: options.logpath.as_deref(),
        append: options.log_append,
        verbosity: options.verbosity,
    })?;
    if let Some(path) = &options.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("Cannot write pid file to {}", path.display()))?;
    }
    tracing::info!(port = options.port, configdb = ?options.config_db, "starting faultline mongos");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(faultline_engine::depth::WORKER_STACK_BYTES)
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(faultline_engine::router::run(options, crate::node::shutdown_signal()))
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mongos: MongosArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<RouterOptions> {
        Cli::try_parse_from(std::iter::once("mongos").chain(args.iter().copied()))?
            .mongos
            .resolve()
    }

    #[test]
    fn mongos_flags_reach_the_options_and_bad_ones_are_refused() {
        let options = resolve(&["--configdb", "cfg/127.0.0.1:27019", "--port", "30000"]).expect("valid");
        assert_eq!(options.port, 30000);
        assert_eq!(options.config_db.expect("configdb").set_name.as_deref(), Some("cfg"));
        let message = |args: &[&str]| format!("{:#}", resolve(args).expect_err("refused"));
        assert!(message(&[]).contains("--configdb"));
        assert!(message(&["--configdb", "127.0.0.1:27019"]).contains("replica set"));
    }
}
