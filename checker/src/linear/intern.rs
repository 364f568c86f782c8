//! Interning of JSON values as small integers, so model states are cheap to copy, hash and compare.

use serde_json::Value;

use super::search::FastMap;

/// Maps distinct values to dense ids, and back.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: FastMap<String, u32>,
    int_ids: FastMap<i64, u32>,
    values: Vec<Value>,
}

impl Interner {
    /// The id of `value`, assigning a new one if needed.
    pub fn id(&mut self, value: &Value) -> u32 {
        if let Some(n) = value.as_i64() {
            let next = self.values.len() as u32;
            let id = *self.int_ids.entry(n).or_insert(next);
            if id == next {
                self.values.push(value.clone());
            }
            return id;
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_values_share_an_id_and_distinct_ones_do_not() {
        let mut interner = Interner::default();
        let values = [json!(null), json!(1), json!("1"), json!(1.5), json!([1, 2]), json!(-7)];
        let ids: Vec<u32> = values.iter().map(|v| interner.id(v)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
        let again: Vec<u32> = values.iter().map(|v| interner.id(v)).collect();
        assert_eq!(again, ids);
        assert_eq!(interner.value(1), json!(1));
        assert_eq!(interner.value(99), Value::Null);
    }
}
