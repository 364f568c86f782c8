//! `faultline mongos`: run a query router of a sharded cluster, with mongos' flag names and YAML keys
//! (`--configdb cfgRS/h:p,...`, `--port`, `--bind_ip`, `-f FILE` with `sharding.configDB`, `net.*`,
//! `systemLog.*`). Bad flags and keys are a [`faultline::support::errors::UsageError`] (exit code 254).

use std::path::PathBuf;

use faultline_engine::router::RouterOptions;
use faultline_engine::router::options::parse_config_db;

use crate::node::{ProcessArgs, ProcessSettings, read_config, start_process};

/// Flags of `faultline mongos` (mongos' names; they override the `--config` file).
#[derive(clap::Args, Debug)]
pub struct MongosArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The config servers' replica set: cfgRS/host:port[,host:port...].
    #[arg(long = "configdb", value_name = "SET/HOST:PORT,...")]
    pub config_db: Option<String>,
    /// mongos-style YAML configuration file. Accepted keys: sharding.configDB, net.port, net.bindIp,
    /// net.bindIpAll, systemLog.destination (file), systemLog.path, systemLog.logAppend, systemLog.verbosity,
    /// systemLog.quiet, processManagement.pidFilePath. Any other key is refused.
    #[arg(long, short = 'f')]
    pub config: Option<PathBuf>,
    /// Dial HOST (a shard member or config server, as the cluster names it) at ADDR instead; repeatable. This
    /// is how `faultline test --shards` puts a fault proxy on every router link (not a mongos flag).
    #[arg(long = "peer-route", value_name = "HOST=ADDR")]
    pub peer_route: Vec<String>,
}

impl MongosArgs {
    /// The config file (if any) with the flags applied on top, checked as a whole.
    pub fn resolve(&self) -> anyhow::Result<RouterOptions> {
        let mut options = read_config(self.config.as_deref(), RouterOptions::from_yaml)?.unwrap_or_default();
        if let Some(text) = &self.config_db {
            options.config_db = Some(parse_config_db(text).map_err(|e| anyhow::anyhow!("--configdb: {}", e.message))?);
        }
        self.process.apply(ProcessSettings {
            port: &mut options.port,
            bind_ip: &mut options.bind_ip,
            logpath: &mut options.logpath,
            log_append: &mut options.log_append,
            pid_file: &mut options.pid_file,
        })?;
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
    let (_log_guard, runtime) = start_process(
        options.logpath.as_deref(),
        options.log_append,
        options.verbosity,
        options.pid_file.as_deref(),
        args.process.worker_threads,
    )?;
    tracing::info!(port = options.port, configdb = ?options.config_db, "starting faultline mongos");
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
