//! The error type of the query language, carrying MongoDB's numeric code and code name.
use std::fmt::Display;

/// A query-language error: what MongoDB would reply as `{ok: 0, code, codeName, errmsg}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub code: i32,
    pub code_name: &'static str,
    pub message: String,
}

impl QueryError {
    pub fn new(code: i32, code_name: &'static str, message: impl Display) -> Self {
        QueryError {
            code,
            code_name,
            message: message.to_string(),
        }
    }

    /// Code 2.
    pub fn bad_value(message: impl Display) -> Self {
        Self::new(2, "BadValue", message)
    }

    /// Code 9.
    pub fn failed_to_parse(message: impl Display) -> Self {
        Self::new(9, "FailedToParse", message)
    }

    /// Code 14.
    pub fn type_mismatch(message: impl Display) -> Self {
        Self::new(14, "TypeMismatch", message)
    }

    /// Code 15.
    pub fn overflow(message: impl Display) -> Self {
        Self::new(15, "Overflow", message)
    }

    /// Code 15, MongoDB's storage-validation wording: a document nested past
    /// [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH).
    pub fn document_too_deep() -> Self {
        Self::overflow(format!(
            "Document exceeds maximum nesting depth of {}",
            crate::depth::MAX_DOCUMENT_DEPTH
        ))
    }

    /// Code 15, MongoDB's `FieldPath` wording: a path with more than
    /// [`MAX_BSON_DEPTH`](crate::depth::MAX_BSON_DEPTH) parts.
    pub fn field_path_too_long() -> Self {
        Self::overflow("FieldPath is too long")
    }

    /// Code 5729100: a query filter path with more parts than
    /// [`MAX_DOCUMENT_DEPTH`](crate::depth::MAX_DOCUMENT_DEPTH) (MongoDB's match expression parser).
    pub fn match_path_too_long() -> Self {
        Self::location(5729100, "FieldPath is too long")
    }

    /// Code 28.
    pub fn path_not_viable(message: impl Display) -> Self {
        Self::new(28, "PathNotViable", message)
    }

    /// Code 40.
    pub fn conflicting_update(message: impl Display) -> Self {
        Self::new(40, "ConflictingUpdateOperators", message)
    }

    /// Code 52.
    pub fn dollar_prefixed(message: impl Display) -> Self {
        Self::new(52, "DollarPrefixedFieldName", message)
    }

    /// Code 56.
    pub fn empty_field_name(message: impl Display) -> Self {
        Self::new(56, "EmptyFieldName", message)
    }

    /// Code 66.
    pub fn immutable_field(message: impl Display) -> Self {
        Self::new(66, "ImmutableField", message)
    }

    /// Code 168: an unknown aggregation expression operator.
    pub fn invalid_pipeline_operator(message: impl Display) -> Self {
        Self::new(168, "InvalidPipelineOperator", message)
    }

    /// A "location" code (an assertion site number in mongod), whose code name is `Location<code>`.
    pub fn location(code: i32, message: impl Display) -> Self {
        Self::new(code, location_name(code), message)
    }
}

/// The code names mongod reports for the assertion-site codes this module uses.
fn location_name(code: i32) -> &'static str {
    match code {
        15952 => "Location15952",
        15955 => "Location15955",
        15956 => "Location15956",
        15958 => "Location15958",
        15973 => "Location15973",
        15974 => "Location15974",
        15975 => "Location15975",
        15976 => "Location15976",
        16410 => "Location16410",
        16554 => "Location16554",
        16555 => "Location16555",
        16608 => "Location16608",
        16869 => "Location16869",
        16870 => "Location16870",
        16871 => "Location16871",
        16610 => "Location16610",
        28818 => "Location28818",
        31250 => "Location31250",
        31252 => "Location31252",
        31253 => "Location31253",
        31254 => "Location31254",
        40228 => "Location40228",
        40234 => "Location40234",
        40235 => "Location40235",
        40236 => "Location40236",
        40238 => "Location40238",
        40323 => "Location40323",
        40324 => "Location40324",
        40352 => "Location40352",
        40353 => "Location40353",
        51091 => "Location51091",
        51108 => "Location51108",
        3040500 => "Location3040500",
        5729100 => "Location5729100",
        _ => "Location",
    }
}
