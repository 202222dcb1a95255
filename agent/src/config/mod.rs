//! The JSON configuration file (parsed raw, then validated) and the secrets.
//!
//! One module per section (`listen`, `ldap` with `users` and `groups`, `keys`, `replay`,
//! `check`), and `secrets`: secrets never come from command-line values (they would show in
//! `ps`): the bearer token and the service-account password are read from files named in the
//! config (or by flags), or from environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

mod check;
mod keys;
mod ldap;
mod listen;
mod replay;
mod secrets;

pub use check::{CheckConfig, RawCheck};
pub use keys::{EpochFileConfig, RawRetiringEpoch, RawSessionKey, SessionKeyConfig};
pub use ldap::{
    DEFAULT_GROUP_OF_NAMES_FILTER, DEFAULT_GROUP_OF_UNIQUE_NAMES_FILTER,
    DEFAULT_POSIX_GROUP_FILTER, DEFAULT_USER_FILTER, GroupSource, GroupsConfig, LdapConfig,
    RawGroups, RawLdap, RawUsers, Scope, UsersConfig,
};
pub use listen::{DEFAULT_LISTEN, Listen, RawServerTls, UNIX_PREFIX};
pub use replay::{DEFAULT_REPLAY_TIMEOUT_MS, RawReplay, ReplayConfig};
pub(crate) use secrets::read_secret;
pub use secrets::{MIN_TOKEN_LEN, Secrets};

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

/// A duration in milliseconds, 1 to 600 000, `default` when unset.
pub(super) fn ms(path: &str, v: Option<u64>, default: u64) -> Result<Duration, Error> {
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

/// A trimmed, non-empty value.
pub(super) fn non_empty(path: &str, v: &str) -> Result<String, Error> {
    let t = v.trim();
    if t.is_empty() {
        return Err(Error::config(path, format!("{v:?}"), "must not be empty"));
    }
    Ok(t.to_owned())
}

impl TryFrom<RawConfig> for Config {
    type Error = Error;

    fn try_from(raw: RawConfig) -> Result<Config, Error> {
        let listen = listen::listen(raw.listen, raw.socket_mode, raw.tls, raw.insecure_plain_tcp)?;
        let request_timeout = ms("request_timeout_ms", raw.request_timeout_ms, 5_000)?;
        let ldap = ldap::ldap(raw.ldap)?;
        let users = ldap::users(raw.users)?;
        let groups = ldap::groups(raw.groups)?;
        let session_keys = keys::session_keys(raw.session_keys)?;
        let epoch_files = keys::epoch_files(raw.epoch_files)?;
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
