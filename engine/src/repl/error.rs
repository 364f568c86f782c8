//! `ReplError`: the one error type of the replica-set layer, carrying MongoDB's numeric code and code name so
//! that the command layer can render it as `{ok: 0, errmsg, code, codeName}` unchanged.

/// An error from the replica-set layer, shaped like a MongoDB server error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code_name} ({code}): {message}")]
pub struct ReplError {
    /// MongoDB's numeric error code (`code`).
    pub code: i32,
    /// MongoDB's symbolic error name (`codeName`).
    pub code_name: &'static str,
    /// Human-readable explanation (`errmsg`).
    pub message: String,
}

impl ReplError {
    /// Builds an error from its parts.
    pub fn new(code: i32, code_name: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            code_name,
            message: message.into(),
        }
    }

    /// 9 FailedToParse: a replication message or field could not be read.
    pub fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(9, "FailedToParse", message)
    }

    /// 23 AlreadyInitialized: `replSetInitiate` on a member that already has a config.
    pub fn already_initialized(message: impl Into<String>) -> Self {
        Self::new(23, "AlreadyInitialized", message)
    }

    /// 74 NodeNotFound: this member is not in the config, or a named member does not exist.
    pub fn node_not_found(message: impl Into<String>) -> Self {
        Self::new(74, "NodeNotFound", message)
    }

    /// 93 InvalidReplicaSetConfig: a config that breaks one of MongoDB's rules.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(93, "InvalidReplicaSetConfig", message)
    }

    /// 94 NotYetInitialized: a replica-set command before `replSetInitiate`.
    pub fn not_yet_initialized(message: impl Into<String>) -> Self {
        Self::new(94, "NotYetInitialized", message)
    }

    /// 95 NotSecondary: e.g. `replSetFreeze` on a primary.
    pub fn not_secondary(message: impl Into<String>) -> Self {
        Self::new(95, "NotSecondary", message)
    }

    /// 103 NewReplicaSetConfigurationIncompatible: a reconfig that is not a safe successor of the old config.
    pub fn incompatible_config(message: impl Into<String>) -> Self {
        Self::new(103, "NewReplicaSetConfigurationIncompatible", message)
    }

    /// 109 ConfigurationInProgress: a reconfig while the previous config is not yet committed.
    pub fn configuration_in_progress(message: impl Into<String>) -> Self {
        Self::new(109, "ConfigurationInProgress", message)
    }

    /// 262 ExceededTimeLimit: e.g. no secondary caught up within `secondaryCatchUpPeriodSecs`.
    pub fn exceeded_time_limit(message: impl Into<String>) -> Self {
        Self::new(262, "ExceededTimeLimit", message)
    }

    /// 10107 NotWritablePrimary: an operation that needs the primary ran elsewhere.
    pub fn not_writable_primary(message: impl Into<String>) -> Self {
        Self::new(10107, "NotWritablePrimary", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_and_message() {
        let error = ReplError::invalid_config("no voting members");
        assert_eq!(error.code, 93);
        assert_eq!(error.to_string(), "InvalidReplicaSetConfig (93): no voting members");
    }

    #[test]
    fn constructors_use_mongodb_codes() {
        assert_eq!(ReplError::incompatible_config("x").code, 103);
        assert_eq!(ReplError::exceeded_time_limit("x").code, 262);
        assert_eq!(ReplError::not_writable_primary("x").code_name, "NotWritablePrimary");
        assert_eq!(ReplError::not_secondary("x").code, 95);
    }
}
