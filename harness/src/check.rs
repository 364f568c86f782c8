//! `faultline check`: the command-line front of the checker library.

/// Flags of `faultline check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The history file to check.
    pub history: std::path::PathBuf,
}

/// Runs `faultline check` and returns the process exit code (0 valid, 1 invalid, 2 unknown).
pub fn run(_args: &CheckArgs) -> anyhow::Result<i32> {
    anyhow::bail!("faultline check is not implemented yet")
}
