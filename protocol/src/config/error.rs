//! The configuration error: the field path and what is wrong with which value.

/// A configuration error: where, and what is wrong with which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The field path, `apis.payments.require.any_of[0]`.
    pub path: String,
    /// What is wrong, quoting the value unless it is a secret.
    pub message: String,
}

pub(super) fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}
