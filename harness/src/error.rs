//! The harness's errors, in one place. A `HarnessError` means the harness could not
//! run (exit code 2); a broken contract is never an error, it is a finding.

/// What kind of thing could not be done.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
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
}

/// Why the harness could not run, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HarnessError {
    /// The kind.
    pub kind: HarnessErrorKind,
    /// The message.
    pub message: String,
}

impl HarnessError {
    /// An error of `kind` with `message`.
    pub fn new(kind: HarnessErrorKind, message: impl Into<String>) -> HarnessError {
        HarnessError {
            kind,
            message: message.into(),
        }
    }
}
