//! Logging set-up: `tracing` to standard error or to a log file, filtered by `RUST_LOG` (default `info`).

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// Keeps the log file open for the life of the process.
pub struct LogGuard;

pub fn init(logpath: Option<&Path>) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match logpath {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create log directory {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).try_init().ok();
        }
        None => {
            builder.with_writer(std::io::stderr).try_init().ok();
        }
    }
    Ok(LogGuard)
}
