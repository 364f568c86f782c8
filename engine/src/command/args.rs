//! Reading command arguments with MongoDB's type rules and error codes (the number rules themselves are
//! [`bsonx`](crate::bsonx)'s).

use bson::{Bson, Document};

use crate::bsonx::{as_i64, truthy};
use crate::error::{Error, Result, code};
use crate::storage::Namespace;

/// mongod's parser refusing a field a command or statement does not have.
pub const UNKNOWN_FIELD: (i32, &str) = (40415, "Location40415");

/// Refuses the first field of `doc` that is not in `known`, as mongod's parser does: 40415, "BSON field
/// '{path}.{field}' is an unknown field." (`path` names where `doc` sits, e.g. `update.updates`).
pub fn check_known_fields(doc: &Document, known: &[&str], path: &str) -> Result<()> {
    match doc.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(Error::new(
            UNKNOWN_FIELD,
            format!("BSON field '{path}.{key}' is an unknown field."),
        )),
        None => Ok(()),
    }
}

/// Checks every statement of a write command (`update.updates`, `delete.deletes`) for fields mongod 7.0 does
/// not know before any of them runs, so a bad field fails the whole command.
pub fn check_statement_fields(statements: &[Bson], known: &[&str], path: &str) -> Result<()> {
    for statement in statements {
        if let Bson::Document(statement) = statement {
            check_known_fields(statement, known, path)?;
        }
    }
    Ok(())
}

/// The command's (or statement's) user variables from the document under `key` (`let`, or an update
/// statement's `c`); none when absent.
pub fn variables(body: &Document, key: &str) -> Result<crate::query::variables::Variables> {
    match opt_doc(body, key)? {
        Some(spec) => Ok(crate::query::variables::Variables::parse(spec)?),
        None => Ok(crate::query::variables::Variables::default()),
    }
}

/// Every variable a command's expressions see: the system ones (`$$NOW`, `$$CLUSTER_TIME`) and its `let`.
pub fn command_variables(ctx: &super::Context<'_>) -> Result<crate::query::variables::Variables> {
    let node = ctx.node;
    let cluster_time = node
        .member
        .role()
        .config
        .is_some()
        .then(|| super::cluster_time::current(node));
    let system = crate::query::variables::Variables::system(node.clock().now(), cluster_time);
    match opt_doc(ctx.body, "let")? {
        Some(spec) => Ok(system.parse_more(spec)?),
        None => Ok(system),
    }
}

pub fn opt_bool(body: &Document, key: &str) -> Result<Option<bool>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(v) if as_i64(v).is_some() => Ok(Some(truthy(v))),
        Some(_) => Err(Error::type_mismatch(format!(
            "BSON field '{key}' is the wrong type, expected type 'bool'"
        ))),
    }
}

pub fn opt_i64(body: &Document, key: &str) -> Result<Option<i64>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => as_i64(v)
            .map(Some)
            .ok_or_else(|| Error::type_mismatch(format!("BSON field '{key}' is the wrong type, expected a number"))),
    }
}

pub fn opt_doc<'a>(body: &'a Document, key: &str) -> Result<Option<&'a Document>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(_) => Err(Error::type_mismatch(format!(
            "BSON field '{key}' is the wrong type, expected type 'object'"
        ))),
    }
}

pub fn opt_array<'a>(body: &'a Document, key: &str) -> Result<Option<&'a Vec<Bson>>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Array(a)) => Ok(Some(a)),
        Some(_) => Err(Error::type_mismatch(format!(
            "BSON field '{key}' is the wrong type, expected type 'array'"
        ))),
    }
}

/// The database a command runs against (`$db`).
pub fn database(body: &Document) -> Result<String> {
    match body.get("$db") {
        Some(Bson::String(db)) => {
            validate_db_name(db)?;
            Ok(db.clone())
        }
        Some(_) => Err(Error::type_mismatch(
            "BSON field '$db' is the wrong type, expected type 'string'",
        )),
        None => Err(Error::new(
            (40414, "Location40414"),
            "BSON field '$db' is missing but a required field",
        )),
    }
}

/// The collection a command names in its first field, validated, as a namespace in `db`.
pub fn namespace(body: &Document, db: &str) -> Result<Namespace> {
    let (name, value) = body
        .iter()
        .next()
        .ok_or_else(|| Error::failed_to_parse("empty command"))?;
    let Bson::String(coll) = value else {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("{name}: collection name has invalid type {}", type_name(value)),
        ));
    };
    validate_collection_name(coll)?;
    Ok(Namespace::new(db, coll))
}

pub fn validate_db_name(db: &str) -> Result<()> {
    if db.is_empty() || db.len() > 63 || db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("Invalid database name: '{db}'"),
        ));
    }
    Ok(())
}

pub fn validate_collection_name(coll: &str) -> Result<()> {
    if coll.is_empty() || coll.contains('\0') || coll.starts_with('.') || (coll.contains('$') && coll != "oplog.$main")
    {
        return Err(Error::new(
            code::INVALID_NAMESPACE,
            format!("Invalid collection name: '{coll}'"),
        ));
    }
    Ok(())
}

/// MongoDB's name of a BSON value's type.
pub fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}
