//! Interning of JSON values as small integers, so model states are cheap to copy, hash and compare.

use std::collections::HashMap;

use serde_json::Value;

/// Maps distinct values to dense ids, and back.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl Interner {
    /// The id of `value`, assigning a new one if needed.
    pub fn id(&mut self, value: &Value) -> u32 {
        let text = match value {
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(text, id);
        self.values.push(value.clone());
        id
    }

    /// The value behind `id`.
    pub fn value(&self, id: u32) -> Value {
        self.values.get(id as usize).cloned().unwrap_or(Value::Null)
    }
}
