//! The gateway's own files: `gateway.json` (listeners, TLS, plugin keys and epochs, directory)
//! and one API definition per file under `apis/`. Parsed with `deny_unknown_fields`; every error
//! names the file, the field path and the value.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

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
/// epochs' master secrets (`plugin.epochs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HeldBy {
    /// The filter, inside Envoy (standalone; the secrets are in the bootstrap).
    #[default]
    Filter,
    /// The agent: Envoy's configuration names key ids, or epoch ids and public parameters, only.
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
    /// Who unwraps sessions: `filter` (the private keys go into Envoy's configuration) or
    /// `agent` (only the key ids do; the agent at `directory.address` holds the keys).
    #[serde(default)]
    pub(crate) session_keys: HeldBy,
    /// Who derives subjects' entropy: `filter` (the epoch secrets go into Envoy's
    /// configuration) or `agent` (only the epoch ids and public parameters do; the agent at
    /// `directory.address`, with the same files as its `epoch_files`, hands out per-subject keys).
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
    /// With `plugin.session_keys: "agent"`: how long the filter keeps a session the agent
    /// unwrapped before asking again (the filter's `agent.session_ttl_secs`).
    #[serde(default)]
    pub(crate) session_ttl_secs: Option<u64>,
    /// With `plugin.epochs: "agent"`: the longest the filter keeps a subject's stream the agent
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

/// One API definition (`apis/<id>.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiDef {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    pub(crate) listen_path: String,
    #[serde(default)]
    pub(crate) strip_listen_path: bool,
    /// The upstream URL; absent for an API that vends AWS credentials (`aws_role`).
    #[serde(default)]
    pub(crate) upstream: String,
    /// Vend short-lived AWS credentials for this role instead of proxying: the agent calls STS
    /// `AssumeRole` for each allowed request (docs/AWS.md).
    #[serde(default)]
    pub(crate) aws_role: Option<AwsRoleDef>,
    /// The upstream is an AWS service: Envoy signs each allowed request (SigV4) with short-lived
    /// credentials of this role, which the agent keeps fresh in a file (docs/AWS.md).
    #[serde(default)]
    pub(crate) aws_service: Option<AwsServiceDef>,
    #[serde(default)]
    pub(crate) upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) timeouts: Timeouts,
    #[serde(default)]
    pub(crate) auth: Auth,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Timeouts {
    /// The whole upstream exchange (Envoy's route timeout); default 15000.
    #[serde(default)]
    pub(crate) upstream_ms: Option<u64>,
    /// TCP connect to the upstream; default 2000.
    #[serde(default)]
    pub(crate) connect_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Auth {
    #[serde(default)]
    pub(crate) require: Require,
    #[serde(default)]
    pub(crate) inject: BTreeMap<String, Source>,
    #[serde(default)]
    pub(crate) identity: Identity,
    /// `["proof"]` (the default), `["ldap_basic"]`, or both: passed to the filter as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) methods: Option<Vec<String>>,
    /// HTTP Basic's realm, plain-HTTP rule and bind cache TTL: passed to the filter as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) basic: Option<serde_json::Value>,
}

impl Auth {
    /// Whether the API accepts HTTP Basic checked by the agent's directory bind.
    pub(crate) fn ldap_basic(&self) -> bool {
        self.methods
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "ldap_basic"))
    }

    /// The API's `auth.basic.plain_http`, if set.
    pub(crate) fn plain_http(&self) -> Option<&str> {
        self.basic.as_ref()?.get("plain_http")?.as_str()
    }
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Require {
    #[serde(default)]
    pub(crate) any_of: Vec<String>,
    #[serde(default)]
    pub(crate) all_of: Vec<String>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) groups_header: Option<String>,
}

/// `aws_role`: `{"role_arn": …, "duration_secs": …?}`, passed to the agent's credentials file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsRoleDef {
    pub(crate) role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration_secs: Option<u32>,
}

/// `aws_service`: `{"service": "secretsmanager", "region": "us-east-1", "role_arn": …,
/// "duration_secs": …?}`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsServiceDef {
    pub(crate) service: String,
    pub(crate) region: String,
    pub(crate) role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration_secs: Option<u32>,
}

/// The agent path an `aws_role` API's requests are sent to.
pub(crate) fn aws_credentials_path(api: &str) -> String {
    format!("/v1/aws/credentials/{api}")
}

/// An upstream URL split for Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The base path, `/` when the URL has none.
    pub(crate) path: String,
}

impl Upstream {
    /// The authority the upstream is asked with: `host`, `[v6]`, and `:port` unless the
    /// scheme's default.
    pub(crate) fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
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

/// Everything in a config directory, checked.
#[derive(Debug)]
pub(crate) struct Definitions {
    /// The config directory: relative paths in the files are relative to it.
    pub(crate) dir: PathBuf,
    pub(crate) gateway: Gateway,
    /// `(file, definition, parsed upstream)`, sorted by id.
    pub(crate) apis: Vec<(PathBuf, ApiDef, Upstream)>,
}

/// Parses JSON with the failing field's path in the error: `file: a.b[0]: message`.
fn parse<T: DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            anyhow!("{}: {inner}", file.display())
        } else {
            anyhow!("{}: {path}: {inner}", file.display())
        }
    })
}

fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(|e| anyhow!("{}: cannot read: {e}", file.display()))
}

/// A field error: `file: path: message (value: "v")`.
fn field(file: &Path, path: &str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {path}: {message}", file.display())
}

impl Definitions {
    /// Reads `dir/gateway.json` and every `dir/apis/*.json`.
    pub(crate) fn load(dir: &Path) -> Result<Definitions> {
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        let gateway_file = dir.join("gateway.json");
        let gateway: Gateway = parse(&gateway_file, &read(&gateway_file)?)?;
        check_gateway(&gateway_file, &gateway)?;

        let apis_dir = dir.join("apis");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&apis_dir)
            .map_err(|e| anyhow!("{}: cannot list API definitions: {e}", apis_dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{}: no API definitions (*.json)", apis_dir.display());
        }
        let mut apis: Vec<(PathBuf, ApiDef, Upstream)> = Vec::new();
        for file in files {
            let api: ApiDef = parse(&file, &read(&file)?)?;
            let upstream = check_api(&file, &api)?;
            if let Some((other, _, _)) = apis.iter().find(|(_, a, _)| a.id == api.id) {
                return Err(field(
                    &file,
                    "id",
                    format!(
                        "duplicate API id {:?} (also in {})",
                        api.id,
                        other.display()
                    ),
                ));
            }
            if let Some((other, a, _)) = apis
                .iter()
                .find(|(_, a, _)| a.listen_path == api.listen_path)
            {
                return Err(field(
                    &file,
                    "listen_path",
                    format!(
                        "{:?} is also the listen_path of {:?} ({})",
                        api.listen_path,
                        a.id,
                        other.display()
                    ),
                ));
            }
            apis.push((file, api, upstream));
        }
        apis.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        Ok(Definitions {
            dir: dir.to_owned(),
            gateway,
            apis,
        })
    }

    /// `path` relative to the config directory (absolute paths stay).
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }
    }

    /// Reads a [`Source`]; `file` and `path` name where it was referenced, for errors.
    pub(crate) fn source(&self, source: &Source, file: &Path, path: &str) -> Result<String> {
        let value = match source {
            Source::AwsSecretsmanager(_) => {
                return Err(field(
                    file,
                    path,
                    "an aws_secretsmanager source is resolved by the agent only",
                ));
            }
            Source::Value(v) => v.clone(),
            Source::Env(name) => std::env::var(name).map_err(|_| {
                field(
                    file,
                    path,
                    format!("environment variable {name:?} is not set (or not UTF-8)"),
                )
            })?,
            Source::File(p) => {
                let full = self.resolve(p);
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    field(file, path, format!("cannot read {}: {e}", full.display()))
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_owned()
            }
        };
        if value.is_empty() {
            return Err(field(file, path, "the value is empty"));
        }
        Ok(value)
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

fn check_gateway(file: &Path, g: &Gateway) -> Result<()> {
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

fn check_api(file: &Path, api: &ApiDef) -> Result<Upstream> {
    if !autoid_protocol::valid_id(&api.id) {
        return Err(field(
            file,
            "id",
            format!(
                "an id is 1 to 32 characters of A-Z a-z 0-9 _ - (value: {:?})",
                api.id
            ),
        ));
    }
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != api.id {
        return Err(field(
            file,
            "id",
            format!(
                "the file of API {:?} must be named {}.json (value: {:?})",
                api.id, api.id, api.id
            ),
        ));
    }
    if api.name.trim().is_empty() {
        return Err(field(file, "name", "empty name"));
    }
    let lp = &api.listen_path;
    if !lp.starts_with('/')
        || !lp.ends_with('/')
        || lp.contains(['?', '#', ' ', '%', '*'])
        || lp.split('/').any(|seg| seg == "." || seg == "..")
    {
        return Err(field(
            file,
            "listen_path",
            format!("expected a path prefix that starts and ends with / (value: {lp:?})"),
        ));
    }
    if let Some(role) = &api.aws_role {
        return check_aws_role(file, api, role);
    }
    if api.upstream.is_empty() {
        return Err(field(
            file,
            "upstream",
            "required (an http(s) URL), unless aws_role is set",
        ));
    }
    if let Some(s) = &api.aws_service {
        check_aws_service(file, s)?;
    }
    let url = url::Url::parse(&api.upstream)
        .map_err(|e| field(file, "upstream", format!("{e} (value: {:?})", api.upstream)))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(field(
                file,
                "upstream",
                format!(
                    "scheme {other:?} is not http or https (value: {:?})",
                    api.upstream
                ),
            ));
        }
    };
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(field(
            file,
            "upstream",
            format!(
                "no query, fragment or user info allowed (value: {:?})",
                api.upstream
            ),
        ));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => {
            return Err(field(
                file,
                "upstream",
                format!("no host (value: {:?})", api.upstream),
            ));
        }
    };
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    if api.upstream_ca_file.is_some() && !tls {
        return Err(field(
            file,
            "upstream_ca_file",
            "only for an https upstream",
        ));
    }
    for (key, value) in [
        ("timeouts.upstream_ms", api.timeouts.upstream_ms),
        ("timeouts.connect_ms", api.timeouts.connect_ms),
    ] {
        if let Some(v) = value
            && !(1..=600_000).contains(&v)
        {
            return Err(field(
                file,
                key,
                format!("{v} is out of range (1 to 600000)"),
            ));
        }
    }
    Ok(Upstream {
        tls,
        host,
        port,
        path: url.path().to_owned(),
    })
}

/// An API whose upstream is an AWS service: a service name and region as SigV4 names them, and
/// the role whose credentials sign.
fn check_aws_service(file: &Path, s: &AwsServiceDef) -> Result<()> {
    let name = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name(&s.service) {
        return Err(field(
            file,
            "aws_service.service",
            format!(
                "not a service name such as \"secretsmanager\" (value: {:?})",
                s.service
            ),
        ));
    }
    if !name(&s.region) {
        return Err(field(
            file,
            "aws_service.region",
            format!("not a region such as \"us-east-1\" (value: {:?})", s.region),
        ));
    }
    if !s.role_arn.starts_with("arn:") || !s.role_arn.contains(":role/") {
        return Err(field(
            file,
            "aws_service.role_arn",
            format!(
                "not a role ARN, arn:aws:iam::<account>:role/<name> (value: {:?})",
                s.role_arn
            ),
        ));
    }
    if let Some(d) = s.duration_secs
        && !(900..=3600).contains(&d)
    {
        return Err(field(
            file,
            "aws_service.duration_secs",
            format!("900 to 3600 (value: {d})"),
        ));
    }
    Ok(())
}

/// An API that vends AWS credentials: no upstream of its own (the agent answers), and the
/// subject and groups headers the agent reads.
fn check_aws_role(file: &Path, api: &ApiDef, role: &AwsRoleDef) -> Result<Upstream> {
    if !api.upstream.is_empty() {
        return Err(field(
            file,
            "upstream",
            "an API with aws_role has no upstream: the agent answers it",
        ));
    }
    if api.aws_service.is_some() {
        return Err(field(
            file,
            "aws_service",
            "an API with aws_role has no upstream to sign for: use one or the other",
        ));
    }
    if !role.role_arn.starts_with("arn:") || !role.role_arn.contains(":role/") {
        return Err(field(
            file,
            "aws_role.role_arn",
            format!(
                "not a role ARN, arn:aws:iam::<account>:role/<name> (value: {:?})",
                role.role_arn
            ),
        ));
    }
    if let Some(d) = role.duration_secs
        && !(900..=3600).contains(&d)
    {
        return Err(field(
            file,
            "aws_role.duration_secs",
            format!("900 to 3600 (value: {d})"),
        ));
    }
    let identity = &api.auth.identity;
    if identity.subject_header.as_deref() != Some("x-autoid-subject")
        || identity.groups_header.as_deref() != Some("x-autoid-groups")
    {
        return Err(field(
            file,
            "auth.identity",
            "an API with aws_role needs subject_header \"x-autoid-subject\" and groups_header \"x-autoid-groups\" (the agent reads them)",
        ));
    }
    Ok(Upstream {
        tls: false,
        host: "autoid-agent".to_owned(),
        port: 0,
        path: aws_credentials_path(&api.id),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn api_err(json: &str) -> String {
        let file = Path::new("apis/pay.json");
        match parse::<ApiDef>(file, json.as_bytes()) {
            Err(e) => format!("{e:#}"),
            Ok(api) => format!("{:#}", check_api(file, &api).unwrap_err()),
        }
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_value() {
        let base = r#""id":"pay","name":"P","listen_path":"/p/","upstream":"http://u:1""#;
        assert_eq!(
            api_err(&format!(
                r#"{{{base},"auth":{{"require":{{"any_of":[1]}}}}}}"#
            )),
            "apis/pay.json: auth.require.any_of[0]: invalid type: integer `1`, expected a string at line 1 column 97"
        );
        let e = api_err(&format!(
            r#"{{{base},"auth":{{"inject":{{"x":{{"env":"A","file":"b"}}}}}}}}"#
        ));
        assert!(e.starts_with("apis/pay.json: auth.inject.x"), "{e}");
        let e = api_err(&format!(r#"{{{base},"timeout":{{}}}}"#));
        assert!(e.contains("unknown field `timeout`"), "{e}");
        let e = api_err(r#"{"id":"pay","name":"P","listen_path":"p/","upstream":"http://u:1"}"#);
        assert_eq!(
            e,
            "apis/pay.json: listen_path: expected a path prefix that starts and ends with / (value: \"p/\")"
        );
        let e = api_err(r#"{"id":"pay","name":"P","listen_path":"/p/","upstream":"ftp://u"}"#);
        assert!(
            e.starts_with("apis/pay.json: upstream: scheme \"ftp\""),
            "{e}"
        );
        let e = api_err(r#"{"id":"other","name":"P","listen_path":"/p/","upstream":"http://u"}"#);
        assert!(e.contains("must be named other.json"), "{e}");
    }

    #[test]
    fn upstreams_split() {
        let file = Path::new("apis/pay.json");
        let api: ApiDef = parse(
            file,
            br#"{"id":"pay","name":"P","listen_path":"/p/","upstream":"https://api.example/v1/"}"#,
        )
        .unwrap();
        assert_eq!(
            check_api(file, &api).unwrap(),
            Upstream {
                tls: true,
                host: "api.example".into(),
                port: 443,
                path: "/v1/".into()
            }
        );
        assert!(api.enabled);
    }

    #[test]
    fn host_port_parses() {
        assert_eq!(
            host_port("127.0.0.1:8389"),
            Some(("127.0.0.1".into(), 8389))
        );
        assert_eq!(host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(host_port("nope"), None);
        assert_eq!(host_port("h:0"), None);
    }
}
