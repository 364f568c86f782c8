//! Compact shared strings and keys for history events, and the interner readers use to share them.
//!
//! A history of a million events repeats a handful of function names, a few member names and (for
//! multi-key workloads) a bounded set of keys. [`Name`] and [`Key`] are reference-counted, so every event
//! that repeats one shares a single allocation; [`Interner`] hands out those shared copies while reading.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An immutable, cheaply cloned string: an op's `f`, a member name. One pointer wide, so an optional name
/// costs an event 8 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<String>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name(Arc::new(text.to_string()))
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name(Arc::new(text))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// The key of an operation in a multi-key workload (Jepsen's independent keys): any JSON value, shared.
///
/// Equality is value equality; hashing agrees with it (numbers hash by value, not by spelling).
#[derive(Clone)]
pub struct Key(Arc<Value>);

impl Key {
    /// A key holding `value`.
    pub fn new(value: Value) -> Key {
        Key(Arc::new(value))
    }

    /// The key as a JSON value.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_value(&self.0, h);
    }
}

fn hash_value<H: Hasher>(value: &Value, h: &mut H) {
    match value {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => h.write_u8(1 + u8::from(*b)),
        Value::Number(n) => {
            h.write_u8(3);
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => h.write_i64(i),
                (None, Some(u)) => h.write_u64(u),
                _ => h.write_u64(n.as_f64().map_or(0, f64::to_bits)),
            }
        }
        Value::String(s) => {
            h.write_u8(4);
            s.hash(h);
        }
        Value::Array(items) => {
            h.write_u8(5);
            h.write_usize(items.len());
            items.iter().for_each(|v| hash_value(v, h));
        }
        Value::Object(map) => {
            h.write_u8(6);
            h.write_usize(map.len());
            for (k, v) in map {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Hands out shared [`Name`]s and [`Key`]s, so equal ones read from a file share one allocation.
#[derive(Debug, Default)]
pub struct Interner {
    names: HashSet<Name>,
    int_keys: HashMap<i64, Key>,
    text_keys: HashMap<String, Key>,
    other_keys: HashMap<String, Key>,
}

impl Interner {
    /// The shared copy of `text`.
    pub fn name(&mut self, text: &str) -> Name {
        if let Some(name) = self.names.get(text) {
            return name.clone();
        }
        let name = Name::from(text);
        self.names.insert(name.clone());
        name
    }

    /// The shared copy of the key `value`.
    pub fn key(&mut self, value: Value) -> Key {
        match &value {
            Value::Number(n) if n.is_i64() => {
                let n = n.as_i64().unwrap_or_default();
                self.int_keys.entry(n).or_insert_with(|| Key::new(value)).clone()
            }
            Value::String(s) => match self.text_keys.get(s.as_str()) {
                Some(key) => key.clone(),
                None => {
                    let key = Key::new(value.clone());
                    self.text_keys.insert(s.clone(), key.clone());
                    key
                }
            },
            _ => self
                .other_keys
                .entry(value.to_string())
                .or_insert_with(|| Key::new(value))
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use serde_json::json;

    use super::*;

    fn hash_of(key: &Key) -> u64 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    #[test]
    fn interned_names_and_keys_share_one_allocation() {
        let mut interner = Interner::default();
        let (a, b) = (interner.name("read"), interner.name("read"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "read");
        for value in [json!(7), json!("k"), json!([1, "x"])] {
            let (x, y) = (interner.key(value.clone()), interner.key(value.clone()));
            assert!(Arc::ptr_eq(&x.0, &y.0), "{value}");
            assert_eq!(x.value(), &value);
        }
    }

    #[test]
    fn equal_keys_from_different_sources_are_equal_and_hash_alike() {
        let a = Key::new(json!({"a": [1, 2.5, null]}));
        let b = Key::new(json!({"a": [1, 2.5, null]}));
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_ne!(Key::new(json!(1)), Key::new(json!("1")));
        assert_ne!(hash_of(&Key::new(json!(1))), hash_of(&Key::new(json!("1"))));
    }
}
