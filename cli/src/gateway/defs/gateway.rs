//! `gateway.json`: listeners, TLS, the plugin's keys and epochs, the directory (the agent), the
//! credentials' settings; the shapes and their checks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use super::read::field;

/// Where a secret or a value comes from: `{"env": "NAME"}`, `{"file": "path"}`,
/// `{"value": "literal"}` or `{"aws_secretsmanager": {…}}` (exactly one key).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Source {
    /// An environment variable (of the agent, or of `autoid gateway render` when it resolves).
    Env(String),
    /// A file (relative paths: to the config directory); one trailing newline is dropped.
    File(PathBuf),
    /// The value itself (not a secret: it goes into Envoy's configuration).
    Value(String),
    /// A secret in AWS Secrets Manager, always resolved by the agent.
    AwsSecretsmanager(AwsSecret),
}

/// `{"secret_id": …, "json_key": …?, "version_stage": …?}`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsSecret {
    pub(crate) secret_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) json_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version_stage: Option<String>,
}

/// Who resolves injected `env` and `file` sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Resolve {
    /// The agent, at run time and on every refresh: Envoy's configuration holds header names only.
    #[default]
    Agent,
    /// `autoid gateway render`, once: the values go into Envoy's configuration (no agent needed).
    Render,
}

/// `gateway.json`'s `credentials`: who resolves injected secrets, and how the agent and the
/// filter cache them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialsDef {
    #[serde(default)]
    pub(crate) resolve: Resolve,
    /// How often the agent fetches each source again (default 60).
    #[serde(default)]
    pub(crate) refresh_secs: Option<u64>,
    /// How long a last good value is served after its source (at the agent) or the agent (at
    /// the filter) starts failing (default 300).
    #[serde(default)]
    pub(crate) stale_secs: Option<u64>,
    /// How early before expiry the filter refreshes in the background (default 10).
    #[serde(default)]
    pub(crate) refresh_ahead_secs: Option<u64>,
    /// Secrets Manager's region and endpoint (else the agent's AWS_* environment).
    #[serde(default)]
    pub(crate) aws: Option<serde_json::Value>,
    /// Where the agent writes the short-lived credentials Envoy signs `aws_service` APIs'
    /// requests with (relative: to the config directory); required when an API has one.
    #[serde(default)]
    pub(crate) aws_signing_dir: Option<PathBuf>,
}

/// Who holds a long-term secret: the gateway's private keys (`plugin.session_keys`) or the
/// epochs' master secrets (`plugin.epochs`). Always the agent: the value is accepted so that
/// definitions written when the filter could hold them still load, and `"filter"` is refused
/// with an error that says why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HeldBy {
    /// Retired: the filter inside Envoy held the secrets (they were in the bootstrap).
    Filter,
    /// The agent: Envoy's configuration names key ids, or epoch ids and public parameters, only.
    #[default]
    Agent,
}

/// `gateway.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Gateway {
    pub(crate) listeners: Listeners,
    pub(crate) plugin: Plugin,
    #[serde(default)]
    pub(crate) directory: Option<DirectoryDef>,
    #[serde(default)]
    pub(crate) static_groups: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub(crate) access_log: Option<bool>,
    #[serde(default)]
    pub(crate) credentials: CredentialsDef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listeners {
    #[serde(default)]
    pub(crate) https: Option<HttpsListener>,
    #[serde(default)]
    pub(crate) http: Option<Listener>,
    #[serde(default)]
    pub(crate) admin: Option<AdminDef>,
}

/// Envoy's admin interface: a unix socket (the default, beside the rendered bootstrap), or TCP on
/// loopback only when `address` and `port` ask for it (a warning at render time).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminDef {
    /// The socket's path (relative: to the config directory); created mode 0600.
    #[serde(default)]
    pub(crate) socket: Option<PathBuf>,
    #[serde(default)]
    pub(crate) address: Option<String>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
}

/// Where the admin interface listens, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admin {
    /// A unix socket at this path; `None`: beside the rendered bootstrap.
    Socket(Option<PathBuf>),
    /// TCP, loopback only.
    Tcp(String, u16),
}

impl Listeners {
    /// The admin interface as configured (a socket unless TCP is asked for).
    pub(crate) fn admin(&self) -> Admin {
        match &self.admin {
            Some(AdminDef {
                address: Some(a),
                port: Some(p),
                ..
            }) => Admin::Tcp(a.clone(), *p),
            Some(AdminDef { socket, .. }) => Admin::Socket(socket.clone()),
            None => Admin::Socket(None),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listener {
    pub(crate) address: String,
    pub(crate) port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpsListener {
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
    #[serde(default)]
    pub(crate) hsts_max_age_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plugin {
    pub(crate) wasm_file: PathBuf,
    #[serde(default)]
    pub(crate) proof_header: Option<String>,
    pub(crate) keys_dir: PathBuf,
    /// Who unwraps sessions: `agent` (the default and the only value accepted: Envoy's
    /// configuration names the key ids, the agent at `directory.address` holds the keys).
    #[serde(default)]
    pub(crate) session_keys: HeldBy,
    /// Who derives subjects' entropy: `agent` (the default and the only value accepted: Envoy's
    /// configuration names the epoch ids and public parameters; the agent at `directory.address`,
    /// with the same files as its `epoch_files`, hands out per-subject keys).
    #[serde(default)]
    pub(crate) epochs: HeldBy,
    pub(crate) epoch_files: Vec<PathBuf>,
    // Passed through to the filter configuration as they are; `Config::from_json` checks them.
    #[serde(default)]
    pub(crate) limits: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) session_cache: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) cold_path: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) replay: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryDef {
    /// The autoid agent: `unix:<path>` (its socket; relative paths: to the config directory) or
    /// `host:port` (TCP with TLS).
    pub(crate) address: String,
    /// The agent's bearer token: required for TCP, refused for a unix socket (Envoy's
    /// configuration would hold a secret the socket's permissions make unnecessary).
    #[serde(default)]
    pub(crate) token: Option<Source>,
    /// CA file the agent's TLS certificate must chain to (TCP only; required there).
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(crate) timeout_ms: Option<u64>,
    /// How long the filter keeps a session the agent
    /// unwrapped before asking again (the filter's `agent.session_ttl_secs`).
    #[serde(default)]
    pub(crate) session_ttl_secs: Option<u64>,
    /// The longest the filter keeps a subject's stream the agent
    /// handed over before asking again (the filter's `agent.max_stream_ttl_secs`).
    #[serde(default)]
    pub(crate) max_stream_ttl_secs: Option<u64>,
    #[serde(default)]
    pub(crate) positive_ttl_secs: Option<u64>,
    #[serde(default)]
    pub(crate) negative_ttl_secs: Option<u64>,
    #[serde(default)]
    pub(crate) stale_if_error_secs: Option<u64>,
    #[serde(default)]
    pub(crate) max_entries: Option<u32>,
}

/// Where Envoy reaches the autoid agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentAddress {
    /// A unix socket (the path as written; relative: to the config directory).
    Unix(PathBuf),
    /// TCP with TLS: host and port.
    Tcp(String, u16),
}

/// The prefix of a unix-socket agent address.
pub(crate) const UNIX_PREFIX: &str = "unix:";

impl DirectoryDef {
    /// The agent's address, parsed (checked by `check_gateway`).
    pub(crate) fn agent_address(&self) -> Option<AgentAddress> {
        match self.address.strip_prefix(UNIX_PREFIX) {
            Some(path) if !path.is_empty() && !path.ends_with('/') => {
                Some(AgentAddress::Unix(PathBuf::from(path)))
            }
            Some(_) => None,
            None => host_port(&self.address).map(|(h, p)| AgentAddress::Tcp(h, p)),
        }
    }
}

fn check_address(file: &Path, path: &str, address: &str) -> Result<()> {
    address.parse::<IpAddr>().map(|_| ()).map_err(|_| {
        field(
            file,
            path,
            format!("expected an IP address (value: {address:?})"),
        )
    })
}

pub(super) fn check_gateway(file: &Path, g: &Gateway) -> Result<()> {
    let l = &g.listeners;
    if l.https.is_none() && l.http.is_none() {
        return Err(field(
            file,
            "listeners",
            "at least one of https and http is required",
        ));
    }
    if let Some(h) = &l.https {
        check_address(file, "listeners.https.address", &h.address)?;
        if let Some(age) = h.hsts_max_age_secs
            && age > 2 * 31_536_000
        {
            return Err(field(
                file,
                "listeners.https.hsts_max_age_secs",
                format!("{age} is more than two years"),
            ));
        }
    }
    if let Some(h) = &l.http {
        check_address(file, "listeners.http.address", &h.address)?;
    }
    if let Some(a) = &l.admin {
        match (&a.socket, &a.address, a.port) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Err(field(
                    file,
                    "listeners.admin",
                    "give either `socket` or `address` and `port`, not both".to_owned(),
                ));
            }
            (None, _, _) => {
                return Err(field(
                    file,
                    "listeners.admin",
                    "a TCP admin needs both `address` and `port` (or give `socket`, the default)"
                        .to_owned(),
                ));
            }
        }
    }
    if let Admin::Tcp(address, _) = l.admin() {
        check_address(file, "listeners.admin.address", &address)?;
        if address.parse::<IpAddr>().is_ok_and(|ip| !ip.is_loopback()) {
            return Err(field(
                file,
                "listeners.admin.address",
                format!(
                    "the admin interface must bind a loopback address: it can dump the \
                     configuration and stop Envoy (value: {address:?})"
                ),
            ));
        }
    }
    let ports: Vec<(&str, u16)> = [
        l.https.as_ref().map(|h| ("https", h.port)),
        l.http.as_ref().map(|h| ("http", h.port)),
        match l.admin() {
            Admin::Tcp(_, port) => Some(("admin", port)),
            Admin::Socket(_) => None,
        },
    ]
    .into_iter()
    .flatten()
    .filter(|(_, p)| *p != 0)
    .collect();
    for (i, (a, p)) in ports.iter().enumerate() {
        if let Some((b, _)) = ports[i + 1..].iter().find(|(_, q)| q == p) {
            return Err(field(
                file,
                &format!("listeners.{b}.port"),
                format!("port {p} is also the {a} listener's"),
            ));
        }
    }
    if g.plugin.epoch_files.is_empty() {
        return Err(field(
            file,
            "plugin.epoch_files",
            "at least one is required",
        ));
    }
    match (&g.directory, &g.static_groups) {
        (Some(_), Some(_)) => {
            return Err(field(
                file,
                "static_groups",
                "use either directory or static_groups, not both",
            ));
        }
        (None, None) => {
            return Err(field(
                file,
                "directory",
                "required (or static_groups, for demos without a directory)",
            ));
        }
        _ => {}
    }
    if let Some(d) = &g.directory {
        let address = d.agent_address().ok_or_else(|| {
            field(
                file,
                "directory.address",
                format!(
                    "expected unix:<socket path> or host:port (value: {:?})",
                    d.address
                ),
            )
        })?;
        match address {
            AgentAddress::Unix(_) => {
                if d.token.is_some() {
                    return Err(field(
                        file,
                        "directory.token",
                        "not used with a unix socket address: the socket's file permissions \
                         authenticate Envoy, and a token here would sit in Envoy's config_dump \
                         (remove it, and the agent's token_file, or use host:port with TLS)",
                    ));
                }
                if d.ca_file.is_some() {
                    return Err(field(
                        file,
                        "directory.ca_file",
                        "only for a TCP (TLS) agent address; this one is a unix socket",
                    ));
                }
            }
            AgentAddress::Tcp(..) => {
                if d.token.is_none() {
                    return Err(field(
                        file,
                        "directory.token",
                        format!(
                            "required for a TCP agent address (value of directory.address: {:?}); \
                             or use unix:<socket path>, which needs none",
                            d.address
                        ),
                    ));
                }
                if d.ca_file.is_none() {
                    return Err(field(
                        file,
                        "directory.ca_file",
                        format!(
                            "required for a TCP agent address: Envoy reaches the agent over TLS \
                             and verifies it against this CA (value of directory.address: {:?})",
                            d.address
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Splits `host:port` (IPv6 in brackets).
pub(crate) fn host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((host.to_owned(), port))
}
