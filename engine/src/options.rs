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
        let mut parsed = doc! {
            "net": {"port": i32::from(self.port), "bindIp": self.bind_ip.join(",")},
            "replication": {"replSetName": &self.repl_set},
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

/// The server parameters that bound queries and cursors, by mongod's names (`--setParameter NAME=VALUE` or the
/// config file's `setParameter` section). The defaults are mongod's, except `allowDiskUseByDefault`: mongod 6.0+
/// spills by default, this member refuses (292) unless the command says `allowDiskUse: true`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameters {
    /// `internalQueryMaxBlockingSortMemoryUsageBytes` (100 MiB).
    pub max_blocking_sort_bytes: usize,
    /// `internalDocumentSourceGroupMaxMemoryBytes` (100 MiB).
    pub max_group_bytes: usize,
    /// `internalQueryMaxPushBytes` (100 MiB): one `$push` array.
    pub max_push_bytes: usize,
    /// `internalQueryMaxAddToSetBytes` (100 MiB): one `$addToSet` array.
    pub max_add_to_set_bytes: usize,
    /// `allowDiskUseByDefault` (false here): what a command without `allowDiskUse` gets.
    pub allow_disk_use_by_default: bool,
    /// `cursorTimeoutMillis` (10 minutes): idle cursors are closed after this long.
    pub cursor_timeout_millis: u64,
    /// `clientCursorMonitorFrequencySecs` (4): how often idle cursors are looked for.
    pub client_cursor_monitor_frequency_secs: u64,
}

/// The names [`QueryParameters`] reads.
pub const QUERY_PARAMETER_NAMES: &[&str] = &[
    "internalQueryMaxBlockingSortMemoryUsageBytes",
    "internalDocumentSourceGroupMaxMemoryBytes",
    "internalQueryMaxPushBytes",
    "internalQueryMaxAddToSetBytes",
    "allowDiskUseByDefault",
    "cursorTimeoutMillis",
    "clientCursorMonitorFrequencySecs",
];

impl Default for QueryParameters {
    fn default() -> QueryParameters {
        const HUNDRED_MIB: usize = 100 * 1024 * 1024;
        QueryParameters {
            max_blocking_sort_bytes: HUNDRED_MIB,
            max_group_bytes: HUNDRED_MIB,
            max_push_bytes: HUNDRED_MIB,
            max_add_to_set_bytes: HUNDRED_MIB,
            allow_disk_use_by_default: false,
            cursor_timeout_millis: 600_000,
            client_cursor_monitor_frequency_secs: 4,
        }
    }
}

impl QueryParameters {
    /// Reads the parameters from `--setParameter` values; a value that does not parse is an error.
    pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Result<QueryParameters> {
        let mut out = QueryParameters::default();
        for (name, value) in parameters {
            let number = || {
                value.trim().parse::<u64>().map_err(|_| {
                    Error::bad_value(format!(
                        "Bad value for parameter \"{name}\": {value:?} is not a non-negative integer"
                    ))
                })
            };
            let bytes = || number().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            match name.as_str() {
                "internalQueryMaxBlockingSortMemoryUsageBytes" => out.max_blocking_sort_bytes = bytes()?,
                "internalDocumentSourceGroupMaxMemoryBytes" => out.max_group_bytes = bytes()?,
                "internalQueryMaxPushBytes" => out.max_push_bytes = bytes()?,
                "internalQueryMaxAddToSetBytes" => out.max_add_to_set_bytes = bytes()?,
                "cursorTimeoutMillis" => out.cursor_timeout_millis = number()?,
                "clientCursorMonitorFrequencySecs" => out.client_cursor_monitor_frequency_secs = number()?.max(1),
                "allowDiskUseByDefault" => {
                    out.allow_disk_use_by_default = match value.trim() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(Error::bad_value(format!(
                                "Bad value for parameter \"{name}\": {value:?} is not a boolean"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
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
    fn query_parameters_by_mongod_names() {
        let mut params = BTreeMap::new();
        assert_eq!(
            QueryParameters::from_parameters(&params).ok(),
            Some(QueryParameters::default())
        );
        params.insert(
            "internalQueryMaxBlockingSortMemoryUsageBytes".to_string(),
            "1024".to_string(),
        );
        params.insert("cursorTimeoutMillis".to_string(), "250".to_string());
        params.insert("allowDiskUseByDefault".to_string(), "true".to_string());
        let parsed = QueryParameters::from_parameters(&params).expect("valid");
        assert_eq!(parsed.max_blocking_sort_bytes, 1024);
        assert_eq!(parsed.cursor_timeout_millis, 250);
        assert!(parsed.allow_disk_use_by_default);
        params.insert(
            "internalDocumentSourceGroupMaxMemoryBytes".to_string(),
            "lots".to_string(),
        );
        assert!(QueryParameters::from_parameters(&params).is_err());
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert!(NodeOptions::from_yaml("net:\n  port: banana\n").is_err());
        assert!(NodeOptions::from_yaml("net:\n  port: 70000\n").is_err());
        assert!(NodeOptions::from_yaml("net: [unclosed").is_err());
        assert!(NodeOptions::from_yaml("storage:\n  dbPath: 5\n").is_err());
    }
}
