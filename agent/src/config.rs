//! The JSON configuration file (parsed raw, then validated) and the secrets.
//!
//! Secrets never come from command-line values (they would show in `ps`): the bearer token and
//! the service-account password are read from files named in the config (or by flags), or from
//! environment variables.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Environment variable holding the bearer token when no token file is configured.
pub const TOKEN_ENV: &str = "AUTOID_BRIDGE_TOKEN";
/// Environment variable holding the service-account password when no file is configured.
pub const BIND_PASSWORD_ENV: &str = "AUTOID_BRIDGE_BIND_PASSWORD";
/// Default listen address: a unix socket in the current directory (mode 0600).
pub const DEFAULT_LISTEN: &str = "unix:autoid-agent.sock";
/// The prefix of a unix-socket listen address.
pub const UNIX_PREFIX: &str = "unix:";
/// Shortest bearer token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The file as written (`deny_unknown_fields` everywhere: a typo is an error, not a default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listen: Option<String>,
    /// `"0600"` (default) or `"0660"`: the unix socket's permissions.
    #[serde(default)]
    pub socket_mode: Option<String>,
    /// TLS for a TCP listen address.
    #[serde(default)]
    pub tls: Option<RawServerTls>,
    /// Plain TCP without TLS, for development only (logged loudly).
    #[serde(default)]
    pub insecure_plain_tcp: bool,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
    pub ldap: RawLdap,
    pub users: RawUsers,
    pub groups: RawGroups,
    /// The gateway keys whose sessions this service unwraps for the filter (`POST /v1/sessions`).
    #[serde(default)]
    pub session_keys: Vec<RawSessionKey>,
    /// The epoch files whose subjects' keys this service hands the filter (`POST /v1/streams`):
    /// a path, or `{"file": path, "not_after": unix_secs}` for an epoch being rotated out.
    #[serde(default)]
    pub epoch_files: Vec<serde_json::Value>,
    /// How long the filter may keep a subject's stream, in seconds.
    #[serde(default)]
    pub stream_ttl_secs: Option<u64>,
    /// The upstream credentials the agent resolves (`GET /v1/credentials/{api}`): the file
    /// `autoid gateway render --agent-credentials FILE` writes (relative: to this config file).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Fleet replay claims in Redis (`POST /v1/replay`).
    #[serde(default)]
    pub replay: Option<RawReplay>,
    /// `/v1/check`: the filter configuration the agent decides gateways' requests with.
    #[serde(default)]
    pub check: Option<RawCheck>,
}

/// `check`: the agent answers `/v1/check` as the wasm filter would with this configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// The filter configuration JSON (`autoid gateway render --target envoy-ext-authz` writes
    /// it); relative: to this config file.
    pub filter_config: PathBuf,
    /// Check worker threads (default: the available parallelism).
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long a check may take before it is answered 503 (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The validated `check`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub filter_config: PathBuf,
    pub workers: usize,
    pub timeout: Duration,
}

impl TryFrom<RawCheck> for CheckConfig {
    type Error = Error;

    fn try_from(raw: RawCheck) -> Result<CheckConfig, Error> {
        if raw.filter_config.as_os_str().is_empty() {
            return Err(Error::config(
                "check.filter_config",
                "\"\"",
                "name the filter configuration file",
            ));
        }
        let workers = raw.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if !(1..=256).contains(&workers) {
            return Err(Error::config(
                "check.workers",
                workers,
                "must be between 1 and 256",
            ));
        }
        Ok(CheckConfig {
            filter_config: raw.filter_config,
            workers,
            timeout: ms("check.timeout_ms", raw.timeout_ms, 5_000)?,
        })
    }
}

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

/// The agent's own certificate and key for a TCP listen address (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One gateway private key (PKCS#8 PEM file) and its key id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionKey {
    pub kid: String,
    pub private_key_file: PathBuf,
    /// When the key retires (Unix seconds): from then on it unwraps nothing, and the sessions it
    /// opened end in the filter too. Set by `autoid rotate key`.
    #[serde(default)]
    pub not_after: Option<u64>,
}

/// An epoch file with its retirement time (Unix seconds): from then on the agent hands out no
/// key of it, and the filter keeps no stream of it. Set by `autoid rotate epoch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetiringEpoch {
    pub file: PathBuf,
    #[serde(default)]
    pub not_after: Option<u64>,
}

/// An epoch file the agent hands out subjects' keys of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochFileConfig {
    pub file: PathBuf,
    pub not_after: Option<u64>,
}

/// A gateway key the agent unwraps sessions for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeyConfig {
    pub kid: String,
    pub private_key_file: PathBuf,
    pub not_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    #[serde(default)]
    pub pool_size: Option<usize>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub operation_timeout_ms: Option<u64>,
    #[serde(default)]
    pub keepalive_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsers {
    pub base: String,
    #[serde(default)]
    pub scope: Option<Scope>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub uid_attribute: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    pub base: String,
    #[serde(default)]
    pub scope: Option<Scope>,
    #[serde(default)]
    pub name_attribute: Option<String>,
    #[serde(default)]
    pub sources: Option<Vec<GroupSource>>,
    #[serde(default)]
    pub posix_group_filter: Option<String>,
    #[serde(default)]
    pub group_of_names_filter: Option<String>,
    #[serde(default)]
    pub group_of_unique_names_filter: Option<String>,
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    #[serde(default)]
    pub max_groups: Option<usize>,
}

/// An LDAP search scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Base,
    #[serde(alias = "onelevel")]
    One,
    #[serde(alias = "sub")]
    Subtree,
}

impl From<Scope> for ldap3::Scope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Base => ldap3::Scope::Base,
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Subtree => ldap3::Scope::Subtree,
        }
    }
}

/// Where group memberships come from; any combination may be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    /// posixGroup entries whose `memberUid` holds the user's uid.
    PosixGroup,
    /// groupOfNames entries whose `member` holds the user's DN.
    GroupOfNames,
    /// groupOfUniqueNames entries whose `uniqueMember` holds the user's DN.
    GroupOfUniqueNames,
    /// The user entry's `memberOf` values (group DNs under `groups.base`).
    MemberOf,
}

/// Validated LDAP connection settings.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub url: String,
    pub host: String,
    pub ldaps: bool,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub tls_insecure_skip_verify: bool,
    pub bind_dn: String,
    pub bind_password_file: Option<PathBuf>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    pub keepalive_interval: Duration,
}

/// Validated user lookup settings.
#[derive(Debug, Clone)]
pub struct UsersConfig {
    pub base: String,
    pub scope: Scope,
    /// Filter template; `{subject}` is replaced by the escaped subject.
    pub filter: String,
    pub uid_attribute: String,
}

/// Validated group resolution settings.
#[derive(Debug, Clone)]
pub struct GroupsConfig {
    pub base: String,
    pub scope: Scope,
    pub name_attribute: String,
    pub sources: BTreeSet<GroupSource>,
    /// `{uid}` is replaced by the escaped uid.
    pub posix_group_filter: String,
    /// `{dn}` is replaced by the escaped user DN.
    pub group_of_names_filter: String,
    /// `{dn}` is replaced by the escaped user DN.
    pub group_of_unique_names_filter: String,
    pub member_of_attribute: String,
    pub max_groups: usize,
}

/// Where the agent listens, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket at this path (relative: to the current directory), created with `mode`.
    /// The file's permissions authenticate the caller; a configured token is still checked.
    Unix { path: PathBuf, mode: u32 },
    /// TCP with TLS (rustls); the bearer token is required.
    Tls {
        addr: SocketAddr,
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// TCP without TLS: `insecure_plain_tcp`, development only; the bearer token is required.
    PlainTcp(SocketAddr),
}

impl Listen {
    /// True when the transport needs the bearer token (TCP).
    pub fn needs_token(&self) -> bool {
        !matches!(self, Listen::Unix { .. })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix { path, .. } => write!(f, "{UNIX_PREFIX}{}", path.display()),
            Listen::Tls { addr, .. } => write!(f, "https://{addr}"),
            Listen::PlainTcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub token_file: Option<PathBuf>,
    pub request_timeout: Duration,
    pub ldap: LdapConfig,
    pub users: UsersConfig,
    pub groups: GroupsConfig,
    /// Gateway key ids, their private key files and retirement times.
    pub session_keys: Vec<SessionKeyConfig>,
    /// Epoch files and their retirement times (loaded by
    /// [`Streams::load`](crate::streams::Streams::load)).
    pub epoch_files: Vec<EpochFileConfig>,
    /// The `ttl_secs` of `POST /v1/streams` answers.
    pub stream_ttl_secs: u64,
    /// The upstream credentials file, if any (as written; see [`Config::from_file`]).
    pub credentials_file: Option<PathBuf>,
    /// Fleet replay claims in Redis, if configured.
    pub replay: Option<ReplayConfig>,
    /// `/v1/check`, if configured (`filter_config` as written; see [`Config::from_file`]).
    pub check: Option<CheckConfig>,
}

/// Default of `stream_ttl_secs`.
pub const DEFAULT_STREAM_TTL_SECS: u64 = 300;

/// Default user filter.
pub const DEFAULT_USER_FILTER: &str = "(&(objectClass=posixAccount)(uid={subject}))";
pub const DEFAULT_POSIX_GROUP_FILTER: &str = "(&(objectClass=posixGroup)(memberUid={uid}))";
pub const DEFAULT_GROUP_OF_NAMES_FILTER: &str = "(&(objectClass=groupOfNames)(member={dn}))";
pub const DEFAULT_GROUP_OF_UNIQUE_NAMES_FILTER: &str =
    "(&(objectClass=groupOfUniqueNames)(uniqueMember={dn}))";

impl Config {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        Config::from_file_with_listen(path, None)
    }

    /// Reads and validates a configuration file, `listen` (from `--listen`) replacing the
    /// file's `listen` before validation.
    pub fn from_file_with_listen(path: &Path, listen: Option<&str>) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            what: "config",
            file: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_json_with_listen(&text, listen).map_err(|e| match e {
            Error::ConfigParse { source, .. } => Error::ConfigParse {
                file: path.to_owned(),
                source,
            },
            other => other,
        })?;
        if let Some(f) = &config.credentials_file
            && f.is_relative()
        {
            config.credentials_file = Some(path.parent().unwrap_or(Path::new(".")).join(f));
        }
        if let Some(check) = &mut config.check
            && check.filter_config.is_relative()
        {
            check.filter_config = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&check.filter_config);
        }
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn from_json(text: &str) -> Result<Config, Error> {
        Config::from_json_with_listen(text, None)
    }

    fn from_json_with_listen(text: &str, listen: Option<&str>) -> Result<Config, Error> {
        let mut raw: RawConfig =
            serde_json::from_str(text).map_err(|source| Error::ConfigParse {
                file: PathBuf::from("<inline>"),
                source,
            })?;
        if let Some(l) = listen {
            raw.listen = Some(l.to_owned());
        }
        Config::try_from(raw)
    }

    /// True when the agent listens on TCP on a non-loopback address.
    pub fn listen_is_public(&self) -> bool {
        match &self.listen {
            Listen::Unix { .. } => false,
            Listen::Tls { addr, .. } | Listen::PlainTcp(addr) => !addr.ip().is_loopback(),
        }
    }
}

fn ms(path: &str, v: Option<u64>, default: u64) -> Result<Duration, Error> {
    let v = v.unwrap_or(default);
    if v == 0 || v > 600_000 {
        return Err(Error::config(
            path,
            v,
            "must be between 1 and 600000 milliseconds",
        ));
    }
    Ok(Duration::from_millis(v))
}

fn non_empty(path: &str, v: &str) -> Result<String, Error> {
    let t = v.trim();
    if t.is_empty() {
        return Err(Error::config(path, format!("{v:?}"), "must not be empty"));
    }
    Ok(t.to_owned())
}

/// An attribute description: a name (letter, then letters, digits, '-') or a numeric OID.
fn attribute(path: &str, v: Option<String>, default: &str) -> Result<String, Error> {
    let v = v.unwrap_or_else(|| default.to_owned());
    let name_ok = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid_ok = !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(name_ok || oid_ok) {
        return Err(Error::config(
            path,
            format!("{v:?}"),
            "not an LDAP attribute name",
        ));
    }
    Ok(v)
}

/// A filter template must contain each placeholder and parse as a filter once filled in.
fn template(
    path: &str,
    v: Option<String>,
    default: &str,
    placeholders: &[&str],
) -> Result<String, Error> {
    let v = v.unwrap_or_else(|| default.to_owned());
    for p in placeholders {
        if !v.contains(p) {
            return Err(Error::config(
                path,
                format!("{v:?}"),
                format!("must contain {p}"),
            ));
        }
    }
    let sample: Vec<(&str, &str)> = placeholders.iter().map(|p| (*p, "x")).collect();
    let filled = crate::groups::render(&v, &sample);
    if !filled.starts_with('(') || ldap3::parse_filter(&filled).is_err() {
        return Err(Error::config(
            path,
            format!("{v:?}"),
            "not a valid LDAP filter",
        ));
    }
    Ok(v)
}

/// Splits `ldap://host:port` / `ldaps://host` into (ldaps, host).
fn parse_url(url: &str) -> Result<(bool, String), Error> {
    let (ldaps, rest) = if let Some(r) = url.strip_prefix("ldaps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ldap://") {
        (false, r)
    } else {
        return Err(Error::config(
            "ldap.url",
            url,
            "must start with ldap:// or ldaps://",
        ));
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') || hostport.contains('?') {
        return Err(Error::config(
            "ldap.url",
            url,
            "expected ldap[s]://host[:port] with no path",
        ));
    }
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_owned()
    } else {
        hostport.split(':').next().unwrap_or_default().to_owned()
    };
    if host.is_empty() {
        return Err(Error::config("ldap.url", url, "missing host"));
    }
    Ok((ldaps, host))
}

/// `listen`, `socket_mode`, `tls` and `insecure_plain_tcp`, checked together: a unix socket
/// (the default), TCP with TLS, or plain TCP only when explicitly asked for.
fn listen(
    text: Option<String>,
    socket_mode: Option<String>,
    tls: Option<RawServerTls>,
    insecure_plain_tcp: bool,
) -> Result<Listen, Error> {
    let text = text.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    if let Some(path) = text.strip_prefix(UNIX_PREFIX) {
        if path.is_empty() || path.ends_with('/') {
            return Err(Error::config(
                "listen",
                format!("{text:?}"),
                "expected unix:<path of the socket file>",
            ));
        }
        if tls.is_some() {
            return Err(Error::config(
                "tls",
                format!("{text:?}"),
                "TLS is for a TCP listen address; a unix socket is authenticated by its file permissions",
            ));
        }
        if insecure_plain_tcp {
            return Err(Error::config(
                "insecure_plain_tcp",
                true,
                "only for a TCP listen address (listen is a unix socket)",
            ));
        }
        let mode = match socket_mode.as_deref() {
            None | Some("0600") => 0o600,
            Some("0660") => 0o660,
            Some(other) => {
                return Err(Error::config(
                    "socket_mode",
                    format!("{other:?}"),
                    "expected \"0600\" (same user) or \"0660\" (a shared group)",
                ));
            }
        };
        return Ok(Listen::Unix {
            path: PathBuf::from(path),
            mode,
        });
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        Error::config(
            "listen",
            format!("{text:?}"),
            "expected unix:<path> or ip:port",
        )
    })?;
    if let Some(m) = socket_mode {
        return Err(Error::config(
            "socket_mode",
            format!("{m:?}"),
            "only for a unix socket listen address",
        ));
    }
    match (tls, insecure_plain_tcp) {
        (Some(t), false) => Ok(Listen::Tls {
            addr,
            cert_file: t.cert_file,
            key_file: t.key_file,
        }),
        (None, true) => Ok(Listen::PlainTcp(addr)),
        (Some(_), true) => Err(Error::config(
            "insecure_plain_tcp",
            true,
            "cannot be combined with tls: give tls, or (for development) insecure_plain_tcp",
        )),
        (None, false) => Err(Error::config(
            "tls",
            "absent",
            format!(
                "listen {text:?} is TCP, which needs tls {{cert_file, key_file}} and a bearer \
                 token (use a unix socket, unix:<path>, the default; plain TCP only with \
                 insecure_plain_tcp: true, for development)"
            ),
        )),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(raw: RawConfig) -> Result<Config, Error> {
        let listen = listen(raw.listen, raw.socket_mode, raw.tls, raw.insecure_plain_tcp)?;
        let request_timeout = ms("request_timeout_ms", raw.request_timeout_ms, 5_000)?;

        let l = raw.ldap;
        let (ldaps, host) = parse_url(l.url.trim())?;
        if ldaps && l.starttls {
            return Err(Error::config(
                "ldap.starttls",
                true,
                "StartTLS cannot be used with an ldaps:// url (it is TLS already)",
            ));
        }
        if l.tls_insecure_skip_verify && l.ca_file.is_some() {
            return Err(Error::config(
                "ldap.tls_insecure_skip_verify",
                true,
                "cannot be combined with ldap.ca_file: verify against the CA or not at all",
            ));
        }
        let pool_size = l.pool_size.unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            return Err(Error::config(
                "ldap.pool_size",
                pool_size,
                "must be between 1 and 64",
            ));
        }
        let ldap = LdapConfig {
            url: l.url.trim().to_owned(),
            host,
            ldaps,
            starttls: l.starttls,
            ca_file: l.ca_file,
            tls_insecure_skip_verify: l.tls_insecure_skip_verify,
            bind_dn: non_empty("ldap.bind_dn", &l.bind_dn)?,
            bind_password_file: l.bind_password_file,
            pool_size,
            connect_timeout: ms("ldap.connect_timeout_ms", l.connect_timeout_ms, 2_000)?,
            operation_timeout: ms("ldap.operation_timeout_ms", l.operation_timeout_ms, 3_000)?,
            keepalive_interval: ms(
                "ldap.keepalive_interval_ms",
                l.keepalive_interval_ms,
                30_000,
            )?,
        };

        let u = raw.users;
        let users = UsersConfig {
            base: non_empty("users.base", &u.base)?,
            scope: u.scope.unwrap_or(Scope::Subtree),
            filter: template(
                "users.filter",
                u.filter,
                DEFAULT_USER_FILTER,
                &["{subject}"],
            )?,
            uid_attribute: attribute("users.uid_attribute", u.uid_attribute, "uid")?,
        };

        let g = raw.groups;
        let list = g.sources.unwrap_or_else(|| {
            vec![
                GroupSource::PosixGroup,
                GroupSource::GroupOfNames,
                GroupSource::GroupOfUniqueNames,
                GroupSource::MemberOf,
            ]
        });
        if list.is_empty() {
            return Err(Error::config(
                "groups.sources",
                "[]",
                "name at least one source",
            ));
        }
        let mut sources = BTreeSet::new();
        for (i, s) in list.iter().enumerate() {
            if !sources.insert(*s) {
                return Err(Error::config(
                    format!("groups.sources[{i}]"),
                    format!("{s:?}"),
                    "listed twice",
                ));
            }
        }
        let max_groups = g.max_groups.unwrap_or(1_000);
        if !(1..=100_000).contains(&max_groups) {
            return Err(Error::config(
                "groups.max_groups",
                max_groups,
                "must be between 1 and 100000",
            ));
        }
        let groups = GroupsConfig {
            base: non_empty("groups.base", &g.base)?,
            scope: g.scope.unwrap_or(Scope::Subtree),
            name_attribute: attribute("groups.name_attribute", g.name_attribute, "cn")?,
            sources,
            posix_group_filter: template(
                "groups.posix_group_filter",
                g.posix_group_filter,
                DEFAULT_POSIX_GROUP_FILTER,
                &["{uid}"],
            )?,
            group_of_names_filter: template(
                "groups.group_of_names_filter",
                g.group_of_names_filter,
                DEFAULT_GROUP_OF_NAMES_FILTER,
                &["{dn}"],
            )?,
            group_of_unique_names_filter: template(
                "groups.group_of_unique_names_filter",
                g.group_of_unique_names_filter,
                DEFAULT_GROUP_OF_UNIQUE_NAMES_FILTER,
                &["{dn}"],
            )?,
            member_of_attribute: attribute(
                "groups.member_of_attribute",
                g.member_of_attribute,
                "memberOf",
            )?,
            max_groups,
        };
        if crate::dn::parse(&groups.base).is_err() {
            return Err(Error::config("groups.base", &groups.base, "not a valid DN"));
        }

        let mut session_keys: Vec<SessionKeyConfig> = Vec::new();
        for (i, k) in raw.session_keys.into_iter().enumerate() {
            if !autoid_protocol::valid_id(&k.kid) {
                return Err(Error::config(
                    format!("session_keys[{i}].kid"),
                    format!("{:?}", k.kid),
                    "not a key id (1 to 64 of A-Z a-z 0-9 . _ -)",
                ));
            }
            if session_keys.iter().any(|have| have.kid == k.kid) {
                return Err(Error::config(
                    format!("session_keys[{i}].kid"),
                    format!("{:?}", k.kid),
                    "duplicate key id",
                ));
            }
            session_keys.push(SessionKeyConfig {
                kid: k.kid,
                private_key_file: k.private_key_file,
                not_after: k.not_after,
            });
        }
        let mut epoch_files = Vec::with_capacity(raw.epoch_files.len());
        for (i, f) in raw.epoch_files.into_iter().enumerate() {
            let (at, entry) = match f {
                serde_json::Value::String(file) => (
                    format!("epoch_files[{i}]"),
                    EpochFileConfig {
                        file: PathBuf::from(file),
                        not_after: None,
                    },
                ),
                serde_json::Value::Object(_) => {
                    let r: RawRetiringEpoch = serde_json::from_value(f.clone()).map_err(|e| {
                        Error::config(format!("epoch_files[{i}]"), &f, e.to_string())
                    })?;
                    (
                        format!("epoch_files[{i}].file"),
                        EpochFileConfig {
                            file: r.file,
                            not_after: r.not_after,
                        },
                    )
                }
                other => {
                    return Err(Error::config(
                        format!("epoch_files[{i}]"),
                        other,
                        "expected a file name or {\"file\": ..., \"not_after\": unix_secs}",
                    ));
                }
            };
            if entry.file.as_os_str().is_empty() {
                return Err(Error::config(at, "\"\"", "empty file name"));
            }
            epoch_files.push(entry);
        }
        let stream_ttl_secs = raw.stream_ttl_secs.unwrap_or(DEFAULT_STREAM_TTL_SECS);
        if !(1..=86_400).contains(&stream_ttl_secs) {
            return Err(Error::config(
                "stream_ttl_secs",
                stream_ttl_secs,
                "must be between 1 and 86400",
            ));
        }
        Ok(Config {
            listen,
            token_file: raw.token_file,
            request_timeout,
            ldap,
            users,
            groups,
            session_keys,
            epoch_files,
            stream_ttl_secs,
            credentials_file: raw.credentials_file,
            replay: raw.replay.map(ReplayConfig::try_from).transpose()?,
            check: raw.check.map(CheckConfig::try_from).transpose()?,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"ldap":{"url":"ldap://127.0.0.1:3890","bind_dn":"cn=x"},
        "users":{"base":"dc=example,dc=org"},"groups":{"base":"ou=groups,dc=example,dc=org"}}"#;

    #[test]
    fn defaults() {
        let c = Config::from_json(MIN).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            c.listen,
            Listen::Unix {
                path: "autoid-agent.sock".into(),
                mode: 0o600
            }
        );
        assert_eq!(c.users.filter, DEFAULT_USER_FILTER);
        assert_eq!(c.groups.sources.len(), 4);
        assert_eq!(c.ldap.pool_size, 4);
        assert!(!c.listen_is_public());
    }

    #[test]
    fn unknown_field_is_an_error() {
        let text = MIN.replace("\"bind_dn\"", "\"bind_dnn\":1,\"bind_dn\"");
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("bind_dnn"), "{e}");
    }

    #[test]
    fn errors_name_path_and_value() {
        let text = MIN.replace("\"bind_dn\"", "\"pool_size\":0,\"bind_dn\"");
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(
            e.contains("ldap.pool_size") && e.contains("value: 0"),
            "{e}"
        );
        let text = MIN.replace(
            "\"base\":\"dc=example,dc=org\"",
            "\"base\":\"dc=example,dc=org\",\"filter\":\"(uid=x)\"",
        );
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("users.filter") && e.contains("{subject}"), "{e}");
        let text = MIN.replace("ldap://", "http://");
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("ldap.url"), "{e}");
        let text = MIN.replace("\"bind_dn\"", "\"starttls\":true,\"url2\":1,\"bind_dn\"");
        assert!(Config::from_json(&text).is_err());
    }

    #[test]
    fn ldaps_with_starttls_rejected() {
        let text = MIN
            .replace("ldap://", "ldaps://")
            .replace("\"bind_dn\"", "\"starttls\":true,\"bind_dn\"");
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("ldap.starttls"), "{e}");
    }

    #[test]
    fn duplicate_source_rejected() {
        let text = MIN.replace(
            "\"base\":\"ou=groups",
            "\"sources\":[\"member_of\",\"member_of\"],\"base\":\"ou=groups",
        );
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains("groups.sources[1]"), "{e}");
    }

    fn with(extra: &str) -> Result<Config, Error> {
        Config::from_json(&MIN.replacen('{', &format!("{{{extra},"), 1))
    }

    #[test]
    fn listen_transports() {
        let c = with(r#""listen":"unix:/run/autoid/agent.sock","socket_mode":"0660""#).unwrap();
        assert_eq!(
            c.listen,
            Listen::Unix {
                path: "/run/autoid/agent.sock".into(),
                mode: 0o660
            }
        );
        let c = with(r#""listen":"127.0.0.1:8389","tls":{"cert_file":"c.pem","key_file":"k.pem"}"#)
            .unwrap();
        assert!(matches!(c.listen, Listen::Tls { .. }) && c.listen.needs_token());
        let c = with(r#""listen":"127.0.0.1:8389","insecure_plain_tcp":true"#).unwrap();
        assert_eq!(
            c.listen,
            Listen::PlainTcp("127.0.0.1:8389".parse().unwrap())
        );
    }

    #[test]
    fn tcp_without_tls_is_refused_with_the_field_path() {
        let e = with(r#""listen":"127.0.0.1:8389""#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tls: ") && e.contains("127.0.0.1:8389"),
            "{e}"
        );
        assert!(e.contains("insecure_plain_tcp"), "{e}");
        for (extra, path) in [
            (
                r#""listen":"unix:a.sock","tls":{"cert_file":"c","key_file":"k"}"#,
                "tls",
            ),
            (
                r#""listen":"unix:a.sock","insecure_plain_tcp":true"#,
                "insecure_plain_tcp",
            ),
            (
                r#""listen":"unix:a.sock","socket_mode":"0666""#,
                "socket_mode",
            ),
            (
                r#""listen":"127.0.0.1:1","socket_mode":"0600","insecure_plain_tcp":true"#,
                "socket_mode",
            ),
            (
                r#""listen":"127.0.0.1:1","insecure_plain_tcp":true,"tls":{"cert_file":"c","key_file":"k"}"#,
                "insecure_plain_tcp",
            ),
            (r#""listen":"unix:""#, "listen"),
            (r#""listen":"localhost""#, "listen"),
        ] {
            let e = with(extra).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{path}: ")), "{extra}: {e}");
        }
    }
}
