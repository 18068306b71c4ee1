//! The harness's errors, in one place. A `HarnessError` means the harness could not
//! run (exit code 2); a broken contract is never an error, it is a finding.

/// What kind of thing could not be done.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HarnessErrorKind {
    /// A profile file is missing or malformed.
    Profile,
    /// A scenario file is missing or malformed.
    Scenario,
    /// The target could not be reached or refused a setup request.
    Target,
    /// The embedded reference server or a target command failed to start.
    Server,
    /// Writing reports failed.
    Report,
    /// Bad command-line usage.
    Usage,
    /// Local I/O failed.
    Io,
    /// A signal (Ctrl-C, SIGTERM) stopped the run before its scenarios began.
    Interrupted,
}

/// Why the harness could not run, in one line (and the error that caused it, if any).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HarnessError {
    /// The kind.
    pub kind: HarnessErrorKind,
    /// The message.
    pub message: String,
    /// The underlying error, kept for `{:#}` chains and `source()`.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl HarnessError {
    /// An error of `kind` with `message`.
    pub fn new(kind: HarnessErrorKind, message: impl Into<String>) -> HarnessError {
        HarnessError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> HarnessError {
        self.source = Some(Box::new(source));
        self
    }
}
