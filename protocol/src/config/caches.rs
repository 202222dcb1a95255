//! The caches' sizes and lifetimes: session keys, hot subjects' entropy files, the credentials
//! the agent supplies.

use super::check::positive;
use super::error::{ConfigError, err};
use super::raw::{RawCredentials, RawEntropyCache, RawSessionCache};

/// The session-key cache: a direct-mapped table in shared data, plus a small per-worker map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCacheConfig {
    /// Shared-data slots (each one key): the cross-worker bound.
    pub max_entries: u32,
    /// Entries of each worker's local map before it is cleared.
    pub local_max_entries: u32,
}

/// Hot subjects' whole entropy files, kept per worker so a warm proof reads its intervals from
/// memory instead of running the AES stream: bounded by `files` (memory = files × file size per
/// worker, whatever the number of clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyCacheConfig {
    /// Files each worker may keep (0: never materialize; streams only).
    pub files: u32,
    /// Verified proofs a subject needs within one second before its file is materialized.
    pub min_proofs_per_second: u32,
    /// Subjects' streams each worker keeps (derived locally or handed over by the agent); when
    /// full, all are dropped.
    pub max_streams: u32,
}

/// Default of `entropy_cache.max_streams`.
pub const DEFAULT_MAX_STREAMS: u32 = 1024;

/// Largest memory the entropy-file cache may take per worker.
pub const MAX_ENTROPY_CACHE_BYTES: u64 = 256 << 20;

/// How the filter caches the credentials the agent supplies (`apis.*.agent_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// A cached value this close to its expiry is refreshed in the background (the root
    /// context's tick), while requests keep using it.
    pub refresh_ahead_secs: u64,
    /// When the agent fails, an expired value is still served this long past its expiry; then
    /// requests get 503 `credentials`.
    pub stale_secs: u64,
}

/// `session_cache`.
pub(super) fn session_cache(raw: &RawSessionCache) -> Result<SessionCacheConfig, ConfigError> {
    let session_cache = SessionCacheConfig {
        max_entries: positive("session_cache.max_entries", raw.max_entries, 4096, 1 << 20)?,
        local_max_entries: positive(
            "session_cache.local_max_entries",
            raw.local_max_entries,
            1024,
            1 << 16,
        )?,
    };
    Ok(session_cache)
}

/// `entropy_cache`, bounded by the largest entropy file it may hold.
pub(super) fn entropy_cache(
    raw: &RawEntropyCache,
    largest: u64,
) -> Result<EntropyCacheConfig, ConfigError> {
    let entropy_cache = EntropyCacheConfig {
        files: raw.files.unwrap_or(4),
        min_proofs_per_second: positive(
            "entropy_cache.min_proofs_per_second",
            raw.min_proofs_per_second,
            20,
            1_000_000,
        )?,
        max_streams: positive(
            "entropy_cache.max_streams",
            raw.max_streams,
            DEFAULT_MAX_STREAMS,
            1 << 16,
        )?,
    };
    if u64::from(entropy_cache.files).saturating_mul(largest) > MAX_ENTROPY_CACHE_BYTES {
        return Err(err(
            "entropy_cache.files",
            format!(
                "{} files of up to {largest} bytes exceed the {} MiB per-worker cap",
                entropy_cache.files,
                MAX_ENTROPY_CACHE_BYTES >> 20
            ),
        ));
    }

    Ok(entropy_cache)
}

/// `credentials`: how the agent-supplied values are refreshed and served stale.
pub(super) fn credentials(raw: &RawCredentials) -> Result<CredentialsConfig, ConfigError> {
    let credentials = CredentialsConfig {
        refresh_ahead_secs: raw.refresh_ahead_secs.unwrap_or(10),
        stale_secs: raw.stale_secs.unwrap_or(300),
    };
    if credentials.refresh_ahead_secs > 3600 {
        return Err(err(
            "credentials.refresh_ahead_secs",
            format!(
                "{} is out of range (0 to 3600)",
                credentials.refresh_ahead_secs
            ),
        ));
    }
    if credentials.stale_secs > 86_400 {
        return Err(err(
            "credentials.stale_secs",
            format!("{} is out of range (0 to 86400)", credentials.stale_secs),
        ));
    }

    Ok(credentials)
}
