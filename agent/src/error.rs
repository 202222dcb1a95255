//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the agent library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be parsed (serde's message names the field).
    #[error("config file {file}: {source}")]
    ConfigParse {
        file: PathBuf,
        source: serde_json::Error,
    },
    /// A configuration value is invalid; `path` is the field path (`ldap.pool_size`).
    #[error("{path}: {reason} (value: {value})")]
    Config {
        path: String,
        value: String,
        reason: String,
    },
    /// A file named by the configuration could not be read.
    #[error("cannot read {what} from {}: {source}", file.display())]
    ReadFile {
        what: &'static str,
        file: PathBuf,
        source: std::io::Error,
    },
    /// A secret is missing or unusable (the message never contains the secret).
    #[error("{0}")]
    Secret(String),
    /// The listen address cannot be used (a live agent on the socket, a file in the way, …).
    #[error("listen {listen}: {reason}")]
    Listen { listen: String, reason: String },
    /// The CA file or TLS settings are unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// The agent's own threads could not be started.
    #[error("cannot start the {what} threads: {source}")]
    Threads {
        what: &'static str,
        source: std::io::Error,
    },
    /// The directory could not be reached, timed out, or dropped the connection.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory answered with an LDAP error result.
    #[error("directory error during {op}: {source}")]
    Ldap {
        op: &'static str,
        source: Box<ldap3::LdapError>,
    },
}

impl Error {
    pub(crate) fn ldap(op: &'static str, source: ldap3::LdapError) -> Self {
        Error::Ldap {
            op,
            source: Box::new(source),
        }
    }

    pub(crate) fn config(
        path: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
