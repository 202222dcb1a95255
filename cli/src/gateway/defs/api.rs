//! `apis/*.json`: one API definition per file (upstream, auth, identity, AWS), its shapes and
//! its checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use super::gateway::Source;
use super::read::field;

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

pub(super) fn check_api(file: &Path, api: &ApiDef) -> Result<Upstream> {
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
