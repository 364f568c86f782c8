//! `errInfo.details` of a DocumentValidationFailure: why a document failed its collection's validator, in
//! MongoDB 5.0's shape — for each clause that failed, the operator, the clause as specified, a reason and
//! the value it considered:
//!
//! ```text
//! {operatorName: "$type", specifiedAs: {x: {$type: "string"}}, reason: "type did not match",
//!  consideredValue: 1, consideredType: "int"}
//! {operatorName: "$and", clausesNotSatisfied: [{index: 1, details: {...}}]}     (several clauses)
//! ```
//!
//! Comparisons, `$in`/`$nin`, `$exists`, `$type`, `$regex`, `$expr` and the logical operators are explained
//! as mongod words them; other operators get `reason: "condition not satisfied"`.

use bson::{Bson, Document, doc};

use crate::query::expr::type_name;
use crate::query::filter::Filter;

/// The explanation of why `doc` does not match the validator `spec`.
pub fn explain(spec: &Document, doc: &Document) -> Document {
    let clauses = split(spec);
    if clauses.len() == 1 {
        return explain_clause(&clauses[0], doc);
    }
    conjunction("$and", &clauses, doc)
}

/// One clause per top-level field or operator, and per operator of a field with several.
fn split(spec: &Document) -> Vec<Document> {
    let mut out = Vec::new();
    for (name, value) in spec {
        match value {
            Bson::Document(ops) if !name.starts_with('$') && ops.len() > 1 && is_operator_doc(ops) => {
                for (op, arg) in ops {
                    out.push(doc! {name.clone(): {op.clone(): arg.clone()}});
                }
            }
            _ => out.push(doc! {name.clone(): value.clone()}),
        }
    }
    out
}

fn is_operator_doc(doc: &Document) -> bool {
    doc.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn matches(clause: &Document, doc: &Document) -> bool {
    Filter::parse(clause).is_ok_and(|f| f.matches(doc))
}

/// `{operatorName, clausesNotSatisfied: [{index, details}]}` over the clauses that failed.
fn conjunction(operator: &str, clauses: &[Document], doc: &Document) -> Document {
    let failed: Vec<Bson> = clauses
        .iter()
        .enumerate()
        .filter(|(_, clause)| !matches(clause, doc))
        .map(|(index, clause)| Bson::Document(doc! {"index": index as i32, "details": explain_clause(clause, doc)}))
        .collect();
    doc! {"operatorName": operator, "clausesNotSatisfied": failed}
}

fn explain_clause(clause: &Document, doc: &Document) -> Document {
    let Some((name, value)) = clause.iter().next() else {
        return doc! {"operatorName": "$and", "clausesNotSatisfied": []};
    };
    match (name.as_str(), value) {
        ("$and", Bson::Array(items)) | ("$or", Bson::Array(items)) => {
            let clauses: Vec<Document> = items.iter().filter_map(|i| i.as_document().cloned()).collect();
            conjunction(name, &clauses, doc)
        }
        ("$nor", Bson::Array(items)) => {
            let satisfied: Vec<Bson> = items
                .iter()
                .filter_map(|i| i.as_document())
                .enumerate()
                .filter(|(_, c)| matches(c, doc))
                .map(|(index, _)| Bson::Document(doc! {"index": index as i32}))
                .collect();
            doc! {"operatorName": "$nor", "clausesSatisfied": satisfied}
        }
        ("$expr", _) => doc! {
            "operatorName": "$expr", "specifiedAs": clause.clone(), "reason": "expression did not match",
            "expressionResult": false,
        },
        (op, _) if op.starts_with('$') => doc! {
            "operatorName": op, "specifiedAs": clause.clone(), "reason": "condition not satisfied",
        },
        (field, Bson::Document(ops)) if is_operator_doc(ops) => {
            let (op, arg) = ops
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("$eq", value));
            field_details(field, op, arg, clause, doc)
        }
        (field, _) => field_details(field, "$eq", value, clause, doc),
    }
}

fn field_details(field: &str, op: &str, arg: &Bson, clause: &Document, doc: &Document) -> Document {
    let considered = crate::query::path::lookup(doc, field).cloned();
    let mut details = doc! {"operatorName": op, "specifiedAs": clause.clone()};
    let reason = match (op, &considered) {
        ("$exists", _) if crate::bsonx::truthy(arg) => "path does not exist",
        ("$exists", _) => "path does exist",
        (_, None) if op != "$ne" && op != "$nin" && op != "$not" => "field was missing",
        ("$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte", _) => "comparison failed",
        ("$in", _) => "no matching value found in array",
        ("$nin", _) => "matching value found in array",
        ("$type", _) => "type did not match",
        ("$regex", _) => "regular expression did not match",
        _ => "condition not satisfied",
    };
    details.insert("reason", reason);
    if let Some(value) = considered {
        if op == "$type" {
            details.insert("consideredType", type_name(Some(&value)));
        }
        details.insert("consideredValue", value);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_the_failing_clauses() {
        let details = explain(&doc! {"x": {"$type": "string"}}, &doc! {"_id": 1, "x": 1});
        assert_eq!(
            details,
            doc! {"operatorName": "$type", "specifiedAs": {"x": {"$type": "string"}}, "reason": "type did not match",
            "consideredType": "int", "consideredValue": 1}
        );
        let details = explain(
            &doc! {"a": {"$gte": 0, "$lte": 9}, "b": {"$exists": true}},
            &doc! {"a": 10},
        );
        assert_eq!(details.get_str("operatorName").unwrap(), "$and");
        let failed = details.get_array("clausesNotSatisfied").unwrap();
        assert_eq!(failed.len(), 2, "{details}");
        let first = failed[0].as_document().unwrap();
        assert_eq!(first.get_i32("index").unwrap(), 1);
        assert_eq!(
            first.get_document("details").unwrap().get_str("reason").unwrap(),
            "comparison failed"
        );
        let second = failed[1].as_document().unwrap().get_document("details").unwrap();
        assert_eq!(second.get_str("reason").unwrap(), "path does not exist");
    }
}
