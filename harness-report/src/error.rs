//! The one error type of the reporters and gates.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

/// What went wrong while writing a report or loading a gate file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportErrorKind {
    /// Reading or writing a file or directory failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
    },
    /// A report could not be serialized.
    Serialize {
        /// The format, e.g. `summary.json`.
        format: &'static str,
    },
    /// The terminal could not be written.
    Terminal,
    /// The event stream ended a run it never started (a runner bug).
    NotStarted,
    /// A baseline file is not valid TOML of the expected shape.
    Baseline {
        /// The baseline file.
        path: PathBuf,
    },
}

impl fmt::Display for ReportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportErrorKind::Io { path } => write!(f, "cannot write or read {}", path.display()),
            ReportErrorKind::Serialize { format } => write!(f, "cannot serialize {format}"),
            ReportErrorKind::Terminal => f.write_str("cannot write to the terminal"),
            ReportErrorKind::NotStarted => f.write_str("the run finished without starting"),
            ReportErrorKind::Baseline { path } => {
                write!(f, "baseline {} is malformed", path.display())
            }
        }
    }
}

/// An error of a reporter or gate: its [`ReportErrorKind`] and the underlying cause.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct ReportError {
    kind: ReportErrorKind,
    #[source]
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl ReportError {
    pub(crate) fn new(
        kind: ReportErrorKind,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> ReportError {
        ReportError {
            kind,
            source: source.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ReportError {
        ReportError::new(ReportErrorKind::Io { path: path.into() }, source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &ReportErrorKind {
        &self.kind
    }
}
