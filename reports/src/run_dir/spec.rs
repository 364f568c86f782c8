//! The few fields of `test.toml` the summary shows; the whole file is shown verbatim elsewhere.
//!
//! Fields are looked up by name anywhere in the document (top level first, then nested tables, breadth
//! first), so the spec's layout may change without breaking the report: `name`, `workload`, `nemesis` (or
//! `faults`), `seed`.

use std::collections::VecDeque;

/// Summary fields of a run's spec; each is `None` when the spec does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeta {
    /// The test's name.
    pub name: Option<String>,
    /// The workload.
    pub workload: Option<String>,
    /// The faults (nemesis) requested.
    pub nemesis: Option<String>,
    /// The seed that reproduces the run.
    pub seed: Option<String>,
}

impl RunMeta {
    /// Reads the summary fields from TOML text.
    pub fn from_toml(text: &str) -> Result<RunMeta, toml::de::Error> {
        let table: toml::Table = toml::from_str(text)?;
        Ok(RunMeta {
            name: find(&table, &["name", "test-name", "test_name"]),
            workload: find(&table, &["workload"]),
            nemesis: find(&table, &["nemesis", "faults"]),
            seed: find(&table, &["seed"]),
        })
    }
}

/// The first value stored under one of `keys`, breadth first, as display text.
fn find(table: &toml::Table, keys: &[&str]) -> Option<String> {
    let mut queue = VecDeque::from([table]);
    while let Some(t) = queue.pop_front() {
        for key in keys {
            if let Some(value) = t.get(*key)
                && let Some(text) = display(value)
            {
                return Some(text);
            }
        }
        queue.extend(t.values().filter_map(toml::Value::as_table));
    }
    None
}

fn display(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => Some(items.iter().filter_map(display).collect::<Vec<_>>().join(", ")),
        toml::Value::Table(_) => None,
        toml::Value::Datetime(d) => Some(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_at_any_depth() {
        let text = "name = \"register-partition\"\nseed = 42\n[workload]\nname = \"x\"\n\
                    [run]\nworkload = \"register\"\nnemesis = [\"partition\", \"kill\"]\n";
        let meta = RunMeta::from_toml(text).expect("toml");
        assert_eq!(meta.name.as_deref(), Some("register-partition"));
        assert_eq!(meta.seed.as_deref(), Some("42"));
        assert_eq!(meta.workload.as_deref(), Some("register"));
        assert_eq!(meta.nemesis.as_deref(), Some("partition, kill"));
    }

    #[test]
    fn bad_toml_is_an_error_not_a_panic() {
        assert!(RunMeta::from_toml("= = =").is_err());
    }
}
