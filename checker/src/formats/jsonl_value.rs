//! Fast deserialisation of JSONL event fields: an op's value, splitting `{"key": k, "value": v}` on the fly
//! (no intermediate JSON map), and its process (a number or a name, without serde's untagged buffering).

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::history::Process;

/// An op's value as read: the key of a keyed value, and the value without it.
#[derive(Debug, Default, PartialEq)]
pub struct WireValue {
    /// The key, if the value was `{"key": k, "value": v}` (or `{"key": k}`).
    pub key: Option<Value>,
    /// The value (`v` for keyed values).
    pub value: Value,
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireValue, D::Error> {
        d.deserialize_any(WireValueVisitor)
    }
}

fn plain(value: Value) -> WireValue {
    WireValue { key: None, value }
}

struct WireValueVisitor;

impl<'de> Visitor<'de> for WireValueVisitor {
    type Value = WireValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<WireValue, E> {
        Ok(plain(Value::Null))
    }
    fn visit_none<E>(self) -> Result<WireValue, E> {
        Ok(plain(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<WireValue, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, b: bool) -> Result<WireValue, E> {
        Ok(plain(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<WireValue, E> {
        Ok(plain(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<WireValue, E> {
        Ok(plain(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<WireValue, E> {
        Ok(plain(Value::from(n)))
    }
    fn visit_str<E>(self, s: &str) -> Result<WireValue, E> {
        Ok(plain(Value::String(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<WireValue, E> {
        Ok(plain(Value::String(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(plain(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<WireValue, A::Error> {
        let (mut key, mut value, mut others) = (None, None, Map::new());
        while let Some(name) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            let item = access.next_value::<Value>()?;
            match &*name {
                "key" if key.is_none() => key = Some(item),
                "value" if value.is_none() => value = Some(item),
                _ => {
                    others.insert(name.into_owned(), item);
                }
            }
        }
        if others.is_empty() && key.is_some() {
            return Ok(WireValue {
                key,
                value: value.unwrap_or(Value::Null),
            });
        }
        others.extend(key.map(|k| ("key".to_string(), k)));
        others.extend(value.map(|v| ("value".to_string(), v)));
        Ok(plain(Value::Object(others)))
    }
}

/// Deserialises a [`Process`]: a non-negative integer is a client, a string names another actor.
pub fn process<'de, D: Deserializer<'de>>(d: D) -> Result<Process, D::Error> {
    struct ProcessVisitor;
    impl Visitor<'_> for ProcessVisitor {
        type Value = Process;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a process number or name")
        }
        fn visit_u64<E>(self, n: u64) -> Result<Process, E> {
            Ok(Process::Client(n))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Process, E> {
            u64::try_from(n)
                .map(Process::Client)
                .map_err(|_| E::custom(format!("negative process {n}")))
        }
        fn visit_str<E>(self, s: &str) -> Result<Process, E> {
            Ok(Process::Named(s.to_string()))
        }
    }
    d.deserialize_any(ProcessVisitor)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(text: &str) -> WireValue {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn keyed_maps_split_and_everything_else_stays_whole() {
        assert_eq!(
            read(r#"{"value": [1, 2], "key": "k"}"#),
            WireValue {
                key: Some(json!("k")),
                value: json!([1, 2])
            }
        );
        assert_eq!(
            read(r#"{"key": 3}"#),
            WireValue {
                key: Some(json!(3)),
                value: Value::Null
            }
        );
        for whole in [
            r#"{"key": 1, "value": 2, "x": 3}"#,
            r#"{"value": 2}"#,
            "[1, {\"a\": null}]",
            "null",
            "-4",
            "2.5",
            "\"s\"",
            "true",
        ] {
            let expected: Value = serde_json::from_str(whole).expect("valid");
            assert_eq!(read(whole), plain(expected), "{whole}");
        }
    }

    #[test]
    fn processes_are_numbers_or_names() {
        let p = |text: &str| process(&mut serde_json::Deserializer::from_str(text));
        assert_eq!(p("7").expect("client"), Process::Client(7));
        assert_eq!(p("\"nemesis\"").expect("named"), Process::nemesis());
        assert!(p("-1").is_err());
        assert!(p("[1]").is_err());
    }
}
