//! A member's start-up options: mongod's command-line flags and YAML configuration keys.
//!
//! `faultline node --config FILE` reads mongod's YAML keys (`net.port`, `net.bindIp`, `storage.dbPath`,
//! `replication.replSetName`, `systemLog.path`, `setParameter`), so a mongod tutorial's file works as it is;
//! command-line flags override the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bson::{Bson, Document, doc};

use crate::error::{Error, Result};

/// Everything a member needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeOptions {
    pub port: u16,
    /// Addresses to listen on (mongod's `bindIp`, comma-separated on the command line).
    pub bind_ip: Vec<String>,
    pub dbpath: PathBuf,
    /// The replica-set name; a member is always a replica-set member (default `rs0`).
    pub repl_set: String,
    pub logpath: Option<PathBuf>,
    /// `--setParameter name=value` pairs (including `failpoint.NAME=...`).
    pub set_parameters: BTreeMap<String, String>,
    /// The peer route table: member host (as in the replica-set config) → address to dial instead.
    pub peer_routes: BTreeMap<String, String>,
    /// The command line as given, for `getCmdLineOpts`.
    pub argv: Vec<String>,
    /// `--oplogSize` / `replication.oplogSizeMB`: the oplog's maximum size in MB when it is created (default:
    /// 5 % of the dbpath's free space, within [990 MB, 50 GB]).
    pub oplog_size_mb: Option<u64>,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            port: 27017,
            bind_ip: vec!["127.0.0.1".into()],
            dbpath: PathBuf::from("data/db"),
            repl_set: "rs0".into(),
            logpath: None,
            set_parameters: BTreeMap::new(),
            peer_routes: BTreeMap::new(),
            argv: Vec::new(),
            oplog_size_mb: None,
        }
    }
}

impl NodeOptions {
    /// Reads mongod's YAML configuration format; unknown keys are ignored, wrongly typed known keys are errors.
    pub fn from_yaml(text: &str) -> Result<NodeOptions> {
        let root: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| Error::bad_value(format!("config file is not valid YAML: {e}")))?;
        let mut options = NodeOptions::default();
        if let Some(port) = lookup(&root, "net.port") {
            let port = port.as_u64().filter(|p| *p > 0 && *p <= u64::from(u16::MAX));
            options.port = port.ok_or_else(|| Error::bad_value("net.port must be a port number (1-65535)"))? as u16;
        }
        if let Some(bind) = lookup(&root, "net.bindIp") {
            let bind = bind
                .as_str()
                .ok_or_else(|| Error::bad_value("net.bindIp must be a string"))?;
            options.bind_ip = split_bind_ip(bind);
        }
        if lookup(&root, "net.bindIpAll").and_then(|v| v.as_bool()) == Some(true) {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        if let Some(path) = lookup(&root, "storage.dbPath") {
            let path = path
                .as_str()
                .ok_or_else(|| Error::bad_value("storage.dbPath must be a string"))?;
            options.dbpath = PathBuf::from(path);
        }
        if let Some(name) = lookup(&root, "replication.replSetName") {
            let name = name
                .as_str()
                .ok_or_else(|| Error::bad_value("replication.replSetName must be a string"))?;
            options.repl_set = name.to_string();
        }
        if let Some(path) = lookup(&root, "systemLog.path") {
            let path = path
                .as_str()
                .ok_or_else(|| Error::bad_value("systemLog.path must be a string"))?;
            options.logpath = Some(PathBuf::from(path));
        }
        if let Some(size) = lookup(&root, "replication.oplogSizeMB") {
            options.oplog_size_mb = Some(parse_oplog_size(size.as_i64())?);
        }
        if let Some(serde_norway::Value::Mapping(params)) = lookup(&root, "setParameter") {
            for (key, value) in params {
                let key = key
                    .as_str()
                    .ok_or_else(|| Error::bad_value("setParameter keys must be strings"))?;
                options.set_parameters.insert(key.to_string(), yaml_scalar(value));
            }
        }
        Ok(options)
    }

    /// The address a one-member `rs.initiate()` puts in the config: what clients dial.
    pub fn self_host(&self) -> String {
        let ip = self.bind_ip.first().map(String::as_str).unwrap_or("127.0.0.1");
        let host = match ip {
            "0.0.0.0" | "::" | "localhost" => "127.0.0.1",
            other => other,
        };
        format!("{host}:{}", self.port)
    }

    /// The `parsed` section of `getCmdLineOpts`, in mongod's shape.
    pub fn parsed_document(&self) -> Document {
        let mut replication = doc! {"replSetName": &self.repl_set};
        if let Some(size) = self.oplog_size_mb {
            replication.insert("oplogSizeMB", size as i64);
        }
        let mut parsed = doc! {
            "net": {"port": i32::from(self.port), "bindIp": self.bind_ip.join(",")},
            "replication": replication,
            "storage": {"dbPath": self.dbpath.display().to_string()},
        };
        if let Some(path) = &self.logpath {
            parsed.insert(
                "systemLog",
                doc! {"destination": "file", "path": path.display().to_string()},
            );
        }
        if !self.set_parameters.is_empty() {
            let params: Document = self
                .set_parameters
                .iter()
                .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
                .collect();
            parsed.insert("setParameter", params);
        }
        parsed
    }
}

/// Checks `--oplogSize` / `replication.oplogSizeMB` as mongod does: an integer above 0 (MB; mongod has no
/// other minimum for it, the 990 MB floor is the default's and `replSetResizeOplog`'s).
pub fn parse_oplog_size(value: Option<i64>) -> Result<u64> {
    match value {
        Some(mb) if mb > 0 => Ok(mb as u64),
        Some(mb) => Err(Error::bad_value(format!(
            "bad --oplogSize, arg must be greater than 0,found: {mb}"
        ))),
        None => Err(Error::bad_value("replication.oplogSizeMB must be an integer")),
    }
}

/// Splits mongod's comma-separated `bindIp`.
pub fn split_bind_ip(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn lookup<'a>(root: &'a serde_norway::Value, dotted: &str) -> Option<&'a serde_norway::Value> {
    // mongod accepts both nested sections and dotted keys at the top level.
    if let Some(v) = root.get(dotted) {
        return Some(v);
    }
    let mut node = root;
    for part in dotted.split('.') {
        node = node.get(part)?;
    }
    Some(node)
}

fn yaml_scalar(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Number(n) => n.to_string(),
        other => serde_norway::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mongod_tutorial_config() {
        let yaml = "storage:\n  dbPath: /srv/mongodb/rs0-0\nnet:\n  bindIp: localhost,127.0.0.1\n  port: 27018\n\
                    replication:\n  replSetName: rs0\nsystemLog:\n  destination: file\n  path: /var/log/m.log\n";
        let options = NodeOptions::from_yaml(yaml).expect("valid config");
        assert_eq!(options.port, 27018);
        assert_eq!(options.bind_ip, vec!["localhost", "127.0.0.1"]);
        assert_eq!(options.dbpath, PathBuf::from("/srv/mongodb/rs0-0"));
        assert_eq!(options.repl_set, "rs0");
        assert_eq!(options.logpath, Some(PathBuf::from("/var/log/m.log")));
        assert_eq!(options.self_host(), "127.0.0.1:27018");
    }

    #[test]
    fn oplog_size_is_any_positive_number_of_megabytes() {
        let options = NodeOptions::from_yaml("replication:\n  replSetName: rs0\n  oplogSizeMB: 5\n").expect("valid");
        assert_eq!(options.oplog_size_mb, Some(5));
        assert_eq!(NodeOptions::default().oplog_size_mb, None);
        let zero = NodeOptions::from_yaml("replication:\n  oplogSizeMB: 0\n").expect_err("0 is refused");
        assert!(
            zero.message.contains("bad --oplogSize, arg must be greater than 0"),
            "{}",
            zero.message
        );
        assert!(NodeOptions::from_yaml("replication:\n  oplogSizeMB: big\n").is_err());
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert!(NodeOptions::from_yaml("net:\n  port: banana\n").is_err());
        assert!(NodeOptions::from_yaml("net:\n  port: 70000\n").is_err());
        assert!(NodeOptions::from_yaml("net: [unclosed").is_err());
        assert!(NodeOptions::from_yaml("storage:\n  dbPath: 5\n").is_err());
    }
}
