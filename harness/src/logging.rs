//! Logging set-up for `faultline node`: `tracing` to standard error or to a log file, filtered by `RUST_LOG`
//! (default: `info`, or debug/trace from `systemLog.verbosity`).
//!
//! Colour codes only when standard error is a terminal; a log file never gets them. Unless asked to append
//! (`--logappend`, `systemLog.logAppend: true`), an existing log file is first renamed `<path>.<timestamp>`,
//! as mongod does.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// Keeps the log file open for the life of the process.
pub struct LogGuard;

/// Where and how much to log.
pub struct LogSettings<'a> {
    /// The log file; standard error without one.
    pub path: Option<&'a Path>,
    /// Append to an existing log file instead of moving it aside.
    pub append: bool,
    /// mongod's verbosity: 0 info, 1 debug, 2 and more trace (when `RUST_LOG` is unset).
    pub verbosity: u32,
}

pub fn init(settings: &LogSettings<'_>) -> anyhow::Result<LogGuard> {
    let default_level = match settings.verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match settings.path {
        Some(path) => {
            let file = open_log_file(path, settings.append)?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).try_init().ok();
        }
        None => {
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init()
                .ok();
        }
    }
    Ok(LogGuard)
}

/// Opens the log file for appending, creating its directory; without `append`, an existing file is first
/// renamed aside (see [`rotated_name`]).
pub fn open_log_file(path: &Path, append: bool) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }
    if !append && path.exists() {
        let aside = rotated_name(path, &bson::DateTime::now());
        std::fs::rename(path, &aside).with_context(|| {
            format!(
                "cannot rename the old log file {} to {}",
                path.display(),
                aside.display()
            )
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// `<path>.<UTC time as YYYY-MM-DDTHH-MM-SS>` (mongod's name for a log moved aside), with `-N` added if a
/// file of that name exists already.
pub fn rotated_name(path: &Path, now: &bson::DateTime) -> PathBuf {
    let stamp: String = now
        .try_to_rfc3339_string()
        .unwrap_or_default()
        .chars()
        .take(19)
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    let base = PathBuf::from(name);
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        let mut name = base.as_os_str().to_owned();
        name.push(format!("-{n}"));
        candidate = PathBuf::from(name);
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn without_append_the_old_log_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs").join("m.log");
        let mut first = open_log_file(&path, false).expect("a new log");
        writeln!(first, "first run").expect("write");
        drop(first);

        let mut second = open_log_file(&path, true).expect("append");
        writeln!(second, "second run").expect("write");
        drop(second);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first run\nsecond run\n");

        let third = open_log_file(&path, false).expect("rotate");
        drop(third);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "", "a fresh log");
        let aside: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p != &path)
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read_to_string(&aside[0]).expect("read"),
            "first run\nsecond run\n"
        );
    }

    #[test]
    fn rotated_names_are_mongods_and_never_clobber() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.log");
        let when = bson::DateTime::from_millis(1_700_000_000_123);
        let name = rotated_name(&path, &when);
        assert_eq!(name, dir.path().join("m.log.2023-11-14T22-13-20"));
        std::fs::write(&name, "taken").expect("write");
        assert_eq!(
            rotated_name(&path, &when),
            dir.path().join("m.log.2023-11-14T22-13-20-1")
        );
    }
}
