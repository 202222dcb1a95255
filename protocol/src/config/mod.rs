//! The filter's configuration: a raw serde shape (`deny_unknown_fields`), then
//! `TryFrom<RawConfig> for Config`, whose errors name the field path and the bad value.
//!
//! One module per section (`keys`, `callout`, `caches`, `cold_path`, `replay`, `api`), the raw
//! shapes in `raw`, the shared field checks in `check`.
//!
//! Every field, its default and an example: `docs/CONFIG.md`.

use std::collections::BTreeMap;

use crate::header::DEFAULT_HEADER;
use crate::verify::{Keyring, Limits};

mod api;
mod caches;
mod callout;
mod check;
mod cold_path;
mod error;
mod keys;
mod raw;
mod raw_callout;
mod replay;

pub use api::{
    Api, Basic, DEFAULT_BASIC_CACHE_TTL_SECS, MAX_BASIC_CACHE_TTL_SECS, MAX_REALM_LEN, PlainHttp,
    Require,
};
pub use caches::{
    CredentialsConfig, DEFAULT_MAX_STREAMS, EntropyCacheConfig, MAX_ENTROPY_CACHE_BYTES,
    SessionCacheConfig,
};
pub use callout::{
    Agent, Callout, DEFAULT_AGENT_SESSION_TTL_SECS, DEFAULT_MAX_STREAM_TTL_SECS, Directory, Groups,
};
pub use cold_path::ColdPath;
pub use error::ConfigError;
use error::err;
pub use raw::RawConfig;
pub use replay::{DEFAULT_FLEET_TIMEOUT_MS, FleetFailure, ReplayConfig, ReplayScope};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The proof header's name (lowercase).
    pub proof_header: String,
    /// The agent that unwraps sessions for the key ids the filter holds no private key for.
    pub agent: Option<Agent>,
    /// Keys and epochs.
    pub keyring: Keyring,
    /// Skew and session lifetime.
    pub limits: Limits,
    /// Session-key cache sizes.
    pub session_cache: SessionCacheConfig,
    /// Cold-path rate limit.
    pub cold_path: ColdPath,
    /// Replay cache sizes.
    pub replay: ReplayConfig,
    /// Hot subjects' entropy files.
    pub entropy_cache: EntropyCacheConfig,
    /// Where groups come from.
    pub groups: Groups,
    /// The agent-supplied credentials' cache.
    pub credentials: CredentialsConfig,
    /// API definitions by route name.
    pub apis: BTreeMap<String, Api>,
}

impl Config {
    /// Parses and validates JSON bytes (the filter's plugin configuration).
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
            err(
                format!("(json line {} column {})", e.line(), e.column()),
                e.to_string(),
            )
        })?;
        Config::try_from(raw)
    }

    /// Every header name the filter may inject on any API (removed from client requests on
    /// every path, before any early return).
    pub fn all_managed_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .apis
            .values()
            .flat_map(|api| api.managed_headers().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let proof_header = check::header_name(
            "proof_header",
            raw.proof_header.as_deref().unwrap_or(DEFAULT_HEADER),
        )?;

        let any_agent_key = raw.agent.as_ref().is_some_and(|a| a.own.any_key);
        if raw.keys.is_empty() && !any_agent_key {
            return Err(err(
                "keys",
                "at least one key is required (or `agent.any_key: true`)",
            ));
        }
        let agent = callout::agent(raw.agent)?;
        let (keyring, largest_file) =
            keys::keyring(&raw.keys, &raw.epochs, any_agent_key, agent.as_ref())?;
        let limits = keys::limits(&raw.limits)?;
        let session_cache = caches::session_cache(&raw.session_cache)?;
        let cold_path = cold_path::cold_path(&raw.cold_path)?;
        let replay = replay::replay(raw.replay, agent.is_some())?;
        let groups = callout::groups(raw.directory, raw.static_groups)?;
        let apis = api::apis(raw.apis, &proof_header, agent.is_some())?;
        let entropy_cache = caches::entropy_cache(&raw.entropy_cache, largest_file)?;
        let credentials = caches::credentials(&raw.credentials)?;

        Ok(Config {
            proof_header,
            keyring,
            agent,
            limits,
            session_cache,
            cold_path,
            replay,
            entropy_cache,
            groups,
            credentials,
            apis,
        })
    }
}
