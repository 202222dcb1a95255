//! `replay`: where the fleet's replay claims live (Redis).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// `replay`: where the fleet's replay claims live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    /// `redis://host:port[/db]` or `redis+unix:///path` (no password: see `password_file`).
    pub redis_url: String,
    /// A file holding the Redis password (AUTH), if Redis requires one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The keys' prefix (`<prefix>:n:<nonce>`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// How long a claim may take before it is answered 503.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The validated `replay`.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub redis_url: String,
    pub password_file: Option<PathBuf>,
    pub key_prefix: String,
    pub timeout: Duration,
}

/// Default of `replay.timeout_ms`.
pub const DEFAULT_REPLAY_TIMEOUT_MS: u64 = 100;

impl TryFrom<RawReplay> for ReplayConfig {
    type Error = Error;

    fn try_from(raw: RawReplay) -> Result<ReplayConfig, Error> {
        let url = raw.redis_url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("redis" | "redis+unix" | "unix") => {}
            Some("rediss") => {
                return Err(Error::config(
                    "replay.redis_url",
                    url,
                    "TLS to Redis is not built in: reach Redis over a unix socket or a private network (docs/FLEET.md)",
                ));
            }
            _ => {
                return Err(Error::config(
                    "replay.redis_url",
                    url,
                    "expected redis://host:port[/db] or redis+unix:///path",
                ));
            }
        }
        // A password in the URL would be logged by anyone printing the configuration.
        if let Some((_, rest)) = url.split_once("://")
            && rest
                .split('/')
                .next()
                .is_some_and(|authority| authority.contains('@'))
        {
            return Err(Error::config(
                "replay.redis_url",
                "<redacted: the URL carries credentials>",
                "put the password in replay.password_file, not in the URL",
            ));
        }
        let key_prefix = raw.key_prefix.unwrap_or_else(|| "autoid".to_owned());
        if key_prefix.is_empty()
            || key_prefix.len() > 64
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(Error::config(
                "replay.key_prefix",
                format!("{key_prefix:?}"),
                "1 to 64 characters of A-Z a-z 0-9 _ - . :",
            ));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_REPLAY_TIMEOUT_MS);
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(Error::config(
                "replay.timeout_ms",
                timeout_ms,
                "must be between 1 and 10000",
            ));
        }
        Ok(ReplayConfig {
            redis_url: url.to_owned(),
            password_file: raw.password_file,
            key_prefix,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}
