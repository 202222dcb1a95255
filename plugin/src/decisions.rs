//! Directory decisions: the LDAP bridge's answers, cached in shared data by a hash of the subject.
//!
//! A direct-mapped table of `max_entries` keys `autoid.dir.<n>`, each holding
//! `SHA-256(subject)[32] || u64be(fetched_at) || u8 found || u16be count || (u16be len || group)*`.
//! Positive and negative answers have their own TTLs; past its TTL an answer may still serve for
//! `stale_if_error_secs` when the bridge fails. No password or token ever enters a key.

use autoid_protocol::config::Directory;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::store::{Store, slot};

/// Largest bridge reply the filter reads.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most groups a subject may carry.
pub const MAX_GROUPS: usize = 256;

/// What the directory said about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the directory knows the subject.
    pub found: bool,
    /// Its groups (empty when not found).
    pub groups: Vec<String>,
    /// When the answer was fetched (Unix seconds).
    pub fetched_at: u64,
}

/// How usable a cached decision is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale-if-error window: usable only if the bridge fails.
    Stale,
    /// Unusable.
    Expired,
}

impl Decision {
    /// The subject's groups, `None` when the directory does not know it.
    pub fn groups(&self) -> Option<&[String]> {
        self.found.then_some(self.groups.as_slice())
    }

    /// How usable this decision is at `now` under `dir`'s TTLs.
    pub fn freshness(&self, now: u64, dir: &Directory) -> Freshness {
        let ttl = if self.found {
            dir.positive_ttl_secs
        } else {
            dir.negative_ttl_secs
        };
        let age = now.saturating_sub(self.fetched_at);
        if self.fetched_at > now {
            Freshness::Expired
        } else if age < ttl {
            Freshness::Fresh
        } else if age < ttl.saturating_add(dir.stale_if_error_secs) {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }
}

fn subject_hash(subject: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"autoid/v1 decision");
    h.update(subject.as_bytes());
    h.finalize().into()
}

/// The shared-data decision table.
#[derive(Debug, Clone)]
pub struct Decisions {
    slots: u32,
}

impl Decisions {
    /// A table of `slots` keys.
    pub fn new(slots: u32) -> Self {
        Decisions { slots }
    }

    /// The cached decision for `subject`, if the slot holds that subject.
    pub fn get(&self, store: &dyn Store, subject: &str) -> Option<Decision> {
        let hash = subject_hash(subject);
        let (value, _) = store
            .get(&format!("autoid.dir.{}", slot(&hash, self.slots)))
            .ok()??;
        decode(&value, &hash)
    }

    /// Caches `decision` for `subject`.
    pub fn put(&self, store: &dyn Store, subject: &str, decision: &Decision) {
        let hash = subject_hash(subject);
        let mut value = Vec::with_capacity(64);
        value.extend_from_slice(&hash);
        value.extend_from_slice(&decision.fetched_at.to_be_bytes());
        value.push(u8::from(decision.found));
        let groups = &decision.groups[..decision.groups.len().min(MAX_GROUPS)];
        value.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        for g in groups {
            let g = &g.as_bytes()[..g.len().min(u16::MAX as usize)];
            value.extend_from_slice(&(g.len() as u16).to_be_bytes());
            value.extend_from_slice(g);
        }
        // A cache: a lost write means one more callout.
        let _ = store.set(
            &format!("autoid.dir.{}", slot(&hash, self.slots)),
            &value,
            None,
        );
    }
}

fn decode(value: &[u8], hash: &[u8; 32]) -> Option<Decision> {
    if value.get(..32)? != hash {
        return None;
    }
    let fetched_at = u64::from_be_bytes(value.get(32..40)?.try_into().ok()?);
    let found = *value.get(40)? == 1;
    let count = u16::from_be_bytes(value.get(41..43)?.try_into().ok()?) as usize;
    let mut pos = 43;
    let mut groups = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u16::from_be_bytes(value.get(pos..pos + 2)?.try_into().ok()?) as usize;
        pos += 2;
        groups.push(String::from_utf8(value.get(pos..pos + len)?.to_vec()).ok()?);
        pos += len;
    }
    Some(Decision {
        found,
        groups,
        fetched_at,
    })
}

/// Characters escaped in the subject query parameter: everything but unreserved ones.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The bridge path that asks for `subject`'s groups.
pub fn groups_path(subject: &str) -> String {
    format!("/v1/groups?subject={}", utf8_percent_encode(subject, QUERY))
}

/// Why a bridge reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeError {
    /// No response: timeout, reset, no healthy host.
    NoResponse,
    /// A status other than 200.
    Status(u32),
    /// Body too large, not JSON, the wrong shape, or about another subject.
    Malformed(&'static str),
}

impl BridgeError {
    /// A short code for logs and metrics.
    pub fn code(&self) -> String {
        match self {
            BridgeError::NoResponse => "no_response".to_owned(),
            BridgeError::Status(s) => format!("status_{s}"),
            BridgeError::Malformed(what) => format!("malformed_{what}"),
        }
    }
}

#[derive(Deserialize)]
struct GroupsReply {
    subject: String,
    found: bool,
    groups: Vec<String>,
}

/// Reads the bridge's reply to [`groups_path`].
pub fn parse_reply(
    status: Option<u32>,
    body: Option<&[u8]>,
    subject: &str,
    now: u64,
) -> Result<Decision, BridgeError> {
    let status = status.ok_or(BridgeError::NoResponse)?;
    if status != 200 {
        return Err(BridgeError::Status(status));
    }
    let body = body.unwrap_or_default();
    if body.len() > MAX_REPLY_BYTES {
        return Err(BridgeError::Malformed("too_large"));
    }
    let reply: GroupsReply =
        serde_json::from_slice(body).map_err(|_| BridgeError::Malformed("json"))?;
    if reply.subject != subject {
        return Err(BridgeError::Malformed("subject"));
    }
    if reply.groups.len() > MAX_GROUPS || (!reply.found && !reply.groups.is_empty()) {
        return Err(BridgeError::Malformed("groups"));
    }
    Ok(Decision {
        found: reply.found,
        groups: reply.groups,
        fetched_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn dir() -> Directory {
        Directory {
            cluster: "bridge".into(),
            authority: "bridge".into(),
            token: "t".repeat(16),
            timeout_ms: 100,
            positive_ttl_secs: 60,
            negative_ttl_secs: 10,
            stale_if_error_secs: 30,
            max_entries: 8,
        }
    }

    #[test]
    fn decisions_round_trip_and_slots_check_the_subject() {
        let store = MemoryStore::default();
        let t = Decisions::new(1);
        let d = Decision {
            found: true,
            groups: vec!["a".into(), "b c".into()],
            fetched_at: 7,
        };
        t.put(&store, "alice", &d);
        assert_eq!(t.get(&store, "alice"), Some(d));
        assert_eq!(t.get(&store, "bob"), None, "same slot, other subject");
    }

    #[test]
    fn ttls_and_the_stale_window() {
        let d = Decision {
            found: true,
            groups: vec![],
            fetched_at: 100,
        };
        assert_eq!(d.freshness(159, &dir()), Freshness::Fresh);
        assert_eq!(d.freshness(160, &dir()), Freshness::Stale);
        assert_eq!(d.freshness(190, &dir()), Freshness::Expired);
        let n = Decision {
            found: false,
            groups: vec![],
            fetched_at: 100,
        };
        assert_eq!(n.freshness(109, &dir()), Freshness::Fresh);
        assert_eq!(n.freshness(110, &dir()), Freshness::Stale);
        let mut zero = dir();
        zero.positive_ttl_secs = 0;
        zero.stale_if_error_secs = 0;
        assert_eq!(
            d.freshness(100, &zero),
            Freshness::Expired,
            "TTL 0 never serves"
        );
    }

    #[test]
    fn replies_are_checked() {
        let ok = br#"{"subject":"alice","found":true,"groups":["payments"]}"#;
        assert_eq!(
            parse_reply(Some(200), Some(ok), "alice", 5),
            Ok(Decision {
                found: true,
                groups: vec!["payments".into()],
                fetched_at: 5
            })
        );
        assert_eq!(
            parse_reply(None, None, "alice", 5),
            Err(BridgeError::NoResponse)
        );
        assert_eq!(
            parse_reply(Some(503), Some(b"{}"), "alice", 5),
            Err(BridgeError::Status(503))
        );
        assert_eq!(
            parse_reply(Some(200), Some(b"not json"), "alice", 5),
            Err(BridgeError::Malformed("json"))
        );
        assert_eq!(
            parse_reply(Some(200), Some(ok), "bob", 5),
            Err(BridgeError::Malformed("subject"))
        );
        let huge = vec![b' '; MAX_REPLY_BYTES + 1];
        assert_eq!(
            parse_reply(Some(200), Some(&huge), "alice", 5),
            Err(BridgeError::Malformed("too_large"))
        );
        let lying = br#"{"subject":"alice","found":false,"groups":["admins"]}"#;
        assert_eq!(
            parse_reply(Some(200), Some(lying), "alice", 5),
            Err(BridgeError::Malformed("groups"))
        );
    }

    #[test]
    fn subjects_are_percent_encoded() {
        assert_eq!(groups_path("alice"), "/v1/groups?subject=alice");
        assert_eq!(
            groups_path("evil*)(uid=*))(|(uid=*"),
            "/v1/groups?subject=evil%2A%29%28uid%3D%2A%29%29%28%7C%28uid%3D%2A"
        );
        assert_eq!(groups_path("a b&c"), "/v1/groups?subject=a%20b%26c");
    }
}
