//! `ldap`, `users` and `groups`: the directory connection, the user lookup and where group
//! memberships come from, with their filter templates checked.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ms, non_empty};
use crate::error::Error;

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

/// Default user filter.
pub const DEFAULT_USER_FILTER: &str = "(&(objectClass=posixAccount)(uid={subject}))";
pub const DEFAULT_POSIX_GROUP_FILTER: &str = "(&(objectClass=posixGroup)(memberUid={uid}))";
pub const DEFAULT_GROUP_OF_NAMES_FILTER: &str = "(&(objectClass=groupOfNames)(member={dn}))";
pub const DEFAULT_GROUP_OF_UNIQUE_NAMES_FILTER: &str =
    "(&(objectClass=groupOfUniqueNames)(uniqueMember={dn}))";

/// `ldap`: the url, TLS and pool settings, checked together.
pub(super) fn ldap(l: RawLdap) -> Result<LdapConfig, Error> {
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

    Ok(ldap)
}

/// `users`: where and how a subject's entry is found.
pub(super) fn users(u: RawUsers) -> Result<UsersConfig, Error> {
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

    Ok(users)
}

/// `groups`: the sources, each at most once, and their filters.
pub(super) fn groups(g: RawGroups) -> Result<GroupsConfig, Error> {
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

    Ok(groups)
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
    let filled = crate::template::render(&v, &sample);
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
