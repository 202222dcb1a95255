//! Directory decisions: the autoid agent's answers, cached in shared data by a hash of the subject.
//!
//! A direct-mapped table of `max_entries` keys `autoid.dir.<n>`, each holding
//! `SHA-256(subject)[32] || u64be(fetched_at) || u8 found || u16be count || (u16be len || group)*`,
//! where `found` is 0 (not found), 1 (found; the groups follow) or 2 (found under another
//! spelling: the one string that follows is the entry's own identifier, see [`Decision::mismatch`]).
//! Positive answers have their TTL; negative ones and mismatches the negative TTL; past its TTL
//! an answer may still serve for `stale_if_error_secs` when the agent fails. No password or token
//! ever enters a key.

use autoid_protocol::agent_api::GroupsReply;
use autoid_protocol::config::Directory;
use autoid_protocol::retain_valid_group_names;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::store::{Store, slot};

/// Largest agent reply the filter reads.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most groups a subject may carry.
pub const MAX_GROUPS: usize = 256;
/// Longest `entry_subject` the filter accepts from the agent, in bytes.
pub const MAX_ENTRY_SUBJECT_LEN: usize = 256;

/// What the directory said about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the directory matched an entry for the subject.
    pub found: bool,
    /// Its groups (empty when not found or on a mismatch), each a valid group name.
    pub groups: Vec<String>,
    /// When the answer was fetched (Unix seconds).
    pub fetched_at: u64,
    /// `Some(entry_subject)` when the directory matched an entry whose own identifier is not
    /// byte for byte the subject asked (LDAP matched ignoring case): the subject is denied.
    pub mismatch: Option<String>,
    /// Group names the agent sent that break the group-name grammar and were dropped (for the
    /// log; not cached, so 0 on a decision read from the cache).
    pub dropped_groups: usize,
}

/// How usable a cached decision is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale-if-error window: usable only if the agent fails.
    Stale,
    /// Unusable.
    Expired,
}

impl Decision {
    /// The subject's groups, `None` when the directory does not know it under exactly this name
    /// (not found, or a [`mismatch`](Decision::mismatch)): either way the filter denies.
    pub fn groups(&self) -> Option<&[String]> {
        (self.found && self.mismatch.is_none()).then_some(self.groups.as_slice())
    }

    /// The directory entry's own identifier when it is not byte for byte the subject asked
    /// (`Carol` for `carol`): log it (with `{:?}`, it comes from the directory) and deny with 403.
    pub fn mismatch(&self) -> Option<&str> {
        self.mismatch.as_deref()
    }

    /// How usable this decision is at `now` under `dir`'s TTLs.
    pub fn freshness(&self, now: u64, dir: &Directory) -> Freshness {
        let ttl = if self.groups().is_some() {
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
        let entry = decision.mismatch.as_slice();
        let (found, groups) = match decision.mismatch {
            Some(_) => (2, entry),
            None => (u8::from(decision.found), decision.groups.as_slice()),
        };
        value.push(found);
        let groups = &groups[..groups.len().min(MAX_GROUPS)];
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
    let found = *value.get(40)?;
    if found > 2 {
        return None;
    }
    let count = u16::from_be_bytes(value.get(41..43)?.try_into().ok()?) as usize;
    let mut pos = 43;
    let mut groups = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u16::from_be_bytes(value.get(pos..pos + 2)?.try_into().ok()?) as usize;
        pos += 2;
        groups.push(String::from_utf8(value.get(pos..pos + len)?.to_vec()).ok()?);
        pos += len;
    }
    if pos != value.len() {
        return None;
    }
    let mismatch = if found == 2 {
        let [entry] = <[String; 1]>::try_from(groups).ok()?;
        groups = Vec::new();
        Some(entry)
    } else {
        None
    };
    Some(Decision {
        found: found != 0,
        groups,
        fetched_at,
        mismatch,
        dropped_groups: 0,
    })
}

/// Characters escaped in the subject query parameter: everything but unreserved ones.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The agent path that asks for `subject`'s groups.
pub fn groups_path(subject: &str) -> String {
    format!("/v1/groups?subject={}", utf8_percent_encode(subject, QUERY))
}

/// Why an agent reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// No response: timeout, reset, no healthy host.
    NoResponse,
    /// A status other than 200.
    Status(u32),
    /// Body too large, not JSON, the wrong shape, or about another subject.
    Malformed(&'static str),
}

impl AgentError {
    /// A short code for logs and metrics.
    pub fn code(&self) -> String {
        match self {
            AgentError::NoResponse => "no_response".to_owned(),
            AgentError::Status(s) => format!("status_{s}"),
            AgentError::Malformed(what) => format!("malformed_{what}"),
        }
    }
}

/// Reads the agent's reply to [`groups_path`] ([`GroupsReply`], shared with the agent).
///
/// Group names that break [`autoid_protocol::valid_group_name`] are dropped and counted in
/// [`Decision::dropped_groups`]; the rest of the decision stands (a dropped name could never
/// satisfy a requirement: configured names obey the same grammar). A found entry whose
/// `entry_subject` is not byte for byte `subject` becomes a [`Decision::mismatch`]. A reply
/// without `entry_subject` (an agent older than the field) is taken as naming `subject`.
pub fn parse_reply(
    status: Option<u32>,
    body: Option<&[u8]>,
    subject: &str,
    now: u64,
) -> Result<Decision, AgentError> {
    let status = status.ok_or(AgentError::NoResponse)?;
    if status != 200 {
        return Err(AgentError::Status(status));
    }
    let body = body.unwrap_or_default();
    if body.len() > MAX_REPLY_BYTES {
        return Err(AgentError::Malformed("too_large"));
    }
    let reply: GroupsReply =
        serde_json::from_slice(body).map_err(|_| AgentError::Malformed("json"))?;
    if reply.subject != subject {
        return Err(AgentError::Malformed("subject"));
    }
    if reply.groups.len() > MAX_GROUPS || (!reply.found && !reply.groups.is_empty()) {
        return Err(AgentError::Malformed("groups"));
    }
    // A found entry names itself: without its identifier the filter cannot tell `Alice` from
    // `alice`, so such a reply is unusable (fail closed), as is one on a not-found answer.
    let entry_ok = match &reply.entry_subject {
        Some(e) => reply.found && !e.is_empty() && e.len() <= MAX_ENTRY_SUBJECT_LEN,
        None => !reply.found,
    };
    if !entry_ok {
        return Err(AgentError::Malformed("entry_subject"));
    }
    let mut groups = reply.groups;
    let dropped_groups = retain_valid_group_names(&mut groups);
    let mismatch = reply.entry_subject.filter(|e| e != subject);
    if mismatch.is_some() {
        groups.clear();
    }
    Ok(Decision {
        found: reply.found,
        groups,
        fetched_at: now,
        mismatch,
        dropped_groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn dir() -> Directory {
        Directory {
            callout: autoid_protocol::config::Callout {
                cluster: "bridge".into(),
                authority: "bridge".into(),
                token: Some("t".repeat(16)),
                timeout_ms: 100,
            },
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
            mismatch: None,
            dropped_groups: 0,
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
            mismatch: None,
            dropped_groups: 0,
        };
        assert_eq!(d.freshness(159, &dir()), Freshness::Fresh);
        assert_eq!(d.freshness(160, &dir()), Freshness::Stale);
        assert_eq!(d.freshness(190, &dir()), Freshness::Expired);
        let n = Decision {
            found: false,
            groups: vec![],
            fetched_at: 100,
            mismatch: None,
            dropped_groups: 0,
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
        let ok =
            br#"{"subject":"alice","found":true,"entry_subject":"alice","groups":["payments"]}"#;
        assert_eq!(
            parse_reply(Some(200), Some(ok), "alice", 5),
            Ok(Decision {
                found: true,
                groups: vec!["payments".into()],
                fetched_at: 5,
                mismatch: None,
                dropped_groups: 0,
            })
        );
        assert_eq!(
            parse_reply(None, None, "alice", 5),
            Err(AgentError::NoResponse)
        );
        assert_eq!(
            parse_reply(Some(503), Some(b"{}"), "alice", 5),
            Err(AgentError::Status(503))
        );
        assert_eq!(
            parse_reply(Some(200), Some(b"not json"), "alice", 5),
            Err(AgentError::Malformed("json"))
        );
        assert_eq!(
            parse_reply(Some(200), Some(ok), "bob", 5),
            Err(AgentError::Malformed("subject"))
        );
        let huge = vec![b' '; MAX_REPLY_BYTES + 1];
        assert_eq!(
            parse_reply(Some(200), Some(&huge), "alice", 5),
            Err(AgentError::Malformed("too_large"))
        );
        let lying = br#"{"subject":"alice","found":false,"groups":["admins"]}"#;
        assert_eq!(
            parse_reply(Some(200), Some(lying), "alice", 5),
            Err(AgentError::Malformed("groups"))
        );
    }

    fn found(groups: &[&str]) -> Decision {
        Decision {
            found: true,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            fetched_at: 5,
            mismatch: None,
            dropped_groups: 0,
        }
    }

    #[test]
    fn an_entry_under_another_spelling_is_a_mismatch() {
        let reply =
            br#"{"subject":"carol","found":true,"groups":["reports"],"entry_subject":"Carol"}"#;
        let d = parse_reply(Some(200), Some(reply), "carol", 5).unwrap();
        assert!(d.found);
        assert_eq!(d.mismatch(), Some("Carol"));
        assert_eq!(d.groups(), None, "a mismatch never authorizes");
        assert!(d.groups.is_empty());
        assert_eq!(d.freshness(14, &dir()), Freshness::Fresh, "negative TTL");
        assert_eq!(d.freshness(15, &dir()), Freshness::Stale);

        // Byte for byte: a surrounding space or another spelling is a mismatch too.
        for entry in ["carol ", " carol", "CAROL", "car\u{f6}l"] {
            let reply = serde_json::json!({
                "subject": "carol", "found": true, "groups": ["reports"], "entry_subject": entry
            })
            .to_string();
            let d = parse_reply(Some(200), Some(reply.as_bytes()), "carol", 5).unwrap();
            assert_eq!(d.mismatch(), Some(entry));
            assert_eq!(d.groups(), None);
        }

        // The same spelling is a plain answer.
        let same =
            br#"{"subject":"carol","found":true,"groups":["reports"],"entry_subject":"carol"}"#;
        assert_eq!(
            parse_reply(Some(200), Some(same), "carol", 5),
            Ok(found(&["reports"]))
        );
        // An agent that does not say which entry it found cannot be told apart from one that
        // matched `Carol`: unusable.
        let old = br#"{"subject":"carol","found":true,"groups":["reports"]}"#;
        assert_eq!(
            parse_reply(Some(200), Some(old), "carol", 5),
            Err(AgentError::Malformed("entry_subject"))
        );

        // An entry_subject without an entry, empty, or oversized is a broken reply.
        for bad in [
            serde_json::json!({"subject":"carol","found":false,"groups":[],"entry_subject":"carol"}),
            serde_json::json!({"subject":"carol","found":true,"groups":[],"entry_subject":""}),
            serde_json::json!({"subject":"carol","found":true,"groups":[],
                "entry_subject": "c".repeat(MAX_ENTRY_SUBJECT_LEN + 1)}),
        ] {
            assert_eq!(
                parse_reply(Some(200), Some(bad.to_string().as_bytes()), "carol", 5),
                Err(AgentError::Malformed("entry_subject")),
                "{bad}"
            );
        }
    }

    #[test]
    fn mismatches_are_cached_as_mismatches() {
        let store = MemoryStore::default();
        let t = Decisions::new(4);
        let reply =
            br#"{"subject":"carol","found":true,"groups":["reports"],"entry_subject":"Carol"}"#;
        let d = parse_reply(Some(200), Some(reply), "carol", 5).unwrap();
        t.put(&store, "carol", &d);
        let cached = t.get(&store, "carol").unwrap();
        assert_eq!(cached, d);
        assert_eq!(cached.mismatch(), Some("Carol"));
        assert_eq!(cached.groups(), None);
        let n = Decision {
            found: false,
            groups: vec![],
            fetched_at: 9,
            mismatch: None,
            dropped_groups: 0,
        };
        t.put(&store, "nobody", &n);
        assert_eq!(t.get(&store, "nobody"), Some(n));
    }

    #[test]
    fn cached_values_are_checked() {
        let hash = subject_hash("alice");
        let mut v = hash.to_vec();
        v.extend_from_slice(&5u64.to_be_bytes());
        v.push(1);
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.push(b'a');
        assert_eq!(decode(&v, &hash), Some(found(&["a"])));
        let mut trailing = v.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, &hash), None, "trailing bytes");
        let mut flag = v.clone();
        flag[40] = 3;
        assert_eq!(decode(&flag, &hash), None, "unknown found byte");
        let mut two = v.clone();
        two[40] = 2;
        let d = decode(&two, &hash).unwrap();
        assert_eq!((d.mismatch(), d.groups()), (Some("a"), None));
        let mut bare = v[..41].to_vec();
        bare[40] = 2;
        bare.extend_from_slice(&0u16.to_be_bytes());
        assert_eq!(decode(&bare, &hash), None, "a mismatch carries its entry");
    }

    #[test]
    fn invalid_group_names_are_dropped_and_counted() {
        let reply = serde_json::json!({
            "subject": "alice",
            "found": true,
            "groups": ["payments", "ops,admins", " reports", "re\nports", "", "reports"],
            "entry_subject": "alice",
        })
        .to_string();
        let d = parse_reply(Some(200), Some(reply.as_bytes()), "alice", 5).unwrap();
        assert_eq!(
            d.groups(),
            Some(&["payments".to_owned(), "reports".to_owned()][..])
        );
        assert_eq!(d.dropped_groups, 4);
        assert_eq!(d.mismatch(), None);
        // `ops,admins` never reads as `admins` once the names are joined for the header.
        assert_eq!(d.groups.join(","), "payments,reports");

        // Every name invalid: found with no groups; the decision stands.
        let reply =
            br#"{"subject":"alice","found":true,"entry_subject":"alice","groups":["ops,admins"]}"#;
        let d = parse_reply(Some(200), Some(reply), "alice", 5).unwrap();
        assert_eq!(d.groups(), Some(&[][..]));
        assert_eq!(d.dropped_groups, 1);

        // The count is for the log only: the cache keeps the kept names.
        let store = MemoryStore::default();
        let t = Decisions::new(1);
        t.put(&store, "alice", &d);
        assert_eq!(
            t.get(&store, "alice"),
            Some(Decision {
                dropped_groups: 0,
                ..d
            })
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
