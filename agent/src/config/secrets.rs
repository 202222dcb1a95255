//! The two secrets (the bearer token, the service-account password): from files named in the
//! config or by flags, or from environment variables, never from command-line values.

use std::path::Path;

use super::Config;
use crate::env;
use crate::error::Error;

/// Shortest bearer token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The two secrets. `Debug` never prints them.
#[derive(Clone)]
pub struct Secrets {
    /// The bearer token; `None` only on a unix socket with no token configured.
    pub token: Option<String>,
    pub bind_password: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { token: <redacted>, bind_password: <redacted> }")
    }
}

pub(crate) fn read_secret(what: &'static str, file: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::ReadFile {
        what,
        file: file.to_owned(),
        source,
    })?;
    // One trailing newline (from `echo secret > file`) is not part of the secret.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

impl Secrets {
    /// Loads the secrets: a file given here (from a flag) wins over the config's file, which wins
    /// over the environment variable. On a unix socket the token is optional (the socket's
    /// permissions authenticate the caller); on TCP it is required.
    pub fn load(
        config: &Config,
        token_file: Option<&Path>,
        bind_password_file: Option<&Path>,
    ) -> Result<Secrets, Error> {
        let token = match token_file.or(config.token_file.as_deref()) {
            Some(f) => Some(read_secret("bearer token", f)?),
            None => env::TOKEN.get(),
        };
        let token = match token {
            Some(t) => {
                let t = t.trim().to_owned();
                if t.len() < MIN_TOKEN_LEN {
                    return Err(Error::Secret(format!(
                        "the bearer token is too short ({} bytes, need at least {MIN_TOKEN_LEN})",
                        t.len()
                    )));
                }
                Some(t)
            }
            None if config.listen.needs_token() => {
                return Err(Error::Secret(format!(
                    "no bearer token, and listen {} is TCP, which needs one: set token_file in \
                     the config, --token-file, or {}",
                    config.listen,
                    env::TOKEN.name
                )));
            }
            None => None,
        };
        let bind_password = match bind_password_file.or(config.ldap.bind_password_file.as_deref()) {
            Some(f) => read_secret("bind password", f)?,
            None => env::BIND_PASSWORD.get().ok_or_else(|| {
                Error::Secret(format!(
                    "no bind password: set ldap.bind_password_file, --bind-password-file, or {}",
                    env::BIND_PASSWORD.name
                ))
            })?,
        };
        if bind_password.is_empty() {
            // An empty password would make the service-account bind an unauthenticated bind.
            return Err(Error::Secret("the bind password is empty".into()));
        }
        Ok(Secrets {
            token,
            bind_password,
        })
    }
}
