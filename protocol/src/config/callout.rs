//! The callout targets: the agent (sessions, streams, credentials, fleet claims) and the
//! directory (groups), or static groups instead of a directory.

use std::collections::BTreeMap;

use super::check::{group_list, positive};
use super::error::{ConfigError, err};
use super::raw_callout::{RawAgent, RawCallout, RawDirectory};
use crate::{SUBJECT_RULE, valid_subject};

/// Default of `agent.max_stream_ttl_secs`: how long a worker keeps a stream the agent handed over.
pub const DEFAULT_MAX_STREAM_TTL_SECS: u64 = 300;

/// How long a session the agent unwrapped stays cached before the filter asks again.
pub const DEFAULT_AGENT_SESSION_TTL_SECS: u64 = 300;

/// Where a callout goes and how long it may take: the fields `agent` and `directory` share.
#[derive(Clone, PartialEq, Eq)]
pub struct Callout {
    /// The Envoy cluster of the agent.
    pub cluster: String,
    /// The `:authority` of the callout.
    pub authority: String,
    /// The agent's bearer token (a secret); `None`: the agent is reached over a unix socket and
    /// the callout carries no `authorization` header.
    pub token: Option<String>,
    /// Callout timeout.
    pub timeout_ms: u64,
}

impl core::fmt::Debug for Callout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callout")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("token", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// The agent the filter asks to unwrap sessions of key ids it holds no private key for, and for
/// per-subject keys of the epochs it holds no secret of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Where the callouts go.
    pub callout: Callout,
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

/// The autoid agent the filter asks for groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Where the callouts go.
    pub callout: Callout,
    /// How long a found subject's groups are trusted.
    pub positive_ttl_secs: u64,
    /// How long "no such subject" is trusted.
    pub negative_ttl_secs: u64,
    /// How long past its TTL a decision may answer when the agent fails.
    pub stale_if_error_secs: u64,
    /// Shared-data slots of the decision cache.
    pub max_entries: u32,
}

/// Where a subject's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// The autoid agent, through an HTTP callout.
    Directory(Directory),
    /// A fixed map in the configuration (tests, demos without a directory).
    Static(BTreeMap<String, Vec<String>>),
}

/// A callout section's shared fields (`agent`, `directory` at `at`): cluster, authority, bearer
/// token, timeout, checked, and the section's own fields for the caller to check. The token is
/// optional (an agent on a unix socket needs none); when given it must be usable.
fn callout<S>(at: &str, raw: RawCallout<S>) -> Result<(Callout, S), ConfigError> {
    let RawCallout {
        cluster,
        authority,
        token,
        timeout_ms,
        own,
    } = raw;
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
    let callout = Callout {
        cluster,
        authority,
        token,
        timeout_ms,
    };
    Ok((callout, own))
}

/// `agent`: checked, with its defaults.
pub(super) fn agent(raw: Option<RawAgent>) -> Result<Option<Agent>, ConfigError> {
    Ok(match raw {
        None => None,
        Some(raw) => {
            let (callout, a) = callout("agent", raw)?;
            let session_ttl_secs = a.session_ttl_secs.unwrap_or(DEFAULT_AGENT_SESSION_TTL_SECS);
            if !(1..=86_400).contains(&session_ttl_secs) {
                return Err(err(
                    "agent.session_ttl_secs",
                    format!("{session_ttl_secs} is out of range (1 to 86400)"),
                ));
            }
            let max_stream_ttl_secs = a.max_stream_ttl_secs.unwrap_or(DEFAULT_MAX_STREAM_TTL_SECS);
            if !(1..=86_400).contains(&max_stream_ttl_secs) {
                return Err(err(
                    "agent.max_stream_ttl_secs",
                    format!("{max_stream_ttl_secs} is out of range (1 to 86400)"),
                ));
            }
            Some(Agent {
                callout,
                any_key: a.any_key,
                any_epoch: a.any_epoch,
                session_ttl_secs,
                max_stream_ttl_secs,
            })
        }
    })
}

/// `directory` or `static_groups`: exactly one of them.
pub(super) fn groups(
    directory: Option<RawDirectory>,
    static_groups: Option<BTreeMap<String, Vec<String>>>,
) -> Result<Groups, ConfigError> {
    Ok(match (directory, static_groups) {
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
        (Some(raw), None) => {
            let (callout, d) = callout("directory", raw)?;
            Groups::Directory(Directory {
                callout,
                positive_ttl_secs: d.positive_ttl_secs.unwrap_or(60),
                negative_ttl_secs: d.negative_ttl_secs.unwrap_or(10),
                stale_if_error_secs: d.stale_if_error_secs.unwrap_or(0),
                max_entries: positive("directory.max_entries", d.max_entries, 16384, 1 << 22)?,
            })
        }
    })
}
