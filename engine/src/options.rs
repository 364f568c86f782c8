//! A member's start-up options: mongod's command-line flags and YAML configuration keys, checked before
//! anything starts.
//!
//! `faultline node --config FILE` reads mongod's YAML keys ([`YAML_KEYS`]: `net.port`, `net.bindIp`,
//! `storage.dbPath`, `replication.replSetName`, `systemLog.path`, `processManagement.fork`, `setParameter`,
//! ...), so a mongod tutorial's file works as it is; command-line flags override the file. As mongod does,
//! an unknown key is refused ("Unrecognized option: net.foo"), and so is an unknown `--setParameter` name
//! ("Unknown --setParameter 'foo'"). Options Faultline cannot honour that would leave a member less secure
//! than its file asks (`security.authorization: enabled`, `security.keyFile`, TLS) are refused too, naming
//! the option, rather than silently ignored. [`NodeOptions::validate`] checks what only the merged options
//! can tell (`--fork` needs a log file, bind addresses, parameters).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bson::{Bson, Document, doc};
use serde_norway::Value;

use crate::config_file::{self, boolean, non_empty, string};
use crate::error::{Error, Result};
use crate::failpoint::FailPoints;

/// The YAML keys `faultline node` accepts (dotted, as mongod names them); anything else is refused.
/// `security.authorization` only as `disabled`, `net.tls.mode` only as `disabled`, `storage.journal.enabled`
/// only as `true`, `systemLog.destination` only as `file`.
pub const YAML_KEYS: &[&str] = &[
    "net.port",
    "net.bindIp",
    "net.bindIpAll",
    "net.tls.mode",
    "storage.dbPath",
    "storage.journal.enabled",
    "replication.replSetName",
    "replication.oplogSizeMB",
    "systemLog.destination",
    "systemLog.path",
    "systemLog.logAppend",
    "systemLog.verbosity",
    "systemLog.quiet",
    "processManagement.fork",
    "processManagement.pidFilePath",
    "security.authorization",
    "sharding.clusterRole",
    "setParameter",
];

/// A member's part in a sharded cluster (`--shardsvr`, `--configsvr`, `sharding.clusterRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterRole {
    /// A plain replica-set member.
    #[default]
    None,
    /// A shard: holds chunks of sharded collections (default port 27018).
    ShardServer,
    /// A config server: holds the cluster's metadata (default port 27019; must be a replica set).
    ConfigServer,
}

impl ClusterRole {
    /// Reads `sharding.clusterRole`'s value.
    pub fn parse(value: &str) -> Result<ClusterRole> {
        match value {
            "shardsvr" => Ok(ClusterRole::ShardServer),
            "configsvr" => Ok(ClusterRole::ConfigServer),
            other => Err(Error::bad_value(format!(
                "Bad value for sharding.clusterRole: {other}. Supported values are: configsvr, shardsvr"
            ))),
        }
    }

    /// The role's name as mongod writes it, if any.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ClusterRole::None => None,
            ClusterRole::ShardServer => Some("shardsvr"),
            ClusterRole::ConfigServer => Some("configsvr"),
        }
    }

    /// mongod's default port for the role.
    pub fn default_port(self) -> u16 {
        match self {
            ClusterRole::None => 27017,
            ClusterRole::ShardServer => 27018,
            ClusterRole::ConfigServer => 27019,
        }
    }
}

/// mongod's default `cursorTimeoutMillis`: idle cursors are closed after ten minutes.
pub const DEFAULT_CURSOR_TIMEOUT_MILLIS: u64 = 600_000;

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
    /// `systemLog.logAppend` / `--logappend`: append to an existing log file. Otherwise (mongod's default) an
    /// existing log file is renamed `<path>.<timestamp>` first.
    pub log_append: bool,
    /// `systemLog.verbosity`: with `RUST_LOG` unset, 0 logs at info, 1 at debug, 2 and more at trace.
    pub verbosity: u32,
    /// `systemLog.quiet`: accepted and reported; it changes nothing (Faultline's info log is already terse).
    pub quiet: bool,
    /// `processManagement.fork` / `--fork`: run as a daemon; needs a log file.
    pub fork: bool,
    /// `processManagement.pidFilePath` / `--pidfilepath`: the member writes its pid here at start.
    pub pid_file: Option<PathBuf>,
    /// `--setParameter name=value` pairs (including `failpoint.NAME=...`); see [`check_set_parameters`].
    pub set_parameters: BTreeMap<String, String>,
    /// The peer route table: member host (as in the replica-set config) → address to dial instead.
    pub peer_routes: BTreeMap<String, String>,
    /// The command line as given, for `getCmdLineOpts`.
    pub argv: Vec<String>,
    /// `--oplogSize` / `replication.oplogSizeMB`: the oplog's maximum size in MB when it is created (default:
    /// 5 % of the dbpath's free space, within [990 MB, 50 GB]).
    pub oplog_size_mb: Option<u64>,
    /// `--shardsvr` / `--configsvr` / `sharding.clusterRole`.
    pub cluster_role: ClusterRole,
    /// Whether the port and the replica-set name were given (file or flag) rather than defaulted: a role
    /// changes the default port, and a config server or shard needs a named replica set.
    pub port_given: bool,
    pub repl_set_given: bool,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            port: 27017,
            bind_ip: vec!["127.0.0.1".into()],
            dbpath: PathBuf::from("data/db"),
            repl_set: "rs0".into(),
            logpath: None,
            log_append: false,
            verbosity: 0,
            quiet: false,
            fork: false,
            pid_file: None,
            oplog_size_mb: None,
            cluster_role: ClusterRole::None,
            port_given: false,
            repl_set_given: false,
            set_parameters: BTreeMap::new(),
            peer_routes: BTreeMap::new(),
            argv: Vec::new(),
        }
    }
}

impl NodeOptions {
    /// Reads mongod's YAML configuration format. Unknown keys, wrongly typed values and options Faultline
    /// cannot honour are errors naming the key; nested sections and dotted keys (`net.port: 1`) both work.
    pub fn from_yaml(text: &str) -> Result<NodeOptions> {
        let known: Vec<&str> = YAML_KEYS.iter().copied().chain(["net.ssl.mode"]).collect();
        let leaves = config_file::leaves(text, &known, "mongod")?;
        let mut options = NodeOptions::default();
        let mut destination = None;
        let mut bind_ip_all = false;
        for (key, value) in &leaves {
            let key = key.as_str();
            match key {
                "net.port" => {
                    options.port = config_file::port(value)?;
                    options.port_given = true;
                }
                "net.bindIp" => {
                    options.bind_ip = split_bind_ip(string(key, value)?);
                    if options.bind_ip.is_empty() {
                        return Err(Error::bad_value("net.bindIp needs at least one address"));
                    }
                }
                "net.bindIpAll" => bind_ip_all = boolean(key, value)?,
                "net.tls.mode" | "net.ssl.mode" => {
                    let mode = string(key, value)?;
                    if mode != "disabled" {
                        return Err(Error::bad_value(format!(
                            "{key}: {mode} is not supported: faultline node has no TLS (only `disabled` is \
                             accepted); refusing to start rather than serve without it"
                        )));
                    }
                }
                "storage.dbPath" => options.dbpath = PathBuf::from(non_empty(key, value)?),
                "storage.journal.enabled" => {
                    if !boolean(key, value)? {
                        return Err(Error::bad_value(
                            "storage.journal.enabled: false is not supported: the journal is always on \
                             (mongod 6.1 and later refuse it too)",
                        ));
                    }
                }
                "replication.replSetName" => {
                    let name = non_empty(key, value)?;
                    if name.contains('/') {
                        return Err(Error::bad_value(format!(
                            "replication.replSetName: invalid replica set name '{name}'"
                        )));
                    }
                    options.repl_set = name.to_string();
                    options.repl_set_given = true;
                }
                "sharding.clusterRole" => options.cluster_role = ClusterRole::parse(string(key, value)?)?,
                "replication.oplogSizeMB" => {
                    let size = parse_oplog_size(value.as_i64())
                        .map_err(|e| Error::bad_value(format!("replication.oplogSizeMB: {}", e.message)))?;
                    options.oplog_size_mb = Some(size);
                }
                "systemLog.destination" => destination = Some(string(key, value)?.to_string()),
                "systemLog.path" => options.logpath = Some(PathBuf::from(non_empty(key, value)?)),
                "systemLog.logAppend" => options.log_append = boolean(key, value)?,
                "systemLog.verbosity" => options.verbosity = config_file::verbosity(value)?,
                "systemLog.quiet" => options.quiet = boolean(key, value)?,
                "processManagement.fork" => options.fork = boolean(key, value)?,
                "processManagement.pidFilePath" => {
                    options.pid_file = Some(PathBuf::from(non_empty(key, value)?));
                }
                "setParameter" => {
                    let Value::Mapping(params) = value else {
                        return Err(Error::bad_value("setParameter must be a mapping of NAME: VALUE"));
                    };
                    for (name, value) in params {
                        let name = name
                            .as_str()
                            .ok_or_else(|| Error::bad_value("setParameter keys must be strings"))?;
                        options.set_parameters.insert(name.to_string(), yaml_scalar(value));
                    }
                }
                "security.authorization" => match string(key, value)? {
                    "disabled" => {}
                    "enabled" => {
                        return Err(Error::bad_value(
                            "security.authorization: enabled is not supported: faultline node has no \
                             authentication; refusing to start rather than run without it",
                        ));
                    }
                    other => {
                        return Err(Error::bad_value(format!(
                            "Bad value for security.authorization: {other} (enabled|disabled)"
                        )));
                    }
                },
                _ if key.starts_with("security.") => {
                    return Err(Error::bad_value(format!(
                        "{key} is not supported: faultline node has no authentication or encryption; refusing \
                         to start rather than run without it"
                    )));
                }
                _ if key.starts_with("net.tls.") || key.starts_with("net.ssl.") => {
                    return Err(Error::bad_value(format!(
                        "{key} is not supported: faultline node has no TLS; refusing to start rather than \
                         serve without it"
                    )));
                }
                _ => return Err(Error::bad_value(format!("Unrecognized option: {key}"))),
            }
        }
        if bind_ip_all {
            options.bind_ip = vec!["0.0.0.0".into()];
        }
        config_file::check_log_destination(destination.as_deref(), options.logpath.is_some())?;
        check_set_parameters(&options.set_parameters)?;
        options.apply_role_default_port();
        Ok(options)
    }

    /// A shard or config server listens on its role's default port unless a port was given.
    pub fn apply_role_default_port(&mut self) {
        if !self.port_given {
            self.port = self.cluster_role.default_port();
        }
    }

    /// Checks the options as a whole (after the command line has been applied to the file): the bind
    /// addresses, the `--setParameter` names and values, and that `--fork` has a log file to write to.
    pub fn validate(&self) -> Result<()> {
        self.bind_addrs()?;
        check_set_parameters(&self.set_parameters)?;
        if self.fork && self.logpath.is_none() {
            return Err(Error::bad_value("--fork has to be used with --logpath or --syslog"));
        }
        match self.cluster_role {
            ClusterRole::ConfigServer if !self.repl_set_given => Err(Error::bad_value(
                "Cannot start a configsvr as a standalone server. Please use the option --replSet to start the \
                 node as a replica set.",
            )),
            ClusterRole::ShardServer if !self.repl_set_given => Err(Error::bad_value(
                "Cannot start a shardsvr as a standalone server. Please use the option --replSet to start the \
                 node as a replica set.",
            )),
            _ => Ok(()),
        }
    }

    /// The socket addresses to listen on: each distinct address once (`localhost,127.0.0.1` is one).
    pub fn bind_addrs(&self) -> Result<Vec<SocketAddr>> {
        if self.bind_ip.is_empty() {
            return Err(Error::bad_value("bindIp needs at least one address"));
        }
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for name in &self.bind_ip {
            let ip = if name.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
                bare.parse::<IpAddr>()
                    .map_err(|_| Error::bad_value(format!("bindIp: '{name}' is not an IP address (nor localhost)")))?
            };
            let addr = SocketAddr::new(ip, self.port);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(addrs)
    }

    /// `enableTestCommands` (default on: Faultline is a test database). Off, `configureFailPoint` and
    /// `listFailPoints` do not exist and `failpoint.*` parameters are refused, as in mongod.
    pub fn enable_test_commands(&self) -> bool {
        self.set_parameters
            .get("enableTestCommands")
            .and_then(|v| parse_bool(v))
            .unwrap_or(true)
    }

    /// `cursorTimeoutMillis`: how long a cursor may stay idle before it is closed.
    pub fn cursor_timeout(&self) -> Duration {
        let millis = self
            .set_parameters
            .get("cursorTimeoutMillis")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_CURSOR_TIMEOUT_MILLIS);
        Duration::from_millis(millis)
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
        if let Some(mb) = self.oplog_size_mb {
            replication.insert(
                "oplogSizeMB",
                i32::try_from(mb).map(Bson::Int32).unwrap_or(Bson::Int64(mb as i64)),
            );
        }
        let mut parsed = doc! {
            "net": {"port": i32::from(self.port), "bindIp": self.bind_ip.join(",")},
            "replication": replication,
            "storage": {"dbPath": self.dbpath.display().to_string()},
        };
        if self.fork || self.pid_file.is_some() {
            let mut management = Document::new();
            if self.fork {
                management.insert("fork", true);
            }
            if let Some(path) = &self.pid_file {
                management.insert("pidFilePath", path.display().to_string());
            }
            parsed.insert("processManagement", management);
        }
        let mut system_log = Document::new();
        if let Some(path) = &self.logpath {
            system_log.insert("destination", "file");
            system_log.insert("path", path.display().to_string());
            if self.log_append {
                system_log.insert("logAppend", true);
            }
        }
        if self.verbosity > 0 {
            system_log.insert("verbosity", i64::from(self.verbosity));
        }
        if self.quiet {
            system_log.insert("quiet", true);
        }
        if !system_log.is_empty() {
            parsed.insert("systemLog", system_log);
        }
        if let Some(role) = self.cluster_role.name() {
            parsed.insert("sharding", doc! {"clusterRole": role});
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

/// Checks `--setParameter` names and values as mongod does at start-up: unknown names are refused
/// ("Unknown --setParameter 'foo'"), and so are bad values and `failpoint.*` with `enableTestCommands` off.
pub fn check_set_parameters(params: &BTreeMap<String, String>) -> Result<()> {
    let bad_value = |name: &str, why: &str| Error::bad_value(format!("Bad value for parameter \"{name}\": {why}"));
    let test_commands = match params.get("enableTestCommands") {
        Some(value) => parse_bool(value).ok_or_else(|| {
            bad_value(
                "enableTestCommands",
                &format!("'{value}' is not one of 1, 0, true, false"),
            )
        })?,
        None => true,
    };
    for (name, value) in params {
        match name.as_str() {
            "enableTestCommands" => {}
            "cursorTimeoutMillis" => {
                if !value.trim().parse::<u64>().is_ok_and(|ms| ms > 0) {
                    return Err(bad_value(
                        name,
                        &format!("'{value}' is not a positive number of milliseconds"),
                    ));
                }
            }
            other if QUERY_PARAMETER_NAMES.contains(&other) => {} // checked by QueryParameters::from_parameters
            _ => match name.strip_prefix("failpoint.") {
                Some(point) if FailPoints::is_known(point) => {
                    if !test_commands {
                        return Err(Error::bad_value(format!(
                            "--setParameter '{name}' only available when used with 'enableTestCommands'"
                        )));
                    }
                    FailPoints::check_parameter(point, value).map_err(|e| bad_value(name, &e.message))?;
                }
                _ => return Err(Error::bad_value(format!("Unknown --setParameter '{name}'"))),
            },
        }
    }
    Ok(())
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

/// mongod's spellings of a boolean parameter.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// A `setParameter` value as the string `--setParameter` would carry; a mapping (a fail point's
/// `{mode: ..., data: ...}`) becomes JSON.
fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error message `from_yaml` gives for `yaml` (the test fails if it is accepted).
    fn refused(yaml: &str) -> String {
        match NodeOptions::from_yaml(yaml) {
            Ok(options) => panic!("accepted {yaml:?}: {options:?}"),
            Err(err) => err.message,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const TUTORIAL: &str = "\
systemLog:
  destination: file
  path: /var/log/mongodb/mongod.log
  logAppend: true
  verbosity: 1
  quiet: true
storage:
  dbPath: /srv/mongodb/rs0-0
  journal:
    enabled: true
processManagement:
  fork: true
  pidFilePath: /var/run/mongodb/mongod.pid
net:
  port: 27018
  bindIp: localhost,127.0.0.1
  tls:
    mode: disabled
security:
  authorization: disabled
replication:
  replSetName: rs0
  oplogSizeMB: 990
setParameter:
  enableTestCommands: 1
  cursorTimeoutMillis: 60000
  failpoint.skipRollback: alwaysOn
";

    #[test]
    fn reads_a_mongod_tutorial_config() {
        let options = NodeOptions::from_yaml(TUTORIAL).expect("valid config");
        assert_eq!(options.port, 27018);
        assert_eq!(options.bind_ip, vec!["localhost", "127.0.0.1"]);
        assert_eq!(options.dbpath, PathBuf::from("/srv/mongodb/rs0-0"));
        assert_eq!(options.repl_set, "rs0");
        assert_eq!(options.oplog_size_mb, Some(990));
        assert_eq!(options.logpath, Some(PathBuf::from("/var/log/mongodb/mongod.log")));
        assert!(options.log_append);
        assert_eq!(options.verbosity, 1);
        assert!(options.quiet);
        assert!(options.fork);
        assert_eq!(options.pid_file, Some(PathBuf::from("/var/run/mongodb/mongod.pid")));
        assert_eq!(
            options.set_parameters,
            params(&[
                ("enableTestCommands", "1"),
                ("cursorTimeoutMillis", "60000"),
                ("failpoint.skipRollback", "alwaysOn"),
            ])
        );
        assert!(options.enable_test_commands());
        assert_eq!(options.cursor_timeout(), Duration::from_secs(60));
        assert_eq!(options.self_host(), "127.0.0.1:27018");
        options.validate().expect("a valid whole");

        let parsed = options.parsed_document();
        assert_eq!(
            parsed.get_document("replication").unwrap().get_i32("oplogSizeMB").ok(),
            Some(990)
        );
        let management = parsed.get_document("processManagement").unwrap();
        assert_eq!(management.get_bool("fork").ok(), Some(true));
        assert_eq!(
            management.get_str("pidFilePath").ok(),
            Some("/var/run/mongodb/mongod.pid")
        );
        let system_log = parsed.get_document("systemLog").unwrap();
        assert_eq!(system_log.get_str("destination").ok(), Some("file"));
        assert_eq!(system_log.get_bool("logAppend").ok(), Some(true));
        assert_eq!(
            parsed
                .get_document("setParameter")
                .unwrap()
                .get_str("cursorTimeoutMillis")
                .ok(),
            Some("60000")
        );
    }

    #[test]
    fn defaults_when_keys_are_absent() {
        let options = NodeOptions::from_yaml("net:\n  port: 27019\n").expect("valid");
        assert_eq!(options.oplog_size_mb, None);
        assert!(!options.log_append, "mongod's default: the old log is moved aside");
        assert!(!options.fork);
        assert_eq!(options.pid_file, None);
        assert!(options.enable_test_commands(), "Faultline is a test database");
        assert_eq!(
            options.cursor_timeout(),
            Duration::from_millis(DEFAULT_CURSOR_TIMEOUT_MILLIS)
        );
        assert!(options.parsed_document().get("processManagement").is_none());
        assert_eq!(
            NodeOptions::from_yaml("").expect("an empty file"),
            NodeOptions::default()
        );
        assert_eq!(
            NodeOptions::from_yaml("net:\nstorage:\n").expect("empty sections"),
            NodeOptions::default()
        );
    }

    #[test]
    fn dotted_keys_and_bind_ip_all() {
        let options = NodeOptions::from_yaml("net.port: 27020\nnet.bindIpAll: true\nstorage.journal.enabled: true\n")
            .expect("dotted keys");
        assert_eq!(options.port, 27020);
        assert_eq!(options.bind_ip, vec!["0.0.0.0"]);
        let options = NodeOptions::from_yaml("net:\n  bindIpAll: false\n  bindIp: 127.0.0.1\n").expect("valid");
        assert_eq!(options.bind_ip, vec!["127.0.0.1"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_mongods_words() {
        assert_eq!(
            refused("net:\n  port: 27017\n  foo: 1\n"),
            "Unrecognized option: net.foo"
        );
        assert_eq!(refused("net.foo: 1\n"), "Unrecognized option: net.foo");
        assert_eq!(
            refused("sharding:\n  configDB: cfg/127.0.0.1:27019\n"),
            "Unrecognized option: sharding.configDB",
            "configDB is mongos' option"
        );
        assert_eq!(
            refused("storage:\n  engine: wiredTiger\n"),
            "Unrecognized option: storage.engine"
        );
        assert_eq!(refused("nosuchsection: {}\n"), "Unrecognized option: nosuchsection");
        assert_eq!(refused("foo:\n"), "Unrecognized option: foo");
        assert_eq!(
            refused("systemLog:\n  component:\n    accessControl:\n      verbosity: 2\n"),
            "Unrecognized option: systemLog.component.accessControl.verbosity"
        );
    }

    #[test]
    fn security_and_tls_options_that_cannot_be_honoured_are_refused() {
        let auth = refused("security:\n  authorization: enabled\n");
        assert!(
            auth.contains("security.authorization") && auth.contains("not supported"),
            "{auth}"
        );
        let key_file = refused("security:\n  keyFile: /etc/mongo.key\n");
        assert!(
            key_file.contains("security.keyFile") && key_file.contains("not supported"),
            "{key_file}"
        );
        let cluster_auth = refused("security.clusterAuthMode: x509\n");
        assert!(cluster_auth.contains("security.clusterAuthMode"), "{cluster_auth}");
        assert!(refused("security:\n  authorization: sometimes\n").contains("security.authorization"));
        for mode in ["requireTLS", "preferTLS", "allowTLS"] {
            let tls = refused(&format!("net:\n  tls:\n    mode: {mode}\n"));
            assert!(tls.contains("net.tls.mode") && tls.contains(mode), "{tls}");
        }
        let cert = refused("net:\n  tls:\n    certificateKeyFile: /etc/ssl/mongo.pem\n");
        assert!(cert.contains("net.tls.certificateKeyFile"), "{cert}");
        assert!(refused("net:\n  ssl:\n    mode: requireSSL\n").contains("net.ssl.mode"));
        NodeOptions::from_yaml("net:\n  ssl:\n    mode: disabled\n").expect("ssl disabled");
        NodeOptions::from_yaml("security:\n  authorization: disabled\n").expect("authorization disabled");
    }

    #[test]
    fn journal_can_only_be_on() {
        NodeOptions::from_yaml("storage:\n  journal:\n    enabled: true\n").expect("journal on");
        let off = refused("storage:\n  journal:\n    enabled: false\n");
        assert!(
            off.contains("storage.journal.enabled") && off.contains("not supported"),
            "{off}"
        );
        assert!(refused("storage:\n  journal:\n    enabled: maybe\n").contains("storage.journal.enabled"));
    }

    #[test]
    fn system_log_destination_rules_are_mongods() {
        assert_eq!(
            refused("systemLog:\n  destination: file\n"),
            "systemLog.path is required if systemLog.destination is to a file"
        );
        assert_eq!(
            refused("systemLog:\n  path: /tmp/m.log\n"),
            "Can only use systemLog.path if systemLog.destination is to a file"
        );
        let syslog = refused("systemLog:\n  destination: syslog\n");
        assert!(
            syslog.contains("syslog") && syslog.contains("not supported"),
            "{syslog}"
        );
        assert!(refused("systemLog:\n  destination: stdout\n").contains("Bad value for systemLog.destination: stdout"));
        assert_eq!(
            refused("systemLog:\n  verbosity: -1\n"),
            "systemLog.verbosity YAML Config cannot be negative"
        );
        assert!(refused("systemLog:\n  quiet: loud\n").contains("systemLog.quiet"));
        assert!(refused("systemLog:\n  logAppend: yes please\n").contains("systemLog.logAppend"));
        let options =
            NodeOptions::from_yaml("systemLog:\n  destination: file\n  path: /tmp/m.log\n  logAppend: false\n")
                .expect("valid");
        assert!(!options.log_append);
    }

    #[test]
    fn process_management_and_oplog_size() {
        let options = NodeOptions::from_yaml("processManagement:\n  fork: false\n  pidFilePath: m.pid\n").expect("ok");
        assert!(!options.fork);
        assert_eq!(options.pid_file, Some(PathBuf::from("m.pid")));
        assert!(refused("processManagement:\n  fork: 1\n").contains("processManagement.fork"));
        assert!(refused("processManagement:\n  pidFilePath: ''\n").contains("processManagement.pidFilePath"));
        for bad in ["0", "-5", "1.5", "lots"] {
            let message = refused(&format!("replication:\n  oplogSizeMB: {bad}\n"));
            assert!(message.contains("replication.oplogSizeMB"), "{bad}: {message}");
        }
        assert!(refused("replication:\n  replSetName: a/b\n").contains("replSetName"));
    }

    #[test]
    fn fork_needs_a_log_file() {
        let options = NodeOptions::from_yaml("processManagement:\n  fork: true\n").expect("parsed alone");
        assert_eq!(
            options.validate().expect_err("no log file").message,
            "--fork has to be used with --logpath or --syslog"
        );
        let with_log = NodeOptions {
            logpath: Some(PathBuf::from("m.log")),
            ..options
        };
        with_log.validate().expect("fork with a log file");
    }

    #[test]
    fn set_parameters_are_checked_by_name_and_value() {
        check_set_parameters(&params(&[
            ("enableTestCommands", "true"),
            ("cursorTimeoutMillis", "1"),
            ("failpoint.electByTimestamp", r#"{"mode": {"times": 1}}"#),
        ]))
        .expect("known names, good values");
        let message = |pairs: &[(&str, &str)]| check_set_parameters(&params(pairs)).expect_err("refused").message;
        assert_eq!(
            message(&[("noSuchParameter", "1")]),
            "Unknown --setParameter 'noSuchParameter'"
        );
        assert_eq!(
            message(&[("failpoint.noSuchPoint", "alwaysOn")]),
            "Unknown --setParameter 'failpoint.noSuchPoint'"
        );
        assert!(message(&[("failpoint.skipRollback", "sometimes")]).contains("failpoint.skipRollback"));
        assert!(message(&[("cursorTimeoutMillis", "0")]).contains("cursorTimeoutMillis"));
        assert!(message(&[("cursorTimeoutMillis", "-5")]).contains("cursorTimeoutMillis"));
        assert!(message(&[("enableTestCommands", "maybe")]).contains("enableTestCommands"));
        assert_eq!(
            message(&[("enableTestCommands", "0"), ("failpoint.skipRollback", "alwaysOn")]),
            "--setParameter 'failpoint.skipRollback' only available when used with 'enableTestCommands'"
        );
        assert!(refused("setParameter:\n  notAParameter: 5\n").contains("Unknown --setParameter 'notAParameter'"));
        assert!(refused("setParameter: 5\n").contains("setParameter"));
        let off = NodeOptions::from_yaml("setParameter:\n  enableTestCommands: false\n").expect("valid");
        assert!(!off.enable_test_commands());
        // A fail point's mode may be written as YAML; it reaches the engine as JSON.
        let yaml = "setParameter:\n  failpoint.skewClock:\n    mode: alwaysOn\n    data: {offsetMillis: 5}\n";
        let options = NodeOptions::from_yaml(yaml).expect("a YAML fail point spec");
        let spec = &options.set_parameters["failpoint.skewClock"];
        assert!(spec.starts_with('{') && spec.contains("offsetMillis"), "{spec}");
    }

    #[test]
    fn bind_addresses_are_distinct_and_parsed() {
        let options = NodeOptions {
            bind_ip: split_bind_ip("localhost,127.0.0.1, ::1,[::1],127.0.0.1"),
            port: 27017,
            ..NodeOptions::default()
        };
        let addrs: Vec<String> = options
            .bind_addrs()
            .expect("parsed")
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(addrs, vec!["127.0.0.1:27017", "[::1]:27017"]);
        let bad = NodeOptions {
            bind_ip: vec!["127.0.0.1".into(), "not-an-address".into()],
            ..NodeOptions::default()
        };
        let message = bad.validate().expect_err("unparseable").message;
        assert!(message.contains("'not-an-address'"), "{message}");
        assert!(!message.contains('\n'));
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
    fn cluster_roles_set_the_default_port_and_need_a_named_replica_set() {
        let shard = NodeOptions::from_yaml("sharding:\n  clusterRole: shardsvr\nreplication:\n  replSetName: rs1\n")
            .expect("a shard");
        assert_eq!(shard.cluster_role, ClusterRole::ShardServer);
        assert_eq!(shard.port, 27018);
        shard.validate().expect("a named set");
        assert_eq!(
            shard.parsed_document().get_document("sharding").ok(),
            Some(&doc! {"clusterRole": "shardsvr"})
        );
        let config =
            NodeOptions::from_yaml("sharding:\n  clusterRole: configsvr\nnet:\n  port: 30000\n").expect("parsed alone");
        assert_eq!(config.port, 30000, "a given port wins over the role's default");
        assert!(
            config
                .validate()
                .expect_err("no replica set")
                .message
                .contains("Cannot start a configsvr")
        );
        let standalone_shard = NodeOptions::from_yaml("sharding:\n  clusterRole: shardsvr\n").expect("parsed");
        assert!(standalone_shard.validate().is_err());
        assert!(refused("sharding:\n  clusterRole: router\n").contains("sharding.clusterRole"));
        assert_eq!(NodeOptions::from_yaml("").expect("empty").port, 27017);
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert!(NodeOptions::from_yaml("net:\n  port: banana\n").is_err());
        assert!(NodeOptions::from_yaml("net:\n  port: 70000\n").is_err());
        assert!(refused("net:\n  port: {a: 1}\n").contains("net.port"));
        assert!(NodeOptions::from_yaml("net: [unclosed").is_err());
        assert!(NodeOptions::from_yaml("storage:\n  dbPath: 5\n").is_err());
        assert!(refused("net:\n  bindIp: ''\n").contains("net.bindIp"));
        assert!(refused("- a list\n").contains("mapping"));
    }
}
