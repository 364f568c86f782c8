//! `faultline cluster`: a local replica set in one command — start, initiate, wait for a primary, print the
//! URI and a status line per member, run until Ctrl-C (or SIGTERM or SIGHUP), then shut every member down.
//! With `--shards N` it is a sharded cluster instead ([`crate::sharded`]): config servers, N shards of
//! `--nodes` members, `--mongos` routers, the shards added; it prints the routers' URI.
//! Every flag is checked before anything starts; the members die with the harness however it dies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::cluster::{Cluster, ClusterSpec, registry};
use crate::input::{self, ARBITERS, MAX_SECONDS, NODES, Whole};
use faultline::support::errors::UsageError;
use faultline::support::signals;

/// Ports members may use.
const PORT: Whole = Whole {
    what: "port",
    min: 1,
    max: 65535,
    why: "",
};
/// Shards of a sharded cluster.
const SHARDS: Whole = Whole {
    what: "number of shards",
    min: 1,
    max: 16,
    why: "",
};
/// Config servers of a sharded cluster (the range; 2 is refused by `validate`).
const CONFIG_SERVERS: Whole = Whole {
    what: "number of config servers",
    min: 1,
    max: 3,
    why: " (1 or 3)",
};
/// Routers of a sharded cluster.
const ROUTERS: Whole = Whole {
    what: "number of routers",
    min: 1,
    max: 8,
    why: "",
};
/// How long to wait for a primary.
const WAIT_SECS: Whole = Whole {
    what: "number of seconds",
    min: 1,
    max: MAX_SECONDS as u64,
    why: " (30 days)",
};

/// Flags of `faultline cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Data-bearing members; with the arbiters at most 7.
    #[arg(long, default_value_t = 3, allow_hyphen_values = true, value_parser = NODES.parser::<usize>())]
    pub nodes: usize,
    /// Arbiters (vote, hold no data).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = ARBITERS.parser::<usize>())]
    pub arbiters: usize,
    /// Port of the first member; the others use the next ports (the last must be at most 65535).
    #[arg(long, default_value_t = 27017, allow_hyphen_values = true, value_parser = PORT.parser::<u16>())]
    pub base_port: u16,
    /// Directory for the members' data and logs (`<dir>/nodes/<n>/`).
    #[arg(long, default_value = "faultline-cluster")]
    pub dir: PathBuf,
    /// Replica-set name.
    #[arg(long = "replSet", default_value = "rs0", allow_hyphen_values = true)]
    pub repl_set: String,
    /// Start a sharded cluster with this many shards (each a replica set of --nodes members) instead of one
    /// replica set; clients connect to the routers.
    #[arg(long, allow_hyphen_values = true, value_parser = SHARDS.parser::<usize>())]
    pub shards: Option<usize>,
    /// Config servers of a sharded cluster (1 or 3).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = CONFIG_SERVERS.parser::<usize>())]
    pub config_servers: usize,
    /// Routers (`faultline mongos`) of a sharded cluster.
    #[arg(long = "mongos", default_value_t = 1, allow_hyphen_values = true, value_parser = ROUTERS.parser::<usize>())]
    pub routers: usize,
    /// How long to wait for a primary, in seconds.
    #[arg(long, default_value_t = 60, allow_hyphen_values = true, value_parser = WAIT_SECS.parser::<u64>())]
    pub wait_secs: u64,
}

/// Runs the cluster until interrupted; returns the exit code.
pub fn run(args: &ClusterArgs) -> anyhow::Result<i32> {
    validate(args).map_err(UsageError)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args));
    registry::kill_all();
    result
}

async fn serve(args: &ClusterArgs) -> anyhow::Result<i32> {
    if let Some(shards) = args.shards {
        return serve_sharded(args, shards).await;
    }
    let bin = std::env::current_exe().context("cannot find the faultline binary")?;
    let dir = std::path::absolute(&args.dir).context("bad --dir")?;
    let mut spec = ClusterSpec::new(bin, dir, args.nodes);
    spec.arbiters = args.arbiters;
    spec.base_port = Some(args.base_port);
    spec.repl_set = args.repl_set.clone();
    // A tutorial cluster needs no fault proxies: members talk to each other directly.
    spec.proxies = false;
    let mut cluster = tokio::select! {
        cluster = start(spec, Duration::from_secs(args.wait_secs)) => cluster?,
        _ = signals::interrupted() => return Ok(130),
    };
    println!("replica set {} is up", cluster.spec.repl_set);
    println!("  uri: {}", cluster.uri());
    for line in cluster.status_lines().await {
        println!("  {line}");
    }
    println!("  data and logs: {}", cluster.spec.dir.join("nodes").display());
    println!("press Ctrl-C to stop");
    signals::interrupted().await;
    println!("stopping {} members...", cluster.members.len());
    cluster.shutdown(Duration::from_secs(10)).await;
    Ok(0)
}

/// `faultline cluster --shards N`.
async fn serve_sharded(args: &ClusterArgs, shards: usize) -> anyhow::Result<i32> {
    let spec = crate::sharded::ShardedSpec {
        bin: std::env::current_exe().context("cannot find the faultline binary")?,
        dir: std::path::absolute(&args.dir).context("bad --dir")?,
        shards,
        nodes: args.nodes,
        config_servers: args.config_servers,
        routers: args.routers,
        base_port: args.base_port,
        proxied: false,
        set_parameters: Vec::new(),
    };
    let wait = Duration::from_secs(args.wait_secs);
    let mut cluster = tokio::select! {
        cluster = crate::sharded::ShardedCluster::start(&spec, wait) => cluster?,
        _ = signals::interrupted() => return Ok(130),
    };
    println!(
        "sharded cluster is up: {shards} shard(s) of {} member(s), {} config server(s), {} router(s)",
        spec.nodes, spec.config_servers, spec.routers
    );
    println!("  uri: {}", cluster.uri());
    for line in cluster.status_lines().await {
        println!("  {line}");
    }
    println!("  data and logs: {}", spec.dir.display());
    println!("press Ctrl-C to stop");
    signals::interrupted().await;
    println!("stopping the routers, shards and config servers...");
    cluster.shutdown(Duration::from_secs(10)).await;
    Ok(0)
}

/// Every check of the flags that clap's parsers cannot make alone.
fn validate(args: &ClusterArgs) -> Result<(), String> {
    if let Some(shards) = args.shards {
        if args.arbiters > 0 {
            return Err("--arbiters is for a replica set; a sharded cluster's shards have no arbiters here".into());
        }
        if args.config_servers == 2 {
            return Err(
                "--config-servers 2 is not accepted: use 1 (a tutorial) or 3 (a majority survives one \
                        failure)"
                    .into(),
            );
        }
        let ports = args.routers + args.config_servers + shards * args.nodes;
        let last = usize::from(args.base_port) + ports - 1;
        if last > 65535 {
            return Err(format!(
                "--base-port {} leaves no room for {ports} processes (the last would be port {last})",
                args.base_port
            ));
        }
        return Ok(());
    }
    let members = args.nodes + args.arbiters;
    if members as u64 > input::MAX_MEMBERS {
        return Err(format!(
            "--nodes {} with --arbiters {} is not a valid replica set: at most {} members in all \
             (MongoDB's limit of voting members; every member votes)",
            args.nodes,
            args.arbiters,
            input::MAX_MEMBERS
        ));
    }
    let last = usize::from(args.base_port) + members - 1;
    if last > 65535 {
        return Err(format!(
            "--base-port {} leaves no room for {members} members (the last would be port {last}): use at most {}",
            args.base_port,
            65536 - members
        ));
    }
    if args.repl_set.is_empty() || args.repl_set.contains(['/', ' ', '\0']) {
        return Err(format!(
            "--replSet {:?} is not a valid replica-set name: a non-empty name without '/' or spaces",
            args.repl_set
        ));
    }
    Ok(())
}

async fn start(spec: ClusterSpec, wait: Duration) -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(spec).await?;
    if !cluster.is_initiated().await {
        cluster.initiate().await?;
    }
    cluster.wait_primary(wait).await?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClusterArgs,
    }

    fn check(args: &[&str]) -> Result<(), String> {
        let cli =
            Cli::try_parse_from(std::iter::once("cluster").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        validate(&cli.args)
    }

    #[test]
    fn every_member_port_must_fit_below_65536() {
        assert!(check(&["--base-port", "65533"]).is_ok());
        let refused = check(&["--base-port", "65534"]).expect_err("65536 is no port");
        assert_eq!(
            refused,
            "--base-port 65534 leaves no room for 3 members (the last would be port 65536): use at most 65533"
        );
        assert!(check(&["--base-port", "65535", "--nodes", "1"]).is_ok());
        assert!(check(&["--base-port", "0"]).is_err() && check(&["--base-port", "70000"]).is_err());
    }

    #[test]
    fn sharded_flags_are_checked() {
        assert!(
            check(&[
                "--shards",
                "2",
                "--nodes",
                "1",
                "--mongos",
                "2",
                "--config-servers",
                "3"
            ])
            .is_ok()
        );
        assert!(check(&["--shards", "0"]).is_err());
        assert!(
            check(&["--shards", "2", "--config-servers", "2"])
                .expect_err("2")
                .contains("1")
        );
        assert!(
            check(&["--shards", "2", "--arbiters", "1"])
                .expect_err("arbiters")
                .contains("--arbiters")
        );
        assert!(
            check(&["--shards", "16", "--base-port", "65500"])
                .expect_err("ports")
                .contains("--base-port")
        );
    }

    #[test]
    fn member_counts_names_and_waits_are_bounded() {
        assert!(check(&["--nodes", "5", "--arbiters", "2"]).is_ok());
        assert!(
            check(&["--nodes", "5", "--arbiters", "3"])
                .expect_err("8")
                .contains("at most 7")
        );
        assert!(check(&["--nodes", "-1"]).expect_err("-1").contains("-1"));
        assert!(check(&["--replSet", "a/b"]).expect_err("slash").contains("\"a/b\""));
        assert!(check(&["--wait-secs", "0"]).is_err() && check(&["--wait-secs", "99999999999999"]).is_err());
    }
}
