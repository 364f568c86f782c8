//! Query-style path traversal: every value a dotted path reaches, descending implicitly through arrays.
//!
//! `a.b` on `{a: [{b: 1}, {b: 2}, {c: 3}]}` reaches `1`, `2` and *missing*; a numeric segment indexes an array
//! (`a.1`). The value at the end of the path is not expanded: callers decide whether an array leaf counts as
//! itself, as its elements, or both.
use std::collections::HashSet;

use bson::{Bson, Document};

/// A value reached by a path, or `None` where the path ends at a missing field.
pub(crate) type Reached<'a> = Option<&'a Bson>;

/// All values the path reaches in `doc`; never empty (a path that reaches nothing yields one `None`).
///
/// Iterative, with an explicit work stack, so the stack it uses does not grow with the path or the document.
/// A numeric segment on an array can mean an index or a field name of its documents, and both are followed;
/// where the two meet again (`{"0": [{"0": ...}]}`), a node is visited once per path position, so the work
/// stays proportional to the document times the path instead of growing exponentially with the path. A value
/// reached twice by such routes is reported once.
pub(crate) fn reach<'a>(doc: &'a Document, segments: &[String]) -> Vec<Reached<'a>> {
    let mut out = Vec::new();
    let mut visited: HashSet<(usize, usize)> = HashSet::new();
    let mut stack = vec![Task::Document(doc, 0)];
    while let Some(task) = stack.pop() {
        match task {
            Task::Document(doc, at) => {
                let Some(first) = segments.get(at) else {
                    continue;
                };
                match doc.get(first) {
                    None => out.push(None),
                    Some(value) if at + 1 == segments.len() => out.push(Some(value)),
                    Some(value) => stack.push(Task::Value(value, at + 1)),
                }
            }
            Task::Value(value, at) => match value {
                Bson::Document(doc) => stack.push(Task::Document(doc, at)),
                Bson::Array(items) => {
                    if visited.insert((std::ptr::from_ref(items).addr(), at)) {
                        push_array(&mut stack, &mut out, items, segments, at);
                    }
                }
                _ => out.push(None),
            },
            Task::ArrayDocument(doc, at) => {
                if visited.insert((std::ptr::from_ref(doc).addr(), at)) {
                    stack.push(Task::Document(doc, at));
                }
            }
        }
    }
    if out.is_empty() {
        out.push(None);
    }
    out
}

/// Work left for [`reach`]: a document or value to continue from, at a position in the path.
enum Task<'a> {
    Document(&'a Document, usize),
    Value(&'a Bson, usize),
    /// A document inside an array, continued at the same position (the array's segment names its field).
    ArrayDocument(&'a Document, usize),
}

/// Schedules an array's continuations in the order the recursive definition visits them: the element a
/// numeric segment indexes, then every embedded document (that has the field, for a numeric segment).
fn push_array<'a>(
    stack: &mut Vec<Task<'a>>,
    out: &mut Vec<Reached<'a>>,
    items: &'a [Bson],
    segments: &[String],
    at: usize,
) {
    let Some(first) = segments.get(at) else {
        return;
    };
    let index = array_index(first);
    // Pushed in reverse: the stack pops them in document order.
    for item in items.iter().rev() {
        if let Bson::Document(doc) = item
            && (index.is_none() || doc.contains_key(first))
        {
            stack.push(Task::ArrayDocument(doc, at));
        }
    }
    if let Some(item) = index.and_then(|i| items.get(i)) {
        if at + 1 == segments.len() {
            out.push(Some(item));
        } else {
            stack.push(Task::Value(item, at + 1));
        }
    }
}

/// Parses an array index segment: ASCII digits only (no sign, no leading `+`).
pub(crate) fn array_index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

pub(crate) fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

/// Whether `doc` nests documents or arrays more than `limit` levels deep (stops looking past the limit).
pub(crate) fn deeper_than(doc: &Document, limit: usize) -> bool {
    if limit == 0 {
        return true;
    }
    doc.values().any(|value| value_deeper_than(value, limit - 1))
}

pub(crate) fn value_deeper_than(value: &Bson, limit: usize) -> bool {
    match value {
        Bson::Document(doc) => deeper_than(doc, limit),
        Bson::Array(items) => limit == 0 || items.iter().any(|item| value_deeper_than(item, limit - 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bson::{Bson, doc};
    use proptest::prelude::*;

    use super::*;
    use crate::query::test_support::{document, dotted_path};

    /// The recursive definition the iterative walk replaced, kept as its specification (small inputs).
    fn reference<'a>(doc: &'a Document, segments: &[String], out: &mut Vec<Reached<'a>>) {
        let Some((first, rest)) = segments.split_first() else {
            return;
        };
        match doc.get(first) {
            None => out.push(None),
            Some(value) if rest.is_empty() => out.push(Some(value)),
            Some(value) => reference_value(value, rest, out),
        }
    }

    fn reference_value<'a>(value: &'a Bson, segments: &[String], out: &mut Vec<Reached<'a>>) {
        match value {
            Bson::Document(doc) => reference(doc, segments, out),
            Bson::Array(items) => {
                let Some((first, rest)) = segments.split_first() else {
                    return;
                };
                if let Some(index) = array_index(first) {
                    if let Some(item) = items.get(index) {
                        if rest.is_empty() {
                            out.push(Some(item));
                        } else {
                            reference_value(item, rest, out);
                        }
                    }
                    for item in items {
                        if let Bson::Document(doc) = item
                            && doc.contains_key(first)
                        {
                            reference(doc, segments, out);
                        }
                    }
                } else {
                    for item in items {
                        if let Bson::Document(doc) = item {
                            reference(doc, segments, out);
                        }
                    }
                }
            }
            _ => out.push(None),
        }
    }

    /// What a list of reached values holds, by identity: the same value reached twice counts once.
    fn identities(reached: &[Reached<'_>]) -> BTreeSet<Option<usize>> {
        reached
            .iter()
            .map(|r| r.map(|v| std::ptr::from_ref(v).addr()))
            .collect()
    }

    proptest! {
        #[test]
        fn reach_finds_what_the_recursive_definition_finds(doc in document(), path in dotted_path()) {
            let segments = split_path(&path);
            let mut expected = Vec::new();
            reference(&doc, &segments, &mut expected);
            if expected.is_empty() {
                expected.push(None);
            }
            let found = reach(&doc, &segments);
            prop_assert_eq!(identities(&found), identities(&expected));
            // Without the double meaning of numeric segments no value is reached twice (a missing field may be
            // reported once per array element that lacks it): same list, same order.
            if !segments.iter().any(|s| array_index(s).is_some()) {
                let values = found.iter().filter(|r| r.is_some()).count();
                prop_assert_eq!(identities(&found).iter().filter(|r| r.is_some()).count(), values);
                let order = |r: &[Reached<'_>]| r.iter().map(|v| v.map(|v| std::ptr::from_ref(v).addr())).collect::<Vec<_>>();
                prop_assert_eq!(order(&found), order(&expected));
            }
        }
    }

    fn reached(doc: &Document, path: &str) -> Vec<Option<Bson>> {
        reach(doc, &split_path(path)).into_iter().map(|v| v.cloned()).collect()
    }

    #[test]
    fn a_field_missing_from_every_element_is_reported_once_per_element() {
        let d = doc! {"c": [{}, {}]};
        assert_eq!(reached(&d, "c.a"), vec![None, None]);
        let segments = split_path("c.a");
        let mut expected = Vec::new();
        reference(&d, &segments, &mut expected);
        assert_eq!(reach(&d, &segments), expected);
    }

    #[test]
    fn descends_through_arrays_of_documents() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}, 4]};
        assert_eq!(
            reached(&d, "a.b"),
            vec![Some(Bson::Int32(1)), Some(Bson::Int32(2)), None]
        );
    }

    #[test]
    fn numeric_segments_index_arrays() {
        let d = doc! {"a": [{"b": 1}, {"b": 2}]};
        assert_eq!(reached(&d, "a.1.b"), vec![Some(Bson::Int32(2))]);
        assert_eq!(reached(&d, "a.5"), vec![None]);
    }

    #[test]
    fn leaf_arrays_are_not_expanded() {
        let d = doc! {"a": [1, 2]};
        assert_eq!(reached(&d, "a"), vec![Some(Bson::Array(vec![1.into(), 2.into()]))]);
    }

    #[test]
    fn scalars_in_the_middle_are_missing() {
        let d = doc! {"a": 5};
        assert_eq!(reached(&d, "a.b"), vec![None]);
    }
}
