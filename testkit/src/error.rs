//! The one error of the kit.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong starting, asking or stopping a server.
#[derive(thiserror::Error)]
pub enum Error {
    /// A tool or a build output is not there; `hint` is the command that provides it.
    #[error("{what} is missing at {}: {hint}", path.display())]
    Missing {
        what: String,
        path: PathBuf,
        hint: String,
    },
    /// A command or a file operation failed at the OS level.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A command ran and failed; its output follows.
    #[error("{what} failed ({status}):\n{output}")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    /// A server exited while we waited for it; its log follows.
    #[error("{what} exited ({status}); its log:\n{log}")]
    Exited {
        what: String,
        status: std::process::ExitStatus,
        log: String,
    },
    /// A condition did not hold before the deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// A server answered something we cannot read.
    #[error("{what}: {detail}")]
    Unexpected { what: String, detail: String },
}

/// The kit's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message itself, so that a test's `unwrap()` prints it as written (logs with their lines).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// An `Io` error about `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
