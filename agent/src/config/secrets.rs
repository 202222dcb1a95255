//! The two secrets (the bearer token, the service-account password): from files named in the
//! config or by flags, or from environment variables, never from command-line values.

use std::path::Path;

use super::Config;
use crate::error::Error;

/// Environment variable holding the bearer token when no token file is configured.
pub const TOKEN_ENV: &str = "AUTOID_BRIDGE_TOKEN";
/// Environment variable holding the service-account password when no file is configured.
pub const BIND_PASSWORD_ENV: &str = "AUTOID_BRIDGE_BIND_PASSWORD";
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
            None => std::env::var(TOKEN_ENV).ok(),
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
                     the config, --token-file, or {TOKEN_ENV}",
                    config.listen
                )));
            }
            None => None,
        };
        let bind_password = match bind_password_file.or(config.ldap.bind_password_file.as_deref()) {
            Some(f) => read_secret("bind password", f)?,
            None => std::env::var(BIND_PASSWORD_ENV).map_err(|_| {
                Error::Secret(format!(
                    "no bind password: set ldap.bind_password_file, --bind-password-file, or {BIND_PASSWORD_ENV}"
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
