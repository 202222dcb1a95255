//! The filter's configuration: a raw serde shape (`deny_unknown_fields`), then
//! `TryFrom<RawConfig> for Config`, whose errors name the field path and the bad value.
//!
//! Every field, its default and an example: `docs/CONFIG.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::entropy::{Epoch, EpochParams, decode_secret};
use crate::header::DEFAULT_HEADER;
use crate::keys::GatewayKey;
use crate::verify::{Keyring, Limits};
use crate::{GROUP_NAME_RULE, SUBJECT_RULE, policy, valid_group_name, valid_subject};

/// A configuration error: where, and what is wrong with which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The field path, `apis.payments.require.any_of[0]`.
    pub path: String,
    /// What is wrong, quoting the value unless it is a secret.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// The raw JSON shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    proof_header: Option<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    epochs: Vec<RawEpoch>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    session_cache: RawSessionCache,
    #[serde(default)]
    cold_path: RawColdPath,
    #[serde(default)]
    replay: RawReplay,
    #[serde(default)]
    entropy_cache: RawEntropyCache,
    #[serde(default)]
    directory: Option<RawDirectory>,
    #[serde(default)]
    agent: Option<RawAgent>,
    #[serde(default)]
    static_groups: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    credentials: RawCredentials,
    #[serde(default)]
    apis: BTreeMap<String, RawApi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    #[serde(default)]
    refresh_ahead_secs: Option<u64>,
    #[serde(default)]
    stale_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    /// Absent: the agent holds the key and unwraps its sessions.
    #[serde(default)]
    private_key_pem: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    /// Absent when the cluster reaches the agent over a unix socket (its permissions
    /// authenticate Envoy): then no `authorization` header is sent.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    any_key: bool,
    #[serde(default)]
    any_epoch: bool,
    #[serde(default)]
    session_ttl_secs: Option<u64>,
    #[serde(default)]
    max_stream_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEpoch {
    #[serde(default)]
    autoid_epoch: Option<u32>,
    id: String,
    /// Absent: the agent holds the epoch and hands out per-subject keys.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    interval_count: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_skew_secs: Option<u64>,
    session_lifetime_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessionCache {
    max_entries: Option<u32>,
    local_max_entries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColdPath {
    unwraps_per_second: Option<u32>,
    burst: Option<u32>,
    per_source_unwraps_per_second: Option<u32>,
    per_source_burst: Option<u32>,
    checked_unwraps_per_second: Option<u32>,
    checked_burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    buckets: Option<u32>,
    slots_per_bucket: Option<u32>,
    scope: Option<String>,
    fleet_timeout_ms: Option<u64>,
    on_fleet_failure: Option<String>,
    restart_fence: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntropyCache {
    files: Option<u32>,
    min_proofs_per_second: Option<u32>,
    max_streams: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    /// Absent when the cluster reaches the agent over a unix socket (its permissions
    /// authenticate Envoy): then no `authorization` header is sent.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    positive_ttl_secs: Option<u64>,
    #[serde(default)]
    negative_ttl_secs: Option<u64>,
    #[serde(default)]
    stale_if_error_secs: Option<u64>,
    #[serde(default)]
    max_entries: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    require: RawRequire,
    #[serde(default)]
    inject: BTreeMap<String, String>,
    #[serde(default)]
    agent_headers: Vec<String>,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    auth: RawApiAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiAuth {
    #[serde(default)]
    methods: Option<Vec<String>>,
    #[serde(default)]
    basic: RawBasic,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    plain_http: Option<String>,
    #[serde(default)]
    cache_ttl_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequire {
    #[serde(default)]
    any_of: Vec<String>,
    #[serde(default)]
    all_of: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    #[serde(default)]
    subject_header: Option<String>,
    #[serde(default)]
    groups_header: Option<String>,
}

/// How many cold-path RSA unwraps a worker may start: a token bucket, and a smaller one per
/// source address, so one source cannot spend the whole worker's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdPath {
    /// Tokens added per second.
    pub unwraps_per_second: u32,
    /// Bucket size.
    pub burst: u32,
    /// Tokens added per second to each source's bucket (default: a quarter of the worker's,
    /// rounded up).
    pub per_source_unwraps_per_second: u32,
    /// Each source's bucket size (default: a quarter of the worker's, rounded up).
    pub per_source_burst: u32,
    /// Tokens added per second to the bucket of v3 unwraps, whose possession ticket was checked
    /// (or is, by the agent, before its RSA): apart from the buckets above, which only v1 and v2
    /// full forms spend, so a flood of those cannot lock out v3 clients (docs/PROTOCOL.md §12).
    pub checked_unwraps_per_second: u32,
    /// That bucket's size.
    pub checked_burst: u32,
}

/// The session-key cache: a direct-mapped table in shared data, plus a small per-worker map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCacheConfig {
    /// Shared-data slots (each one key): the cross-worker bound.
    pub max_entries: u32,
    /// Entries of each worker's local map before it is cleared.
    pub local_max_entries: u32,
}

/// The replay cache: per generation (of a ring of 16, each a few seconds of traffic),
/// `buckets` shared-data keys of at most `slots_per_bucket` nonces each; and, in fleet scope, a
/// claim in the fleet's Redis through the agent after the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Shared-data keys per generation.
    pub buckets: u32,
    /// Nonces per key; a bucket full of its generation's nonces fails closed.
    pub slots_per_bucket: u32,
    /// Where a nonce must be unique.
    pub scope: ReplayScope,
    /// How long the fleet claim may take (the agent's callout), in milliseconds.
    pub fleet_timeout_ms: u64,
    /// What a request gets when the fleet claim fails.
    pub on_fleet_failure: FleetFailure,
    /// Local scope: proofs made before this Envoy process started are refused (a restart would
    /// otherwise accept again every proof the old process accepted within the skew window).
    pub restart_fence: bool,
}

/// Where a nonce must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayScope {
    /// In this Envoy process (every worker; shared data).
    Local,
    /// Across every gateway sharing the agent's Redis: claimed there after the local check.
    Fleet,
}

/// What a request gets when the fleet claim fails (Redis or the agent down or slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetFailure {
    /// 503 (fail closed): the default.
    Deny,
    /// The local claim alone decides (counted in `autoid_replay_fleet_degraded`, logged): a
    /// proof may then be accepted once per replica.
    Local,
}

/// Default of `replay.fleet_timeout_ms`: above the agent's own Redis timeout (100 ms).
pub const DEFAULT_FLEET_TIMEOUT_MS: u64 = 250;

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

/// Default of `agent.max_stream_ttl_secs`: how long a worker keeps a stream the agent handed over.
pub const DEFAULT_MAX_STREAM_TTL_SECS: u64 = 300;

/// Largest memory the entropy-file cache may take per worker.
pub const MAX_ENTROPY_CACHE_BYTES: u64 = 256 << 20;

/// How long a session the agent unwrapped stays cached before the filter asks again.
pub const DEFAULT_AGENT_SESSION_TTL_SECS: u64 = 300;

/// The agent the filter asks to unwrap sessions of key ids it holds no private key for, and for
/// per-subject keys of the epochs it holds no secret of.
#[derive(Clone, PartialEq, Eq)]
pub struct Agent {
    /// The Envoy cluster of the agent.
    pub cluster: String,
    /// The `:authority` of the callout.
    pub authority: String,
    /// The agent's bearer token (a secret); `None`: the agent is reached over a unix socket and
    /// the callout carries no `authorization` header.
    pub token: Option<String>,
    /// Callout timeout.
    pub timeout_ms: u64,
    /// Sessions under any key id the filter holds no private key for go to the agent, so a
    /// key the agent starts serving (rotation) needs no new filter configuration.
    pub any_key: bool,
    /// Proofs naming an epoch id the filter does not list go to the agent for the subject's
    /// stream, and the epoch's public parameters are taken from its reply, so an epoch the agent
    /// starts serving (rotation) needs no new filter configuration.
    pub any_epoch: bool,
    /// How long the filter keeps a session the agent unwrapped before asking again (default
    /// 300 s): a key the agent retires reaches sessions cached before its retirement was set
    /// within this time, so a rotation's overlap must be at least this long.
    pub session_ttl_secs: u64,
    /// The longest a subject's stream handed over by the agent is kept (the agent's `ttl_secs`
    /// is bounded by it).
    pub max_stream_ttl_secs: u64,
}

impl core::fmt::Debug for Agent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("token", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .field("any_key", &self.any_key)
            .field("any_epoch", &self.any_epoch)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("max_stream_ttl_secs", &self.max_stream_ttl_secs)
            .finish()
    }
}

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

/// The autoid agent the filter asks for groups.
#[derive(Clone, PartialEq, Eq)]
pub struct Directory {
    /// The Envoy cluster of the bridge.
    pub cluster: String,
    /// The `:authority` of the callout.
    pub authority: String,
    /// The agent's bearer token (a secret); `None`: the agent is reached over a unix socket and
    /// the callout carries no `authorization` header.
    pub token: Option<String>,
    /// Callout timeout.
    pub timeout_ms: u64,
    /// How long a found subject's groups are trusted.
    pub positive_ttl_secs: u64,
    /// How long "no such subject" is trusted.
    pub negative_ttl_secs: u64,
    /// How long past its TTL a decision may answer when the bridge fails.
    pub stale_if_error_secs: u64,
    /// Shared-data slots of the decision cache.
    pub max_entries: u32,
}

impl core::fmt::Debug for Directory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Directory")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("token", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .field("positive_ttl_secs", &self.positive_ttl_secs)
            .field("negative_ttl_secs", &self.negative_ttl_secs)
            .field("stale_if_error_secs", &self.stale_if_error_secs)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

/// Where a subject's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// The autoid agent, through an HTTP callout.
    Directory(Directory),
    /// A fixed map in the configuration (tests, demos without a directory).
    Static(BTreeMap<String, Vec<String>>),
}

/// Which groups an API requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Require {
    /// At least one of these (when not empty).
    pub any_of: Vec<String>,
    /// Every one of these.
    pub all_of: Vec<String>,
}

impl Require {
    /// Whether `groups` satisfies the requirement.
    pub fn allows(&self, groups: &[String]) -> bool {
        let has = |g: &String| groups.iter().any(|x| x == g);
        (self.any_of.is_empty() || self.any_of.iter().any(has)) && self.all_of.iter().all(has)
    }
}

/// One API definition, keyed by its Envoy route name.
#[derive(Clone, PartialEq, Eq)]
pub struct Api {
    /// Whether requests may pass at all; a disabled API denies every request with 403.
    pub enabled: bool,
    /// The groups required.
    pub require: Require,
    /// Headers injected upstream with a value from the configuration: lowercase name → value
    /// (non-secret values such as a tenant id; secrets come from the agent).
    pub inject: Vec<(String, String)>,
    /// Headers whose values the agent supplies (`GET /v1/credentials/{api}`), lowercase.
    pub agent_headers: Vec<String>,
    /// Header carrying the subject upstream, if any.
    pub subject_header: Option<String>,
    /// Header carrying the subject's groups upstream (comma-separated), if any.
    pub groups_header: Option<String>,
    /// Whether callers may authenticate with an entropy proof (`auth.methods` has `proof`).
    pub proof: bool,
    /// HTTP Basic checked by a directory bind (`auth.methods` has `ldap_basic`), if allowed.
    pub basic: Option<Basic>,
}

/// `apis.*.auth.basic`: HTTP Basic checked by an LDAP bind at the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basic {
    /// The realm of the `WWW-Authenticate: Basic` challenge.
    pub realm: String,
    /// Whether a password may arrive over a connection without TLS.
    pub plain_http: PlainHttp,
    /// How long a successful bind is remembered (under a keyed hash, never the password);
    /// 0: every request binds.
    pub cache_ttl_secs: u32,
}

/// Whether HTTP Basic is accepted on a downstream connection without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    /// Never (the default): the password would cross the network in clear.
    Refuse,
    /// Only from a loopback peer (127.0.0.0/8, ::1): the password never left the host.
    Loopback,
    /// From anywhere: development only (`autoid gateway render` warns).
    Allow,
}

/// The longest Basic realm accepted.
pub const MAX_REALM_LEN: usize = 64;
/// The longest a successful bind may be remembered.
pub const MAX_BASIC_CACHE_TTL_SECS: u32 = 300;
/// How long a successful bind is remembered by default.
pub const DEFAULT_BASIC_CACHE_TTL_SECS: u32 = 30;

impl core::fmt::Debug for Api {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.inject.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Api")
            .field("enabled", &self.enabled)
            .field("require", &self.require)
            .field("inject", &names)
            .field("agent_headers", &self.agent_headers)
            .field("subject_header", &self.subject_header)
            .field("groups_header", &self.groups_header)
            .field("proof", &self.proof)
            .field("basic", &self.basic)
            .finish()
    }
}

impl Api {
    /// Every header the filter sets upstream for this API: client copies of these are removed.
    pub fn managed_headers(&self) -> impl Iterator<Item = &str> {
        self.inject
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.agent_headers.iter().map(String::as_str))
            .chain(self.subject_header.as_deref())
            .chain(self.groups_header.as_deref())
    }
}

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

/// `apis.*.auth`: which methods the API accepts (`proof` by default) and Basic's settings.
fn api_auth(
    at: &str,
    raw: RawApiAuth,
    has_agent: bool,
) -> Result<(bool, Option<Basic>), ConfigError> {
    let methods = raw.methods.unwrap_or_else(|| vec!["proof".to_owned()]);
    let path = format!("{at}.auth.methods");
    if methods.is_empty() {
        return Err(err(path, "at least one of \"proof\", \"ldap_basic\""));
    }
    let (mut proof, mut ldap_basic) = (false, false);
    for (i, m) in methods.iter().enumerate() {
        let seen = match m.as_str() {
            "proof" => std::mem::replace(&mut proof, true),
            "ldap_basic" => std::mem::replace(&mut ldap_basic, true),
            other => {
                return Err(err(
                    format!("{path}[{i}]"),
                    format!("unknown method {other:?} (\"proof\" or \"ldap_basic\")"),
                ));
            }
        };
        if seen {
            return Err(err(
                format!("{path}[{i}]"),
                format!("{m:?} is listed twice"),
            ));
        }
    }
    let b = raw.basic;
    if !ldap_basic {
        if b.realm.is_some() || b.plain_http.is_some() || b.cache_ttl_secs.is_some() {
            return Err(err(
                format!("{at}.auth.basic"),
                "set, but auth.methods does not list \"ldap_basic\"",
            ));
        }
        return Ok((proof, None));
    }
    if !has_agent {
        return Err(err(
            path,
            "\"ldap_basic\" needs an `agent` section (the agent checks passwords)",
        ));
    }
    let realm = b.realm.unwrap_or_else(|| "autoid".to_owned());
    if realm.is_empty()
        || realm.len() > MAX_REALM_LEN
        || !realm
            .bytes()
            .all(|c| (c.is_ascii_graphic() || c == b' ') && c != b'"' && c != b'\\')
    {
        return Err(err(
            format!("{at}.auth.basic.realm"),
            format!(
                "{realm:?} is not a realm (1 to {MAX_REALM_LEN} printable ASCII characters, no quote or backslash)"
            ),
        ));
    }
    let plain_http = match b.plain_http.as_deref() {
        None | Some("refuse") => PlainHttp::Refuse,
        Some("loopback") => PlainHttp::Loopback,
        Some("allow") => PlainHttp::Allow,
        Some(other) => {
            return Err(err(
                format!("{at}.auth.basic.plain_http"),
                format!("{other:?} is not one of \"refuse\", \"loopback\", \"allow\""),
            ));
        }
    };
    let cache_ttl_secs = b.cache_ttl_secs.unwrap_or(DEFAULT_BASIC_CACHE_TTL_SECS);
    if cache_ttl_secs > MAX_BASIC_CACHE_TTL_SECS {
        return Err(err(
            format!("{at}.auth.basic.cache_ttl_secs"),
            format!("{cache_ttl_secs} is out of range (0 to {MAX_BASIC_CACHE_TTL_SECS})"),
        ));
    }
    Ok((
        proof,
        Some(Basic {
            realm,
            plain_http,
            cache_ttl_secs,
        }),
    ))
}

/// A header name: lowercase RFC 9110 token characters, not a pseudo-header.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// Headers the filter must never be told to set: hop-by-hop, routing and framing.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    if !valid_header_name(name) {
        return Err(err(
            path,
            format!("invalid header name {name:?} (lowercase token expected)"),
        ));
    }
    if RESERVED_HEADERS.contains(&name) {
        return Err(err(path, format!("header {name:?} is reserved")));
    }
    Ok(name.to_owned())
}

fn group_list(path: &str, groups: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, g) in groups.iter().enumerate() {
        if g.trim().is_empty() {
            return Err(err(format!("{path}[{i}]"), "empty group name"));
        }
        if !valid_group_name(g) {
            return Err(err(
                format!("{path}[{i}]"),
                format!("invalid group name {g:?} ({GROUP_NAME_RULE})"),
            ));
        }
    }
    Ok(groups)
}

/// The checked parts of a callout target: cluster, authority, token, timeout.
type CalloutTarget = (String, String, Option<String>, u64);

/// A callout target (`directory`, `agent`): cluster, authority, bearer token, timeout, checked.
/// The token is optional (an agent on a unix socket needs none); when given it must be usable.
fn callout_target(
    at: &str,
    cluster: String,
    authority: Option<String>,
    token: Option<String>,
    timeout_ms: Option<u64>,
) -> Result<CalloutTarget, ConfigError> {
    if cluster.trim().is_empty() {
        return Err(err(format!("{at}.cluster"), "empty cluster name"));
    }
    if let Some(token) = &token {
        if token.len() < 16 {
            return Err(err(
                format!("{at}.token"),
                "too short (at least 16 characters)",
            ));
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(err(
                format!("{at}.token"),
                "must not contain spaces or control characters",
            ));
        }
    }
    let timeout_ms = timeout_ms.unwrap_or(1000);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(err(
            format!("{at}.timeout_ms"),
            format!("{timeout_ms} is out of range (1 to 60000)"),
        ));
    }
    let authority = authority.unwrap_or_else(|| cluster.clone());
    Ok((cluster, authority, token, timeout_ms))
}

fn positive(path: &str, value: Option<u32>, default: u32, max: u32) -> Result<u32, ConfigError> {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        return Err(err(path, format!("{v} is out of range (1 to {max})")));
    }
    Ok(v)
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let proof_header = header_name(
            "proof_header",
            raw.proof_header.as_deref().unwrap_or(DEFAULT_HEADER),
        )?;

        let any_agent_key = raw.agent.as_ref().is_some_and(|a| a.any_key);
        if raw.keys.is_empty() && !any_agent_key {
            return Err(err(
                "keys",
                "at least one key is required (or `agent.any_key: true`)",
            ));
        }
        let agent = match raw.agent {
            None => None,
            Some(a) => {
                let (cluster, authority, token, timeout_ms) =
                    callout_target("agent", a.cluster, a.authority, a.token, a.timeout_ms)?;
                let session_ttl_secs = a.session_ttl_secs.unwrap_or(DEFAULT_AGENT_SESSION_TTL_SECS);
                if !(1..=86_400).contains(&session_ttl_secs) {
                    return Err(err(
                        "agent.session_ttl_secs",
                        format!("{session_ttl_secs} is out of range (1 to 86400)"),
                    ));
                }
                let max_stream_ttl_secs =
                    a.max_stream_ttl_secs.unwrap_or(DEFAULT_MAX_STREAM_TTL_SECS);
                if !(1..=86_400).contains(&max_stream_ttl_secs) {
                    return Err(err(
                        "agent.max_stream_ttl_secs",
                        format!("{max_stream_ttl_secs} is out of range (1 to 86400)"),
                    ));
                }
                Some(Agent {
                    cluster,
                    authority,
                    token,
                    timeout_ms,
                    any_key: a.any_key,
                    any_epoch: a.any_epoch,
                    session_ttl_secs,
                    max_stream_ttl_secs,
                })
            }
        };
        let mut keys: Vec<GatewayKey> = Vec::with_capacity(raw.keys.len());
        let mut agent_kids: Vec<String> = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            if keys.iter().any(|have| have.kid() == k.kid) || agent_kids.contains(&k.kid) {
                return Err(err(
                    format!("keys[{i}].kid"),
                    format!("duplicate key id {:?}", k.kid),
                ));
            }
            match &k.private_key_pem {
                Some(pem) => keys.push(
                    GatewayKey::from_pem(&k.kid, pem)
                        .map_err(|e| err(format!("keys[{i}]"), e.to_string()))?,
                ),
                None if agent.is_none() => {
                    return Err(err(
                        format!("keys[{i}].private_key_pem"),
                        "required unless an `agent` section names the agent that holds the key",
                    ));
                }
                None => {
                    if !crate::valid_id(&k.kid) {
                        return Err(err(
                            format!("keys[{i}].kid"),
                            format!("invalid key id {:?}", k.kid),
                        ));
                    }
                    agent_kids.push(k.kid.clone());
                }
            }
        }

        let any_agent_epoch = agent.as_ref().is_some_and(|a| a.any_epoch);
        if raw.epochs.is_empty() && !any_agent_epoch {
            return Err(err(
                "epochs",
                "at least one epoch is required (or `agent.any_epoch: true`)",
            ));
        }
        let mut epochs: Vec<Epoch> = Vec::with_capacity(raw.epochs.len());
        let mut agent_epochs: Vec<EpochParams> = Vec::new();
        for (i, e) in raw.epochs.iter().enumerate() {
            if e.autoid_epoch.is_some_and(|v| v != 1) {
                return Err(err(
                    format!("epochs[{i}].autoid_epoch"),
                    "unsupported version",
                ));
            }
            if epochs.iter().any(|have| have.id() == e.id)
                || agent_epochs.iter().any(|have| have.id() == e.id)
            {
                return Err(err(
                    format!("epochs[{i}].id"),
                    format!("duplicate epoch id {:?}", e.id),
                ));
            }
            let file_size = e.file_size.unwrap_or(policy::DEFAULT_FILE_SIZE);
            let interval_count = e.interval_count.unwrap_or(policy::DEFAULT_INTERVAL_COUNT);
            let Some(secret) = &e.secret else {
                if agent.is_none() {
                    return Err(err(
                        format!("epochs[{i}].secret"),
                        "required unless an `agent` section names the agent that holds the epoch",
                    ));
                }
                agent_epochs.push(
                    EpochParams::new(&e.id, file_size, interval_count)
                        .map_err(|e| err(format!("epochs[{i}]"), e.to_string()))?,
                );
                continue;
            };
            let secret = decode_secret(secret).map_err(|_| {
                err(
                    format!("epochs[{i}].secret"),
                    "expected 32 bytes in base64url",
                )
            })?;
            let epoch = Epoch::new(&e.id, secret, file_size, interval_count)
                .map_err(|e| err(format!("epochs[{i}]"), e.to_string()))?;
            epochs.push(epoch);
        }

        let limits = Limits {
            max_skew_secs: raw
                .limits
                .max_skew_secs
                .unwrap_or(policy::DEFAULT_MAX_SKEW_SECS),
            session_lifetime_secs: raw
                .limits
                .session_lifetime_secs
                .unwrap_or(policy::DEFAULT_SESSION_LIFETIME_SECS),
        };
        if !(1..=600).contains(&limits.max_skew_secs) {
            return Err(err(
                "limits.max_skew_secs",
                format!("{} is out of range (1 to 600)", limits.max_skew_secs),
            ));
        }
        if !(60..=7 * 86400).contains(&limits.session_lifetime_secs) {
            return Err(err(
                "limits.session_lifetime_secs",
                format!(
                    "{} is out of range (60 to 604800)",
                    limits.session_lifetime_secs
                ),
            ));
        }

        let session_cache = SessionCacheConfig {
            max_entries: positive(
                "session_cache.max_entries",
                raw.session_cache.max_entries,
                4096,
                1 << 20,
            )?,
            local_max_entries: positive(
                "session_cache.local_max_entries",
                raw.session_cache.local_max_entries,
                1024,
                1 << 16,
            )?,
        };
        let unwraps_per_second = positive(
            "cold_path.unwraps_per_second",
            raw.cold_path.unwraps_per_second,
            50,
            100_000,
        )?;
        let burst = positive("cold_path.burst", raw.cold_path.burst, 100, 100_000)?;
        let cold_path = ColdPath {
            unwraps_per_second,
            burst,
            per_source_unwraps_per_second: positive(
                "cold_path.per_source_unwraps_per_second",
                raw.cold_path.per_source_unwraps_per_second,
                unwraps_per_second.div_ceil(4),
                unwraps_per_second,
            )?,
            per_source_burst: positive(
                "cold_path.per_source_burst",
                raw.cold_path.per_source_burst,
                burst.div_ceil(4),
                burst,
            )?,
            checked_unwraps_per_second: positive(
                "cold_path.checked_unwraps_per_second",
                raw.cold_path.checked_unwraps_per_second,
                2000,
                1_000_000,
            )?,
            checked_burst: positive(
                "cold_path.checked_burst",
                raw.cold_path.checked_burst,
                2000,
                1_000_000,
            )?,
        };
        let replay = ReplayConfig {
            buckets: positive("replay.buckets", raw.replay.buckets, 4096, 1 << 20)?,
            slots_per_bucket: positive(
                "replay.slots_per_bucket",
                raw.replay.slots_per_bucket,
                256,
                4096,
            )?,
            scope: match raw.replay.scope.as_deref() {
                None | Some("local") => ReplayScope::Local,
                Some("fleet") => ReplayScope::Fleet,
                Some(other) => {
                    return Err(err(
                        "replay.scope",
                        format!("{other:?}: expected \"local\" or \"fleet\""),
                    ));
                }
            },
            fleet_timeout_ms: match raw.replay.fleet_timeout_ms {
                None => DEFAULT_FLEET_TIMEOUT_MS,
                Some(ms @ 1..=10_000) => ms,
                Some(ms) => {
                    return Err(err(
                        "replay.fleet_timeout_ms",
                        format!("{ms} is out of range (1 to 10000)"),
                    ));
                }
            },
            on_fleet_failure: match raw.replay.on_fleet_failure.as_deref() {
                None | Some("deny") => FleetFailure::Deny,
                Some("local") => FleetFailure::Local,
                Some(other) => {
                    return Err(err(
                        "replay.on_fleet_failure",
                        format!("{other:?}: expected \"deny\" or \"local\""),
                    ));
                }
            },
            restart_fence: raw.replay.restart_fence.unwrap_or(true),
        };
        if replay.scope == ReplayScope::Fleet && agent.is_none() {
            return Err(err(
                "replay.scope",
                "\"fleet\" claims nonces through the agent: configure `agent`",
            ));
        }

        let groups = match (raw.directory, raw.static_groups) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "static_groups",
                    "use either directory or static_groups, not both",
                ));
            }
            (None, None) => {
                return Err(err(
                    "directory",
                    "required (or static_groups, for tests and demos)",
                ));
            }
            (None, Some(map)) => {
                let mut out = BTreeMap::new();
                for (subject, groups) in map {
                    if !valid_subject(&subject) {
                        return Err(err(
                            "static_groups",
                            format!("invalid subject {subject:?} ({SUBJECT_RULE})"),
                        ));
                    }
                    let path = format!("static_groups.{subject}");
                    out.insert(subject, group_list(&path, groups)?);
                }
                Groups::Static(out)
            }
            (Some(d), None) => {
                let (cluster, authority, token, timeout_ms) =
                    callout_target("directory", d.cluster, d.authority, d.token, d.timeout_ms)?;
                Groups::Directory(Directory {
                    authority,
                    cluster,
                    token,
                    timeout_ms,
                    positive_ttl_secs: d.positive_ttl_secs.unwrap_or(60),
                    negative_ttl_secs: d.negative_ttl_secs.unwrap_or(10),
                    stale_if_error_secs: d.stale_if_error_secs.unwrap_or(0),
                    max_entries: positive("directory.max_entries", d.max_entries, 16384, 1 << 22)?,
                })
            }
        };

        let mut apis = BTreeMap::new();
        for (name, a) in raw.apis {
            let at = format!("apis.{name}");
            if name.is_empty() || name.len() > 256 {
                return Err(err("apis", format!("invalid route name {name:?}")));
            }
            let require = Require {
                any_of: group_list(&format!("{at}.require.any_of"), a.require.any_of)?,
                all_of: group_list(&format!("{at}.require.all_of"), a.require.all_of)?,
            };
            let mut inject = Vec::with_capacity(a.inject.len());
            for (header, value) in a.inject {
                let path = format!("{at}.inject.{header}");
                let header = header_name(&path, &header)?;
                if header == proof_header {
                    return Err(err(path, "the proof header cannot be injected"));
                }
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(err(path, "value contains CR, LF or NUL"));
                }
                inject.push((header, value));
            }
            let mut agent_headers = Vec::with_capacity(a.agent_headers.len());
            for (i, header) in a.agent_headers.iter().enumerate() {
                let path = format!("{at}.agent_headers[{i}]");
                let header = header_name(&path, header)?;
                if header == proof_header {
                    return Err(err(path, "the proof header cannot be injected"));
                }
                agent_headers.push(header);
            }
            if !agent_headers.is_empty() {
                if agent.is_none() {
                    return Err(err(
                        format!("{at}.agent_headers"),
                        "needs an `agent` section (the agent supplies these values)",
                    ));
                }
                if !crate::valid_id(&name) {
                    return Err(err(
                        format!("{at}.agent_headers"),
                        format!(
                            "the route name {name:?} is not an API id (1 to 32 of A-Z a-z 0-9 _ -)"
                        ),
                    ));
                }
            }
            let subject_header = a
                .identity
                .subject_header
                .map(|h| header_name(&format!("{at}.identity.subject_header"), &h))
                .transpose()?;
            let groups_header = a
                .identity
                .groups_header
                .map(|h| header_name(&format!("{at}.identity.groups_header"), &h))
                .transpose()?;
            let (proof, basic) = api_auth(&at, a.auth, agent.is_some())?;
            let api = Api {
                enabled: a.enabled.unwrap_or(true),
                require,
                inject,
                agent_headers,
                subject_header,
                groups_header,
                proof,
                basic,
            };
            let mut seen: Vec<&str> = api.managed_headers().collect();
            seen.sort_unstable();
            if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
                return Err(err(at, format!("header {:?} is set twice", w[0])));
            }
            if seen.contains(&proof_header.as_str()) {
                return Err(err(at, "the proof header cannot be an identity header"));
            }
            apis.insert(name, api);
        }
        if apis.is_empty() {
            return Err(err("apis", "at least one API is required"));
        }

        let entropy_cache = EntropyCacheConfig {
            files: raw.entropy_cache.files.unwrap_or(4),
            min_proofs_per_second: positive(
                "entropy_cache.min_proofs_per_second",
                raw.entropy_cache.min_proofs_per_second,
                20,
                1_000_000,
            )?,
            max_streams: positive(
                "entropy_cache.max_streams",
                raw.entropy_cache.max_streams,
                DEFAULT_MAX_STREAMS,
                1 << 16,
            )?,
        };
        let largest = epochs
            .iter()
            .map(Epoch::params)
            .chain(&agent_epochs)
            .map(EpochParams::file_size)
            .max()
            .unwrap_or(0);
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

        let credentials = CredentialsConfig {
            refresh_ahead_secs: raw.credentials.refresh_ahead_secs.unwrap_or(10),
            stale_secs: raw.credentials.stale_secs.unwrap_or(300),
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

        Ok(Config {
            proof_header,
            keyring: Keyring::new(keys, epochs)
                .with_agent_keys(agent_kids)
                .with_any_agent_key(any_agent_key)
                .with_agent_epochs(agent_epochs)
                .with_any_agent_epoch(any_agent_epoch),
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
