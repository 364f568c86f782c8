//! Query-style path traversal: every value a dotted path reaches, descending implicitly through arrays.
//!
//! `a.b` on `{a: [{b: 1}, {b: 2}, {c: 3}]}` reaches `1`, `2` and *missing*; a numeric segment indexes an array
//! (`a.1`). The value at the end of the path is not expanded: callers decide whether an array leaf counts as
//! itself, as its elements, or both.
use bson::{Bson, Document};

/// A value reached by a path, or `None` where the path ends at a missing field.
pub(crate) type Reached<'a> = Option<&'a Bson>;

/// All values the path reaches in `doc`; never empty (a path that reaches nothing yields one `None`).
pub(crate) fn reach<'a>(doc: &'a Document, segments: &[String]) -> Vec<Reached<'a>> {
    let mut out = Vec::new();
    from_document(doc, segments, &mut out);
    if out.is_empty() {
        out.push(None);
    }
    out
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

fn from_document<'a>(doc: &'a Document, segments: &[String], out: &mut Vec<Reached<'a>>) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match doc.get(first) {
        None => out.push(None),
        Some(value) if rest.is_empty() => out.push(Some(value)),
        Some(value) => from_value(value, rest, out),
    }
}

fn from_value<'a>(value: &'a Bson, segments: &[String], out: &mut Vec<Reached<'a>>) {
    match value {
        Bson::Document(doc) => from_document(doc, segments, out),
        Bson::Array(items) => from_array(items, segments, out),
        _ => out.push(None),
    }
}

fn from_array<'a>(items: &'a [Bson], segments: &[String], out: &mut Vec<Reached<'a>>) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match array_index(first) {
        Some(index) => {
            if let Some(item) = items.get(index) {
                if rest.is_empty() {
                    out.push(Some(item));
                } else {
                    from_value(item, rest, out);
                }
            }
            // Embedded documents may also have a field literally named like the index.
            for item in items {
                if let Bson::Document(doc) = item
                    && doc.contains_key(first)
                {
                    from_document(doc, segments, out);
                }
            }
        }
        None => {
            for item in items {
                if let Bson::Document(doc) = item {
                    from_document(doc, segments, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bson::{Bson, doc};

    use super::*;

    fn reached(doc: &Document, path: &str) -> Vec<Option<Bson>> {
        reach(doc, &split_path(path)).into_iter().map(|v| v.cloned()).collect()
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
