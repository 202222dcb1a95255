//! The lines guests log.

use crate::abi::LogLevel;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// `proxy_log`.
    Proxy,
    /// A line the guest wrote to stdout (WASI `fd_write` on fd 1).
    Stdout,
    /// A line the guest wrote to stderr (WASI `fd_write` on fd 2), e.g. a panic message.
    Stderr,
}

/// One line the guest logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The level (`Info` for stdout, `Error` for stderr).
    pub level: LogLevel,
    /// The worker whose VM logged it.
    pub worker: usize,
    /// The message, without a trailing newline.
    pub message: String,
    /// Where it came from.
    pub source: LogSource,
}
