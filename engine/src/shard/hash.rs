//! MongoDB's hashed-index value of a BSON value (what `{k: "hashed"}` shard keys and hashed indexes store).
//!
//! The digest is md5 over: the seed (an i32, little-endian; 0 for shard keys), the value's canonical type (an
//! i32, little-endian: numbers share one, strings and symbols share one, ...), then the value itself. Numbers
//! are first made an i64 (doubles truncated towards zero, NaN as 0, out-of-range doubles saturated, except
//! that exactly 2^63 becomes -2^63 as in MongoDB's old versions), so `1`, `1i64` and `1.0` hash alike;
//! documents and arrays hash each element as type, field name (with its terminating NUL) and value, then the
//! end-of-object element (its canonical type 0, no name); every other type hashes its BSON value bytes. The
//! result is the digest's first 8 bytes read as a little-endian i64. MongoDB checks its own implementation
//! against `{check: 42}` → -944302157085130861, and so does this module's test.

use bson::{Bson, Document};
use md5::{Digest, Md5};

/// The hashed value of `value` with `seed` (shard keys use seed 0).
pub fn hash64(value: &Bson, seed: i32) -> i64 {
    let mut hasher = Md5::new();
    hasher.update(seed.to_le_bytes());
    add_value(&mut hasher, value);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// MongoDB's canonical type numbers: values of one canonical type compare with each other.
fn canonical_type(value: &Bson) -> i32 {
    match value {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// A number as the i64 the hash uses.
fn number_for_hash(value: &Bson) -> i64 {
    let double = match value {
        Bson::Int32(v) => return i64::from(*v),
        Bson::Int64(v) => return *v,
        Bson::Double(d) => *d,
        Bson::Decimal128(d) => d.to_string().parse::<f64>().unwrap_or(f64::NAN),
        _ => return 0,
    };
    // MongoDB keeps one historical quirk: exactly 2^63 hashes as -2^63 (an old overflowing cast).
    if matches!(value, Bson::Double(_)) && double == 9_223_372_036_854_775_808.0 {
        return i64::MIN;
    }
    // Otherwise Rust's float-to-integer cast is MongoDB's rule: truncation, NaN as 0, saturation.
    double as i64
}

fn add_value(hasher: &mut Md5, value: &Bson) {
    hasher.update(canonical_type(value).to_le_bytes());
    match value {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            hasher.update(number_for_hash(value).to_le_bytes());
        }
        Bson::Document(doc) => add_elements(hasher, doc.iter().map(|(k, v)| (k.as_str(), v))),
        Bson::Array(items) => {
            let names: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            add_elements(hasher, names.iter().map(String::as_str).zip(items.iter()));
        }
        other => hasher.update(value_bytes(other)),
    }
}

/// Each element as canonical type, field name with its NUL, value; then the end-of-object marker.
fn add_elements<'a>(hasher: &mut Md5, elements: impl Iterator<Item = (&'a str, &'a Bson)>) {
    for (name, value) in elements {
        hasher.update(canonical_type(value).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        match value {
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                hasher.update(number_for_hash(value).to_le_bytes());
            }
            Bson::Document(_) | Bson::Array(_) => add_nested(hasher, value),
            other => hasher.update(value_bytes(other)),
        }
    }
    // The end-of-object element: canonical type 0 and an empty field name.
    hasher.update(0i32.to_le_bytes());
}

/// A nested document or array's elements (its type and name were added by the caller).
fn add_nested(hasher: &mut Md5, value: &Bson) {
    match value {
        Bson::Document(doc) => add_elements(hasher, doc.iter().map(|(k, v)| (k.as_str(), v))),
        Bson::Array(items) => {
            let names: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            add_elements(hasher, names.iter().map(String::as_str).zip(items.iter()));
        }
        _ => {}
    }
}

/// The value's BSON encoding without type byte and field name: the bytes of `{"": value}` between the empty
/// field name and the document's terminating NUL.
fn value_bytes(value: &Bson) -> Vec<u8> {
    let mut holder = Document::new();
    holder.insert("", value.clone());
    match holder.to_vec() {
        // length (4) + type (1) + empty name's NUL (1) ... terminating NUL (1)
        Ok(bytes) if bytes.len() >= 7 => bytes[6..bytes.len() - 1].to_vec(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    #[test]
    fn matches_mongodbs_own_check_value() {
        assert_eq!(hash64(&Bson::Int32(42), 0), -944_302_157_085_130_861);
    }

    #[test]
    fn numbers_of_every_type_hash_alike() {
        let int = hash64(&Bson::Int32(7), 0);
        assert_eq!(hash64(&Bson::Int64(7), 0), int);
        assert_eq!(hash64(&Bson::Double(7.0), 0), int);
        assert_eq!(hash64(&Bson::Double(7.9), 0), int, "doubles are truncated");
        assert_eq!(hash64(&Bson::Double(f64::NAN), 0), hash64(&Bson::Int32(0), 0));
        assert_eq!(hash64(&Bson::Double(1e300), 0), hash64(&Bson::Int64(i64::MAX), 0));
        assert_eq!(
            hash64(&Bson::Double(9_223_372_036_854_775_808.0), 0),
            hash64(&Bson::Int64(i64::MIN), 0)
        );
        assert_ne!(hash64(&Bson::Int32(8), 0), int);
        assert_ne!(hash64(&Bson::String("7".into()), 0), int);
    }

    #[test]
    fn seeds_and_types_change_the_value() {
        let id = ObjectId::from_bytes([1; 12]);
        assert_ne!(hash64(&Bson::ObjectId(id), 0), hash64(&Bson::ObjectId(id), 1));
        assert_ne!(hash64(&Bson::Null, 0), hash64(&Bson::Undefined, 0));
        assert_eq!(
            hash64(&Bson::String("abc".into()), 0),
            hash64(&Bson::Symbol("abc".into()), 0)
        );
    }
}
