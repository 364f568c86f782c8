//! Dotted paths into documents: strict lookup, set (creating intermediate documents) and unset.
//!
//! Numeric segments index arrays (`a.0.b`). Unlike filter matching, these functions never descend implicitly
//! into every array element.
use bson::{Bson, Document};

use super::QueryError;
use super::traverse::array_index;
use crate::depth::{self, MAX_BSON_DEPTH};

/// The most null padding `set` appends to reach an array index, as mongod limits it.
const MAX_ARRAY_PADDING: usize = 1_500_000;

/// The value at `path`, where numeric segments index arrays; `None` if any step is missing.
pub fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let mut current = doc.get(first)?;
    for segment in segments {
        current = child(current, segment)?;
    }
    Some(current)
}

fn child<'a>(value: &'a Bson, segment: &str) -> Option<&'a Bson> {
    match value {
        Bson::Document(doc) => doc.get(segment),
        Bson::Array(items) => items.get(array_index(segment)?),
        _ => None,
    }
}

/// Mutable counterpart of [`lookup`].
pub fn lookup_mut<'a>(doc: &'a mut Document, path: &str) -> Option<&'a mut Bson> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let mut current = doc.get_mut(first)?;
    for segment in segments {
        current = match current {
            Bson::Document(inner) => inner.get_mut(segment)?,
            Bson::Array(items) => items.get_mut(array_index(segment)?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Checks a path has no empty segment (MongoDB code 56).
pub fn validate(path: &str) -> Result<(), QueryError> {
    if path.is_empty() {
        return Err(QueryError::empty_field_name("An empty update path is not valid."));
    }
    if path.split('.').any(str::is_empty) {
        return Err(QueryError::empty_field_name(format!(
            "The update path '{path}' contains an empty field name, which is not allowed."
        )));
    }
    Ok(())
}

/// Checks a field path has at most [`MAX_BSON_DEPTH`] parts (MongoDB's `FieldPath`: code 15).
pub fn check_length(path: &str) -> Result<(), QueryError> {
    if depth::path_parts(path) > MAX_BSON_DEPTH {
        return Err(QueryError::field_path_too_long());
    }
    Ok(())
}

/// Sets `path` to `value`, creating missing intermediate documents and padding arrays with nulls up to a
/// numeric index. Fails with code 28 when a step is a scalar or a non-numeric step meets an array, and with
/// code 15 for a path of more than [`MAX_BSON_DEPTH`] parts. Iterative: the stack it uses does not depend on
/// the path's length.
pub fn set(doc: &mut Document, path: &str, value: Bson) -> Result<(), QueryError> {
    validate(path)?;
    check_length(path)?;
    let segments: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return Ok(());
    };
    let mut node = Container::Document(doc);
    for (i, segment) in parents.iter().enumerate() {
        let next = segments.get(i + 1).copied().unwrap_or("");
        let child = match node {
            Container::Document(doc) => {
                if !doc.contains_key(*segment) {
                    doc.insert(*segment, Document::new());
                }
                match doc.get_mut(*segment) {
                    Some(child) => child,
                    None => return Ok(()),
                }
            }
            Container::Array(items) => array_slot(items, segment, Some(Bson::Document(Document::new())))?,
        };
        node = match child {
            Bson::Document(doc) => Container::Document(doc),
            Bson::Array(items) => Container::Array(items),
            other => return Err(cannot_create(next, other)),
        };
    }
    match node {
        Container::Document(doc) => {
            doc.insert(*last, value);
        }
        Container::Array(items) => {
            *array_slot(items, last, None)? = value;
        }
    }
    Ok(())
}

/// Where [`set`] is: inside a document or an array.
enum Container<'a> {
    Document(&'a mut Document),
    Array(&'a mut Vec<Bson>),
}

/// The element of `items` at the numeric `segment`, padding with nulls and appending `fill` (or null) when
/// the index is past the end.
fn array_slot<'a>(items: &'a mut Vec<Bson>, segment: &str, fill: Option<Bson>) -> Result<&'a mut Bson, QueryError> {
    let Some(index) = array_index(segment) else {
        return Err(cannot_create(segment, &Bson::Array(items.clone())));
    };
    if index >= items.len() {
        if index - items.len() > MAX_ARRAY_PADDING {
            return Err(QueryError::bad_value(format!(
                "can't backfill array to larger than {MAX_ARRAY_PADDING} elements"
            )));
        }
        items.resize(index, Bson::Null);
        items.push(fill.unwrap_or(Bson::Null));
    }
    match items.get_mut(index) {
        Some(slot) => Ok(slot),
        None => Err(cannot_create(segment, &Bson::Null)),
    }
}

fn cannot_create(field: &str, parent: &Bson) -> QueryError {
    QueryError::path_not_viable(format!("Cannot create field '{field}' in element {parent}"))
}

/// Removes the field at `path` (an array element is set to null instead, keeping positions). Returns whether
/// anything changed.
pub fn unset(doc: &mut Document, path: &str) -> bool {
    let Some((parent_path, last)) = path.rsplit_once('.') else {
        return doc.remove(path).is_some();
    };
    match lookup_mut(doc, parent_path) {
        Some(Bson::Document(parent)) => parent.remove(last).is_some(),
        Some(Bson::Array(items)) => match array_index(last).and_then(|i| items.get_mut(i)) {
            Some(slot) if *slot != Bson::Null => {
                *slot = Bson::Null;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    #[test]
    fn lookup_indexes_arrays_strictly() {
        let d = doc! {"a": {"b": [{"c": 1}, {"c": 2}]}};
        assert_eq!(lookup(&d, "a.b.1.c"), Some(&Bson::Int32(2)));
        assert_eq!(lookup(&d, "a.b.c"), None);
        assert_eq!(lookup(&d, "a.x"), None);
    }

    #[test]
    fn set_creates_intermediate_documents() {
        let mut d = doc! {"x": 1};
        set(&mut d, "a.b.c", Bson::Int32(5)).expect("settable");
        assert_eq!(d, doc! {"x": 1, "a": {"b": {"c": 5}}});
    }

    #[test]
    fn set_pads_arrays_with_nulls() {
        let mut d = doc! {"a": [1]};
        set(&mut d, "a.3", Bson::Int32(4)).expect("settable");
        assert_eq!(d, doc! {"a": [1, null, null, 4]});
        set(&mut d, "a.5.b", Bson::Int32(6)).expect("settable");
        assert_eq!(d, doc! {"a": [1, null, null, 4, null, {"b": 6}]});
    }

    #[test]
    fn set_through_a_scalar_is_path_not_viable() {
        let mut d = doc! {"a": 1};
        let err = set(&mut d, "a.b", Bson::Int32(5)).expect_err("scalar parent");
        assert_eq!(err.code, 28);
        let mut d = doc! {"a": [{"b": 1}]};
        assert_eq!(set(&mut d, "a.b", Bson::Int32(5)).map_err(|e| e.code), Err(28));
    }

    #[test]
    fn set_rejects_empty_segments() {
        let mut d = doc! {};
        assert_eq!(set(&mut d, "a..b", Bson::Null).map_err(|e| e.code), Err(56));
        assert_eq!(set(&mut d, "", Bson::Null).map_err(|e| e.code), Err(56));
    }

    #[test]
    fn set_keeps_field_position() {
        let mut d = doc! {"a": 1, "b": 2};
        set(&mut d, "a", Bson::Int32(3)).expect("settable");
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn unset_removes_fields_and_nulls_array_slots() {
        let mut d = doc! {"a": {"b": 1, "c": 2}, "l": [1, 2]};
        assert!(unset(&mut d, "a.b"));
        assert!(!unset(&mut d, "a.b"));
        assert!(unset(&mut d, "l.0"));
        assert!(!unset(&mut d, "zz.y"));
        assert_eq!(d, doc! {"a": {"c": 2}, "l": [null, 2]});
    }
}
