//! The YAML configuration file that `faultline node` (mongod's keys) and `faultline mongos` (mongos' keys)
//! both read: parsing it into dotted keys with their values, typed reads of one key's value, and the
//! `systemLog` destination rules, all with mongod's words in the errors. Which keys exist and what they set is
//! each program's own (`options.rs`, `router/options.rs`).

use serde_norway::{Mapping, Value};

use crate::error::{Error, Result};

/// The file's options as dotted keys with their values, in file order. `known` lists the program's keys:
/// sections (a prefix of a known key) are walked into whether written nested or dotted; a known key is a leaf
/// whatever its value (so a wrongly typed value is reported against it); anything else is returned as a leaf
/// for the caller to refuse by name. `program` names the program in the error for a file that is not a mapping.
pub fn leaves(text: &str, known: &[&str], program: &str) -> Result<Vec<(String, Value)>> {
    let root: Value =
        serde_norway::from_str(text).map_err(|e| Error::bad_value(format!("config file is not valid YAML: {e}")))?;
    let mut out = Vec::new();
    match &root {
        Value::Null => {}
        Value::Mapping(map) => flatten("", map, known, &mut out)?,
        _ => {
            return Err(Error::bad_value(format!(
                "config file must be a YAML mapping of {program}'s options"
            )));
        }
    }
    Ok(out)
}

fn flatten(prefix: &str, map: &Mapping, known: &[&str], out: &mut Vec<(String, Value)>) -> Result<()> {
    for (name, value) in map {
        let name = match name {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(Error::bad_value("config file keys must be strings")),
        };
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        let leaf = known.contains(&key.as_str());
        let section = is_section(&key, known);
        match value {
            Value::Mapping(inner) if !leaf && (!inner.is_empty() || section) => flatten(&key, inner, known, out)?,
            Value::Null if !leaf && section => {}
            _ => out.push((key, value.clone())),
        }
    }
    Ok(())
}

/// Whether some known key lies under `key` (`net`, `storage.journal`, `security`, ...).
fn is_section(key: &str, known: &[&str]) -> bool {
    known
        .iter()
        .any(|k| k.len() > key.len() && k.starts_with(key) && k.as_bytes()[key.len()] == b'.')
}

/// A string value.
pub fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str> {
    value
        .as_str()
        .ok_or_else(|| Error::bad_value(format!("{key} must be a string")))
}

/// A string value that is not empty.
pub fn non_empty<'a>(key: &str, value: &'a Value) -> Result<&'a str> {
    let text = string(key, value)?;
    if text.is_empty() {
        return Err(Error::bad_value(format!("{key} cannot be empty")));
    }
    Ok(text)
}

/// A YAML boolean.
pub fn boolean(key: &str, value: &Value) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| Error::bad_value(format!("{key} must be true or false")))
}

/// `net.port`: 1 to 65535.
pub fn port(value: &Value) -> Result<u16> {
    value
        .as_u64()
        .filter(|p| *p > 0)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| Error::bad_value("net.port must be a port number (1-65535)"))
}

/// `systemLog.verbosity`: a non-negative integer.
pub fn verbosity(value: &Value) -> Result<u32> {
    let level = value
        .as_i64()
        .ok_or_else(|| Error::bad_value("systemLog.verbosity must be an integer"))?;
    u32::try_from(level).map_err(|_| Error::bad_value("systemLog.verbosity YAML Config cannot be negative"))
}

/// mongod's and mongos' rules for `systemLog.destination` and `systemLog.path` together; Faultline logs to a
/// file or to standard error, never to syslog.
pub fn check_log_destination(destination: Option<&str>, path_given: bool) -> Result<()> {
    match destination {
        Some("file") if !path_given => Err(Error::bad_value(
            "systemLog.path is required if systemLog.destination is to a file",
        )),
        Some("file") => Ok(()),
        Some("syslog") => Err(Error::bad_value(
            "systemLog.destination: syslog is not supported by Faultline; use `destination: file` with \
             systemLog.path, or leave systemLog out to log to standard error",
        )),
        Some(other) => Err(Error::bad_value(format!(
            "Bad value for systemLog.destination: {other}.  Supported targets are: (file)"
        ))),
        None if path_given => Err(Error::bad_value(
            "Can only use systemLog.path if systemLog.destination is to a file",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["net.port", "storage.journal.enabled", "setParameter"];

    fn keys(text: &str) -> Vec<String> {
        leaves(text, KNOWN, "mongod")
            .expect("parses")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn nested_and_dotted_keys_are_the_same_leaves() {
        assert_eq!(keys("net:\n  port: 1\n"), ["net.port"]);
        assert_eq!(keys("net.port: 1\n"), ["net.port"]);
        assert_eq!(
            keys("storage:\n  journal:\n    enabled: true\n"),
            ["storage.journal.enabled"]
        );
        // A known key is a leaf even when its value is a mapping; empty sections are nothing.
        assert_eq!(keys("setParameter:\n  a: 1\n"), ["setParameter"]);
        assert!(keys("net:\nstorage:\n  journal: {}\n").is_empty());
        // Unknown keys come back by their full name, for the caller to refuse.
        assert_eq!(keys("systemLog:\n  component:\n    x: 1\n"), ["systemLog.component.x"]);
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let err = leaves("- 1\n", KNOWN, "mongos").expect_err("a list");
        assert!(err.message.contains("mongos's options"), "{}", err.message);
        assert!(leaves("net: [", KNOWN, "mongod").is_err());
        assert!(port(&Value::from(0)).is_err());
        assert!(port(&Value::from(65_536)).is_err());
        assert_eq!(port(&Value::from(27_017)).expect("a port"), 27_017);
        assert!(
            verbosity(&Value::from(-1))
                .expect_err("negative")
                .message
                .contains("negative")
        );
        assert!(check_log_destination(Some("file"), false).is_err());
        assert!(check_log_destination(None, true).is_err());
        assert!(check_log_destination(Some("syslog"), true).is_err());
        assert!(check_log_destination(Some("file"), true).is_ok());
    }
}
