//! The errors of rendering: only I/O on the run directory and drawing itself can fail.

use std::path::PathBuf;

use thiserror::Error;

/// Why a report or plot could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The run directory does not exist or is not a directory.
    #[error("{0} is not a run directory")]
    NotADirectory(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// plotters failed to draw or encode a plot.
    #[error("plot {name}: {message}")]
    Plot {
        /// The plot's file stem.
        name: String,
        /// plotters' error text.
        message: String,
    },
}

impl ReportError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}
