//! Errors every subcommand may return: a [`UsageError`] is a bad flag, config file or argument.

/// A bad flag, config file or argument: exit code 254, as Jepsen does.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Exit code for bad arguments or unreadable input (Jepsen's).
pub const BAD_ARGUMENTS: i32 = 254;
