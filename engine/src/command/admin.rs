//! Profiler and user-management reads that mongosh sends: `profile` (the engine has no profiler: level 0,
//! off, is the only level), `usersInfo` and `rolesInfo` (the engine has no users and no roles, so both
//! lists are empty).

use bson::{Bson, Document, doc};

use super::Context;
use crate::error::{Error, Result};

const COMMAND_NOT_SUPPORTED: (i32, &str) = (115, "CommandNotSupported");

/// `profile`: `-1` (read) and `0` (off) answer mongod's status; turning the profiler on, or changing its
/// settings, is refused.
pub fn profile(ctx: &Context<'_>) -> Result<Document> {
    let level = ctx
        .body
        .get("profile")
        .and_then(crate::bsonx::as_i64)
        .ok_or_else(|| Error::type_mismatch("BSON field 'profile' is the wrong type, expected a number"))?;
    match level {
        -1 | 0 => {}
        1 | 2 => {
            return Err(Error::new(
                COMMAND_NOT_SUPPORTED,
                format!(
                    "profiling level {level} is not supported by the Faultline engine: it has no profiler (only level 0, off)"
                ),
            ));
        }
        other => {
            return Err(Error::bad_value(format!(
                "Invalid profiling level: {other}; the level must be -1, 0, 1 or 2"
            )));
        }
    }
    for setting in ["slowms", "sampleRate", "filter"] {
        if ctx.body.contains_key(setting) {
            return Err(Error::new(
                COMMAND_NOT_SUPPORTED,
                format!("profiler setting '{setting}' is not supported by the Faultline engine: it has no profiler"),
            ));
        }
    }
    Ok(doc! {"was": 0, "slowms": 100, "sampleRate": 1.0})
}

/// `usersInfo` in any of its forms (`1`, a name, `{user, db}`, a list of them, `{forAllDBs: true}`).
pub fn users_info(ctx: &Context<'_>) -> Result<Document> {
    check_selector(ctx.body, "usersInfo", "user")?;
    Ok(doc! {"users": Vec::<Bson>::new()})
}

/// `rolesInfo` in any of its forms (`1`, a name, `{role, db}`, a list of them).
pub fn roles_info(ctx: &Context<'_>) -> Result<Document> {
    check_selector(ctx.body, "rolesInfo", "role")?;
    Ok(doc! {"roles": Vec::<Bson>::new()})
}

/// Checks the selector's type as mongod parses it.
fn check_selector(body: &Document, command: &str, field: &str) -> Result<()> {
    let valid = |value: &Bson| match value {
        Bson::String(_) => true,
        Bson::Document(d) => d.get_str(field).is_ok() || d.contains_key("forAllDBs"),
        other => crate::bsonx::as_i64(other) == Some(1),
    };
    let ok = match body.get(command) {
        Some(Bson::Array(items)) => items
            .iter()
            .all(|i| matches!(i, Bson::String(_) | Bson::Document(_)) && valid(i)),
        Some(value) => valid(value),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::bad_value(format!(
            "{command} must be 1, a string naming a {field}, a document {{{field}: <name>, db: <db>}} or an array of them"
        )))
    }
}
