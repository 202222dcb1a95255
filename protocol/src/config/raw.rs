//! The configuration's raw JSON shapes (`deny_unknown_fields`): what serde reads, before any
//! check.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::raw_callout::{RawAgent, RawDirectory};

/// The raw JSON shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub(super) proof_header: Option<String>,
    #[serde(default)]
    pub(super) keys: Vec<RawKey>,
    #[serde(default)]
    pub(super) epochs: Vec<RawEpoch>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) session_cache: RawSessionCache,
    #[serde(default)]
    pub(super) cold_path: RawColdPath,
    #[serde(default)]
    pub(super) replay: RawReplay,
    #[serde(default)]
    pub(super) entropy_cache: RawEntropyCache,
    #[serde(default)]
    pub(super) directory: Option<RawDirectory>,
    #[serde(default)]
    pub(super) agent: Option<RawAgent>,
    #[serde(default)]
    pub(super) static_groups: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub(super) credentials: RawCredentials,
    #[serde(default)]
    pub(super) apis: BTreeMap<String, RawApi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    #[serde(default)]
    pub(super) refresh_ahead_secs: Option<u64>,
    #[serde(default)]
    pub(super) stale_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) kid: String,
    /// Refused when present (the agent holds the private key): parsed only so that the error
    /// names the field.
    #[serde(default)]
    pub(super) private_key_pem: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEpoch {
    #[serde(default)]
    pub(super) autoid_epoch: Option<u32>,
    pub(super) id: String,
    /// Refused when present (the agent holds the secret): parsed only so that the error names
    /// the field.
    #[serde(default)]
    pub(super) secret: Option<String>,
    #[serde(default)]
    pub(super) file_size: Option<u64>,
    #[serde(default)]
    pub(super) interval_count: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_skew_secs: Option<u64>,
    pub(super) session_lifetime_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionCache {
    pub(super) max_entries: Option<u32>,
    pub(super) local_max_entries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColdPath {
    pub(super) unwraps_per_second: Option<u32>,
    pub(super) burst: Option<u32>,
    pub(super) per_source_unwraps_per_second: Option<u32>,
    pub(super) per_source_burst: Option<u32>,
    pub(super) checked_unwraps_per_second: Option<u32>,
    pub(super) checked_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplay {
    pub(super) buckets: Option<u32>,
    pub(super) slots_per_bucket: Option<u32>,
    pub(super) scope: Option<String>,
    pub(super) fleet_timeout_ms: Option<u64>,
    pub(super) on_fleet_failure: Option<String>,
    pub(super) restart_fence: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntropyCache {
    pub(super) files: Option<u32>,
    pub(super) min_proofs_per_second: Option<u32>,
    pub(super) max_streams: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) require: RawRequire,
    #[serde(default)]
    pub(super) inject: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) agent_headers: Vec<String>,
    #[serde(default)]
    pub(super) identity: RawIdentity,
    #[serde(default)]
    pub(super) auth: RawApiAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiAuth {
    #[serde(default)]
    pub(super) methods: Option<Vec<String>>,
    #[serde(default)]
    pub(super) basic: RawBasic,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasic {
    #[serde(default)]
    pub(super) realm: Option<String>,
    #[serde(default)]
    pub(super) plain_http: Option<String>,
    #[serde(default)]
    pub(super) cache_ttl_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequire {
    #[serde(default)]
    pub(super) any_of: Vec<String>,
    #[serde(default)]
    pub(super) all_of: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    #[serde(default)]
    pub(super) subject_header: Option<String>,
    #[serde(default)]
    pub(super) groups_header: Option<String>,
}
