//! mongos' start-up options: `--configdb`, `--port`, `--bind_ip`, and the YAML keys `sharding.configDB`,
//! `net.*`, `systemLog.*` and `processManagement.pidFilePath`, checked before anything starts.
//!
//! As mongos does, the config servers must be named as a replica set (`cfgRS/h1:p1,h2:p2`), an unknown YAML
//! key is refused ("Unrecognized option: ..."), and so are mongod-only keys such as `storage.dbPath`.

use std::net::SocketAddr;
use std::path::PathBuf;

use bson::{Document, doc};
use serde_norway::{Mapping, Value};

use super::rs_client::SeedList;
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
        let root: Value = serde_norway::from_str(text)
            .map_err(|e| Error::bad_value(format!("config file is not valid YAML: {e}")))?;
        let mut leaves = Vec::new();
        match &root {
            Value::Null => {}
            Value::Mapping(map) => flatten("", map, &mut leaves)?,
            _ => {
                return Err(Error::bad_value(
                    "config file must be a YAML mapping of mongos' options",
                ));
            }
        }
        let mut options = RouterOptions::default();
        let mut destination = None;
        let mut bind_ip_all = false;
        for (key, value) in leaves {
            let text = || -> Result<String> {
                match value {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(Error::bad_value(format!("{key} must be a non-empty string"))),
                }
            };
            let flag = || {
                value
                    .as_bool()
                    .ok_or_else(|| Error::bad_value(format!("{key} must be true or false")))
            };
            match key.as_str() {
                "net.port" => {
                    let port = value.as_u64().filter(|p| *p > 0 && *p <= u64::from(u16::MAX));
                    options.port =
                        port.ok_or_else(|| Error::bad_value("net.port must be a port number (1-65535)"))? as u16;
                }
                "net.bindIp" => options.bind_ip = split_bind_ip(&text()?),
                "net.bindIpAll" => bind_ip_all = flag()?,
                "sharding.configDB" => options.config_db = Some(parse_config_db(&text()?)?),
                "systemLog.destination" => destination = Some(text()?),
                "systemLog.path" => options.logpath = Some(PathBuf::from(text()?)),
                "systemLog.logAppend" => options.log_append = flag()?,
                "systemLog.verbosity" => {
                    options.verbosity = value
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| Error::bad_value("systemLog.verbosity must be a non-negative integer"))?;
                }
                "systemLog.quiet" => options.quiet = flag()?,
                "processManagement.pidFilePath" => options.pid_file = Some(PathBuf::from(text()?)),
                _ => return Err(Error::bad_value(format!("Unrecognized option: {key}"))),
            }
        }
        if bind_ip_all {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        match (destination.as_deref(), &options.logpath) {
            (Some("file"), None) => {
                return Err(Error::bad_value(
                    "systemLog.path is required if systemLog.destination is to a file",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::bad_value(
                    "Can only use systemLog.path if systemLog.destination is to a file",
                ));
            }
            (Some(other), _) if other != "file" => {
                return Err(Error::bad_value(format!(
                    "Bad value for systemLog.destination: {other}.  Supported targets are: (file)"
                )));
            }
            _ => {}
        }
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

/// The file's options as dotted keys (every mapping is a section: mongos' keys are all scalars).
fn flatten<'a>(prefix: &str, map: &'a Mapping, out: &mut Vec<(String, &'a Value)>) -> Result<()> {
    for (name, value) in map {
        let name = match name {
            Value::String(s) => s.clone(),
            _ => return Err(Error::bad_value("config file keys must be strings")),
        };
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Mapping(inner) if !MONGOS_YAML_KEYS.contains(&key.as_str()) => flatten(&key, inner, out)?,
            Value::Null if !MONGOS_YAML_KEYS.contains(&key.as_str()) => {}
            _ => out.push((key, value)),
        }
    }
    Ok(())
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
