//! mongos' start-up options: `--configdb`, `--port`, `--bind_ip`, and the YAML keys `sharding.configDB`,
//! `net.*`, `systemLog.*` and `processManagement.pidFilePath`, checked before anything starts.
//!
//! As mongos does, the config servers must be named as a replica set (`cfgRS/h1:p1,h2:p2`), an unknown YAML
//! key is refused ("Unrecognized option: ..."), and so are mongod-only keys such as `storage.dbPath`.

use std::net::SocketAddr;
use std::path::PathBuf;

use bson::{Document, doc};

use super::rs_client::SeedList;
use crate::config_file::{self, boolean, non_empty};
use crate::error::{Error, Result};
use crate::options::{NodeOptions, split_bind_ip};

/// The YAML keys `faultline mongos` accepts.
pub const MONGOS_YAML_KEYS: &[&str] = &[
    "net.port",
    "net.bindIp",
    "net.bindIpAll",
    "sharding.configDB",
    "systemLog.destination",
    "systemLog.path",
    "systemLog.logAppend",
    "systemLog.verbosity",
    "systemLog.quiet",
    "processManagement.pidFilePath",
];

/// Everything a router needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterOptions {
    pub port: u16,
    pub bind_ip: Vec<String>,
    /// The config servers' replica set (`--configdb` / `sharding.configDB`).
    pub config_db: Option<SeedList>,
    pub logpath: Option<PathBuf>,
    pub log_append: bool,
    pub verbosity: u32,
    pub quiet: bool,
    pub pid_file: Option<PathBuf>,
    /// The command line as given, for `getCmdLineOpts`.
    pub argv: Vec<String>,
}

impl Default for RouterOptions {
    fn default() -> RouterOptions {
        RouterOptions {
            port: 27017,
            bind_ip: vec!["127.0.0.1".into()],
            config_db: None,
            logpath: None,
            log_append: false,
            verbosity: 0,
            quiet: false,
            pid_file: None,
            argv: Vec::new(),
        }
    }
}

impl RouterOptions {
    /// Reads mongos' YAML configuration keys.
    pub fn from_yaml(text: &str) -> Result<RouterOptions> {
        let leaves = config_file::leaves(text, MONGOS_YAML_KEYS, "mongos")?;
        let mut options = RouterOptions::default();
        let mut destination = None;
        let mut bind_ip_all = false;
        for (key, value) in &leaves {
            let key = key.as_str();
            let text = || non_empty(key, value).map(String::from);
            match key {
                "net.port" => options.port = config_file::port(value)?,
                "net.bindIp" => options.bind_ip = split_bind_ip(&text()?),
                "net.bindIpAll" => bind_ip_all = boolean(key, value)?,
                "sharding.configDB" => options.config_db = Some(parse_config_db(&text()?)?),
                "systemLog.destination" => destination = Some(text()?),
                "systemLog.path" => options.logpath = Some(PathBuf::from(text()?)),
                "systemLog.logAppend" => options.log_append = boolean(key, value)?,
                "systemLog.verbosity" => options.verbosity = config_file::verbosity(value)?,
                "systemLog.quiet" => options.quiet = boolean(key, value)?,
                "processManagement.pidFilePath" => options.pid_file = Some(PathBuf::from(text()?)),
                _ => return Err(Error::bad_value(format!("Unrecognized option: {key}"))),
            }
        }
        if bind_ip_all {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        config_file::check_log_destination(destination.as_deref(), options.logpath.is_some())?;
        Ok(options)
    }

    /// Checks the whole: a config replica set is named, the bind addresses parse.
    pub fn validate(&self) -> Result<()> {
        if self.config_db.is_none() {
            return Err(Error::bad_value(
                "error: no args for --configdb (mongos needs the config servers: --configdb cfgRS/host:port,...)",
            ));
        }
        self.bind_addrs()?;
        Ok(())
    }

    /// The socket addresses to listen on.
    pub fn bind_addrs(&self) -> Result<Vec<SocketAddr>> {
        NodeOptions {
            port: self.port,
            bind_ip: self.bind_ip.clone(),
            ..NodeOptions::default()
        }
        .bind_addrs()
    }

    /// The address this router names itself by (in `config.mongos`).
    pub fn self_host(&self) -> String {
        let ip = self.bind_ip.first().map(String::as_str).unwrap_or("127.0.0.1");
        let host = match ip {
            "0.0.0.0" | "::" | "localhost" => "127.0.0.1",
            other => other,
        };
        format!("{host}:{}", self.port)
    }

    /// The `parsed` section of `getCmdLineOpts`.
    pub fn parsed_document(&self) -> Document {
        let mut parsed = doc! {"net": {"port": i32::from(self.port), "bindIp": self.bind_ip.join(",")}};
        if let Some(config) = &self.config_db {
            parsed.insert("sharding", doc! {"configDB": config.to_string()});
        }
        if let Some(path) = &self.logpath {
            parsed.insert(
                "systemLog",
                doc! {"destination": "file", "path": path.display().to_string()},
            );
        }
        parsed
    }
}

/// Reads `--configdb`: the config servers must be a replica set (`name/host:port,...`).
pub fn parse_config_db(text: &str) -> Result<SeedList> {
    let seeds = SeedList::parse(text)?;
    if seeds.set_name.is_none() {
        return Err(Error::bad_value(format!(
            "configdb supports only replica set connection string: '{text}' (write cfgRS/host:port,...)"
        )));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mongos_tutorial_config() {
        let yaml = "sharding:\n  configDB: cfg/127.0.0.1:27019,127.0.0.1:27020\nnet:\n  port: 27017\n  bindIp: \
                    localhost\nsystemLog:\n  destination: file\n  path: /tmp/mongos.log\n  logAppend: true\n";
        let options = RouterOptions::from_yaml(yaml).expect("valid");
        let config = options.config_db.clone().expect("configDB");
        assert_eq!(config.set_name.as_deref(), Some("cfg"));
        assert_eq!(config.hosts.len(), 2);
        options.validate().expect("valid whole");
        assert_eq!(options.self_host(), "127.0.0.1:27017");
    }

    #[test]
    fn refuses_what_mongos_refuses() {
        let refused = |yaml: &str| RouterOptions::from_yaml(yaml).expect_err("refused").message;
        assert_eq!(
            refused("storage:\n  dbPath: /x\n"),
            "Unrecognized option: storage.dbPath"
        );
        assert!(refused("sharding:\n  configDB: 127.0.0.1:27019\n").contains("replica set connection string"));
        assert!(
            RouterOptions::default()
                .validate()
                .expect_err("no configdb")
                .message
                .contains("--configdb")
        );
    }
}
