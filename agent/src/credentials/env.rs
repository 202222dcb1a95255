//! `{"env": "NAME"}`: an environment variable of the agent's process.

use super::{Source, SourceError};
use crate::error::Error;

/// An environment variable, read at every refresh.
#[derive(Debug)]
pub struct EnvSource {
    name: String,
}

impl EnvSource {
    /// Checks the variable's name (`at` is the field path, for the error).
    pub fn new(at: &str, name: String) -> Result<EnvSource, Error> {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(Error::config(
                at,
                format!("{name:?}"),
                "not an environment variable name",
            ));
        }
        Ok(EnvSource { name })
    }
}

impl Source for EnvSource {
    fn describe(&self) -> String {
        format!("env:{}", self.name)
    }

    fn fetch(&self) -> Result<String, SourceError> {
        std::env::var(&self.name)
            .map_err(|_| SourceError(format!("{} is not set (or not UTF-8)", self.name)))
    }
}
