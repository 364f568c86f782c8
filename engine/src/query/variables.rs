//! User variables (`let` in find, aggregate, update, delete and findAndModify; `c` on an update statement)
//! and the system variables `$$NOW` and `$$CLUSTER_TIME`: evaluated once, then bound where expressions are read — inside `$expr` in filters and in the arguments of
//! pipeline stages — by replacing each `"$$name"` (or `"$$name.path"`) with its value as a `$literal`, so
//! the rest of the query layer sees only constants.
use bson::{Bson, DateTime, Document, Timestamp, doc};

use super::QueryError;
use super::expr::Expr;

/// Evaluated user variables, by name.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: Document,
}

impl Variables {
    /// Evaluates a `let` document (each value an expression over no document; earlier variables are
    /// visible to later ones). Names follow mongod's rule: a lowercase letter (or a non-ASCII character)
    /// first, then letters, digits and `_` (code 16870 / 16871).
    pub fn parse(spec: &Document) -> Result<Variables, QueryError> {
        Variables::default().parse_more(spec)
    }

    /// These variables and those a `let` document defines (which see these).
    pub fn parse_more(&self, spec: &Document) -> Result<Variables, QueryError> {
        let mut vars = self.clone();
        for (name, value) in spec {
            check_name(name)?;
            let bound = vars.bind_expression(value);
            let evaluated = Expr::parse(&bound)?.evaluate(&Document::new())?;
            vars.values.insert(name.clone(), evaluated.unwrap_or(Bson::Null));
        }
        Ok(vars)
    }

    /// The system variables a command sees: `NOW` (the member's clock when the command started) and, in a
    /// replica set, `CLUSTER_TIME`.
    pub fn system(now: DateTime, cluster_time: Option<Timestamp>) -> Variables {
        let mut values = doc! {"NOW": now};
        if let Some(ts) = cluster_time {
            values.insert("CLUSTER_TIME", ts);
        }
        Variables { values }
    }

    /// These variables, then `more` (which win on a name both define).
    pub fn with(&self, more: &Variables) -> Variables {
        let mut values = self.values.clone();
        values.extend(more.values.clone());
        Variables { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A filter with the variables bound inside its `$expr` clauses (through `$and`/`$or`/`$nor`).
    pub fn bind_filter(&self, filter: &Document) -> Document {
        if self.is_empty() {
            return filter.clone();
        }
        filter
            .iter()
            .map(|(key, value)| {
                let bound = match (key.as_str(), value) {
                    ("$expr", expr) => self.bind_expression(expr),
                    ("$and" | "$or" | "$nor", Bson::Array(clauses)) => Bson::Array(
                        clauses
                            .iter()
                            .map(|c| match c {
                                Bson::Document(d) => Bson::Document(self.bind_filter(d)),
                                other => other.clone(),
                            })
                            .collect(),
                    ),
                    _ => value.clone(),
                };
                (key.clone(), bound)
            })
            .collect()
    }

    /// Pipeline stages with the variables bound: `$match` as a filter, every other stage's argument as an
    /// expression.
    pub fn bind_stages(&self, stages: &[Document]) -> Vec<Document> {
        stages.iter().map(|stage| self.bind_stage(stage)).collect()
    }

    fn bind_stage(&self, stage: &Document) -> Document {
        if self.is_empty() {
            return stage.clone();
        }
        stage
            .iter()
            .map(|(name, argument)| {
                let bound = match (name.as_str(), argument) {
                    ("$match", Bson::Document(filter)) => Bson::Document(self.bind_filter(filter)),
                    _ => self.bind_expression(argument),
                };
                (name.clone(), bound)
            })
            .collect()
    }

    /// An expression with every `"$$name[.path]"` of a user variable replaced by its value (`$literal`
    /// bodies are left as they are).
    pub fn bind_expression(&self, value: &Bson) -> Bson {
        match value {
            Bson::String(text) => match text.strip_prefix("$$").and_then(|v| self.lookup(v)) {
                Some(Some(found)) => Bson::Document(doc! {"$literal": found}),
                Some(None) => Bson::String("$$REMOVE".into()),
                None => value.clone(),
            },
            Bson::Document(doc) if doc.len() == 1 && doc.contains_key("$literal") => value.clone(),
            Bson::Document(doc) => {
                Bson::Document(doc.iter().map(|(k, v)| (k.clone(), self.bind_expression(v))).collect())
            }
            Bson::Array(items) => Bson::Array(items.iter().map(|v| self.bind_expression(v)).collect()),
            other => other.clone(),
        }
    }

    /// `Some(value)` for a user variable (`Some(None)` when its path reaches nothing), `None` when `text`
    /// names no user variable.
    fn lookup(&self, text: &str) -> Option<Option<Bson>> {
        let (name, rest) = match text.split_once('.') {
            Some((name, rest)) => (name, Some(rest)),
            None => (text, None),
        };
        let value = self.values.get(name)?;
        Some(match (rest, value) {
            (None, v) => Some(v.clone()),
            (Some(path), Bson::Document(d)) => {
                let segments: Vec<String> = path.split('.').map(str::to_string).collect();
                super::expr::field_path_value(d, &segments)
            }
            (Some(_), _) => None,
        })
    }
}

fn check_name(name: &str) -> Result<(), QueryError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(QueryError::location(16869, "empty variable names are not allowed"));
    };
    if first.is_ascii() && !first.is_ascii_lowercase() {
        return Err(QueryError::location(
            16870,
            format!("'{name}' starts with an invalid character for a user variable name"),
        ));
    }
    if let Some(bad) = chars.find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(QueryError::location(
            16871,
            format!("'{name}' contains an invalid character for a variable name: '{bad}'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_bound_where_expressions_are_read() -> Result<(), QueryError> {
        let vars = Variables::parse(
            &doc! {"x": 2, "o": {"k": "v"}, "y": {"$add": ["$$x", 1]}, "r": {"$rand": {}}, "l": {"$literal": "$bar"}},
        )?;
        assert!(matches!(vars.values.get("r"), Some(Bson::Double(r)) if (0.0..1.0).contains(r)));
        assert_eq!(
            vars.bind_expression(&Bson::String("$$l".into())),
            Bson::Document(doc! {"$literal": "$bar"})
        );
        assert_eq!(
            vars.bind_filter(&doc! {"a": "$$x", "$expr": {"$eq": ["$a", "$$x"]}}),
            doc! {"a": "$$x", "$expr": {"$eq": ["$a", {"$literal": 2}]}}
        );
        assert_eq!(
            vars.bind_expression(&Bson::String("$$o.k".into())),
            Bson::Document(doc! {"$literal": "v"})
        );
        assert_eq!(
            vars.bind_expression(&Bson::String("$$y".into())),
            Bson::Document(doc! {"$literal": 3})
        );
        assert_eq!(
            vars.bind_expression(&Bson::String("$$ROOT".into())),
            Bson::String("$$ROOT".into())
        );
        Ok(())
    }

    #[test]
    fn names_follow_mongods_rules() {
        assert_eq!(
            Variables::parse(&doc! {"Bad": 1}).map_err(|e| e.code).err(),
            Some(16870)
        );
        assert_eq!(
            Variables::parse(&doc! {"b-d": 1}).map_err(|e| e.code).err(),
            Some(16871)
        );
    }
}
