//! `apis`: one definition per Envoy route, its groups, headers and accepted methods.

use std::collections::BTreeMap;

use super::check::{group_list, header_name};
use super::error::{ConfigError, err};
use super::raw::{RawApi, RawApiAuth};

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

/// `apis`: every definition checked; `proof_header` may not be set by any.
pub(super) fn apis(
    raw: BTreeMap<String, RawApi>,
    proof_header: &str,
    has_agent: bool,
) -> Result<BTreeMap<String, Api>, ConfigError> {
    let mut apis = BTreeMap::new();
    for (name, a) in raw {
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
            if !has_agent {
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
        let (proof, basic) = api_auth(&at, a.auth, has_agent)?;
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
        if seen.contains(&proof_header) {
            return Err(err(at, "the proof header cannot be an identity header"));
        }
        apis.insert(name, api);
    }
    if apis.is_empty() {
        return Err(err("apis", "at least one API is required"));
    }

    Ok(apis)
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
