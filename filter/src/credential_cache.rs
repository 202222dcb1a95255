//! The upstream credentials the agent supplies (`apis.*.agent_headers`), cached per API in one
//! shared-data entry that every worker reads: the values, when they expire, and until when one
//! worker has claimed their background refresh. Plain logic over [`Store`], tested natively; the
//! filter dispatches the callouts.
//!
//! A request finds its API's values [`Lookup::Fresh`] (inject, no callout), [`Lookup::Stale`]
//! (expired less than `stale_secs` ago: inject them while the root context's tick keeps trying the
//! agent) or [`Lookup::Missing`] (ask the agent, then inject, or 503 `credentials`). The tick
//! refreshes an entry `refresh_ahead_secs` before it expires, so no request waits while a good
//! value exists — unless the entry was fetched inside that window already (the agent's own
//! refresh is that close: asking again would return the same value), in which case it is
//! refreshed when it expires, while its values are served as stale.

use autoid_protocol::agent_api::CredentialsReply;
use autoid_protocol::config::{Api, CredentialsConfig};
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The shared-data key of an API's entry.
pub fn key(api: &str) -> String {
    format!("autoid.credentials.{api}")
}

/// One API's cached values (the shared-data value, JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// Unix seconds after which the values are stale.
    expires: u64,
    /// Unix seconds when the values were fetched.
    #[serde(default)]
    fetched: u64,
    /// Unix seconds until which a worker's background refresh is in flight.
    refreshing_until: u64,
    /// Header name → value.
    headers: Vec<(String, String)>,
}

/// What the cache holds for an API.
#[derive(Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Values within their time to live.
    Fresh(Vec<(String, String)>),
    /// Expired values within the stale window (the agent has been failing).
    Stale(Vec<(String, String)>),
    /// Nothing usable: ask the agent.
    Missing,
}

impl core::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Lookup::Fresh(_) => "Fresh(<redacted>)",
            Lookup::Stale(_) => "Stale(<redacted>)",
            Lookup::Missing => "Missing",
        })
    }
}

/// Why an agent's answer is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReply {
    /// Not a 200.
    Status,
    /// Not the JSON shape, or too large.
    Malformed,
    /// A header the API expects from the agent is missing.
    MissingHeader,
    /// A value with CR, LF or NUL, or empty.
    BadValue,
}

impl BadReply {
    /// For the log line.
    pub fn code(self) -> &'static str {
        match self {
            BadReply::Status => "status",
            BadReply::Malformed => "malformed",
            BadReply::MissingHeader => "missing_header",
            BadReply::BadValue => "bad_value",
        }
    }
}

/// The agent's answer as headers to inject (exactly the API's `agent_headers`) and a time to
/// live.
pub fn parse_reply(
    api: &Api,
    status: Option<u32>,
    body: &[u8],
) -> Result<(Vec<(String, String)>, u64), BadReply> {
    if status != Some(200) {
        return Err(BadReply::Status);
    }
    let reply: CredentialsReply = serde_json::from_slice(body).map_err(|_| BadReply::Malformed)?;
    let mut headers = Vec::with_capacity(api.agent_headers.len());
    for name in &api.agent_headers {
        let value = reply.headers.get(name).ok_or(BadReply::MissingHeader)?;
        if value.is_empty() || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(BadReply::BadValue);
        }
        headers.push((name.clone(), value.clone()));
    }
    Ok((headers, reply.ttl_secs.max(1)))
}

/// The credentials cache's policy: how early to refresh, how long to serve stale values.
#[derive(Debug, Clone, Copy)]
pub struct CredentialCache {
    config: CredentialsConfig,
}

impl CredentialCache {
    /// A cache with these settings.
    pub fn new(config: CredentialsConfig) -> CredentialCache {
        CredentialCache { config }
    }

    fn read(store: &dyn Store, api: &str) -> Option<(Entry, u32)> {
        let (bytes, cas) = store.get(&key(api)).ok()??;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        Some((entry, cas))
    }

    /// What the cache holds for `api` at `now` (Unix seconds).
    pub fn lookup(&self, store: &dyn Store, api: &str, now: u64) -> Lookup {
        match Self::read(store, api) {
            Some((e, _)) if now < e.expires => Lookup::Fresh(e.headers),
            Some((e, _)) if now < e.expires.saturating_add(self.config.stale_secs) => {
                Lookup::Stale(e.headers)
            }
            _ => Lookup::Missing,
        }
    }

    /// Stores the agent's values for `ttl_secs` from `now` (any claimed refresh is done).
    pub fn put(
        &self,
        store: &dyn Store,
        api: &str,
        headers: Vec<(String, String)>,
        ttl_secs: u64,
        now: u64,
    ) -> bool {
        let entry = Entry {
            expires: now.saturating_add(ttl_secs),
            fetched: now,
            refreshing_until: 0,
            headers,
        };
        match serde_json::to_vec(&entry) {
            Ok(bytes) => store.set(&key(api), &bytes, None).is_ok(),
            Err(_) => false,
        }
    }

    /// Whether this worker should refresh `api` in the background now: an entry exists, it is
    /// within `refresh_ahead_secs` of expiring (or expired; or only expired, when it was fetched
    /// inside that window), and no other worker's refresh is in flight. Claims the refresh for
    /// `hold_secs` (compare-and-swap: of two workers, one wins).
    pub fn claim_refresh(&self, store: &dyn Store, api: &str, now: u64, hold_secs: u64) -> bool {
        let Some((mut e, cas)) = Self::read(store, api) else {
            return false;
        };
        let ahead = if e.expires.saturating_sub(e.fetched) > self.config.refresh_ahead_secs {
            self.config.refresh_ahead_secs
        } else {
            0
        };
        if now.saturating_add(ahead) < e.expires || now < e.refreshing_until {
            return false;
        }
        e.refreshing_until = now.saturating_add(hold_secs.max(1));
        match serde_json::to_vec(&e) {
            Ok(bytes) => store.set(&key(api), &bytes, Some(cas)).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::memory::MemoryStore;

    fn cache() -> CredentialCache {
        CredentialCache::new(CredentialsConfig {
            refresh_ahead_secs: 5,
            stale_secs: 30,
        })
    }

    fn h(v: &str) -> Vec<(String, String)> {
        vec![("authorization".into(), v.into())]
    }

    #[test]
    fn fresh_then_stale_then_missing() {
        let s = MemoryStore::default();
        let c = cache();
        assert_eq!(c.lookup(&s, "pay", 100), Lookup::Missing);
        assert!(c.put(&s, "pay", h("one"), 20, 100));
        assert_eq!(c.lookup(&s, "pay", 119), Lookup::Fresh(h("one")));
        assert_eq!(c.lookup(&s, "pay", 120), Lookup::Stale(h("one")));
        assert_eq!(c.lookup(&s, "pay", 149), Lookup::Stale(h("one")));
        assert_eq!(c.lookup(&s, "pay", 150), Lookup::Missing);
        assert_eq!(c.lookup(&s, "other", 100), Lookup::Missing);
        assert_eq!(
            format!("{:?}", c.lookup(&s, "pay", 100)),
            "Fresh(<redacted>)"
        );
    }

    #[test]
    fn one_worker_claims_a_refresh_inside_the_window() {
        let s = MemoryStore::default();
        let c = cache();
        assert!(
            !c.claim_refresh(&s, "pay", 100, 2),
            "nothing cached: requests ask"
        );
        c.put(&s, "pay", h("one"), 20, 100);
        assert!(!c.claim_refresh(&s, "pay", 114, 2), "not yet in the window");
        assert!(c.claim_refresh(&s, "pay", 115, 2));
        assert!(
            !c.claim_refresh(&s, "pay", 116, 2),
            "claimed by another worker"
        );
        assert_eq!(
            c.lookup(&s, "pay", 116),
            Lookup::Fresh(h("one")),
            "the claim keeps the values"
        );
        assert!(
            c.claim_refresh(&s, "pay", 117, 2),
            "the claim lapsed: try again"
        );
        c.put(&s, "pay", h("two"), 20, 118);
        assert_eq!(c.lookup(&s, "pay", 118), Lookup::Fresh(h("two")));
        assert!(!c.claim_refresh(&s, "pay", 118, 2));
    }

    #[test]
    fn an_entry_fetched_inside_the_window_is_refreshed_when_it_expires_not_every_tick() {
        let s = MemoryStore::default();
        let c = cache();
        // The agent's own refresh is 3 s away (its ttl): asking again before then would return
        // the same value, so the next refresh waits for the expiry.
        c.put(&s, "pay", h("one"), 3, 100);
        assert!(!c.claim_refresh(&s, "pay", 101, 2));
        assert!(!c.claim_refresh(&s, "pay", 102, 2));
        assert_eq!(c.lookup(&s, "pay", 102), Lookup::Fresh(h("one")));
        assert!(c.claim_refresh(&s, "pay", 103, 2), "expired: refresh");
        assert_eq!(
            c.lookup(&s, "pay", 103),
            Lookup::Stale(h("one")),
            "served meanwhile"
        );
    }

    #[test]
    fn replies_must_carry_every_agent_header() {
        let api = Api {
            enabled: true,
            require: Default::default(),
            inject: vec![],
            agent_headers: vec!["authorization".into(), "x-key".into()],
            subject_header: None,
            groups_header: None,
            proof: true,
            basic: None,
        };
        let ok =
            br#"{"headers":{"authorization":"Bearer a","x-key":"k","extra":"e"},"ttl_secs":0}"#;
        let (headers, ttl) = parse_reply(&api, Some(200), ok).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(ttl, 1);
        assert_eq!(parse_reply(&api, Some(503), ok), Err(BadReply::Status));
        assert_eq!(parse_reply(&api, None, ok), Err(BadReply::Status));
        assert_eq!(parse_reply(&api, Some(200), b"{"), Err(BadReply::Malformed));
        let missing = br#"{"headers":{"authorization":"Bearer a"},"ttl_secs":5}"#;
        assert_eq!(
            parse_reply(&api, Some(200), missing),
            Err(BadReply::MissingHeader)
        );
        let crlf = br#"{"headers":{"authorization":"a\r\nx: y","x-key":"k"},"ttl_secs":5}"#;
        assert_eq!(parse_reply(&api, Some(200), crlf), Err(BadReply::BadValue));
    }
}
