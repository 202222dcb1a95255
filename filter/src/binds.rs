//! Successful HTTP Basic binds, remembered by one worker for a short time (`auth.basic.
//! cache_ttl_secs`) so a client sending its password on every request does not cost a directory
//! bind each time. An entry is found by a keyed hash of the username, the client's source address
//! and the password — HMAC-SHA-256 under a key drawn from the host's CSPRNG when the worker is
//! configured, never written anywhere — and holds the subject and groups the bind gave, never the
//! password. Only successes are remembered: every failed password reaches the agent, which
//! throttles it. The source is part of the key so that a bind serves only the source that made
//! it: from anywhere else the agent decides, and throttles (the owner's recent login is no answer
//! for a guesser elsewhere); a source the agent holds is answered 429 before any remembered bind
//! (`crate::holds`).
//! A changed password or a removed user takes effect once the entry is older than the API's TTL.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A remembered bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The subject the directory bound.
    pub subject: String,
    /// Its groups at that moment.
    pub groups: Vec<String>,
    /// When the bind succeeded (ms since the Unix epoch).
    at_ms: u64,
}

/// The worker's remembered binds.
pub struct Binds {
    key: [u8; 32],
    entries: HashMap<[u8; 32], Bound>,
    max_entries: usize,
    /// The longest TTL any API uses: older entries serve nobody.
    max_ttl_ms: u64,
}

impl std::fmt::Debug for Binds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binds")
            .field("entries", &self.entries.len())
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl Binds {
    /// An empty cache under `key` (random, per worker) holding at most `max_entries`, none kept
    /// longer than `max_ttl_secs`.
    pub fn new(key: [u8; 32], max_entries: usize, max_ttl_secs: u32) -> Self {
        Binds {
            key,
            entries: HashMap::new(),
            max_entries,
            max_ttl_ms: u64::from(max_ttl_secs) * 1000,
        }
    }

    /// The entry key of a username, a source address (none: the host gave none) and a
    /// password: HMAC-SHA-256 under the worker's key, the username and the source
    /// length-prefixed so no two triples share an input.
    pub fn key_of(&self, username: &str, source: Option<&str>, password: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            // HMAC takes keys of any length; unreachable, and a zero key only misses.
            return [0; 32];
        };
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        let source = source.map_or(&b""[..], str::as_bytes);
        mac.update(&[u8::from(!source.is_empty())]);
        mac.update(&(source.len() as u64).to_be_bytes());
        mac.update(source);
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// The bind remembered under `key`, if younger than `ttl_secs` at `now_ms`.
    pub fn get(&self, key: &[u8; 32], now_ms: u64, ttl_secs: u32) -> Option<&Bound> {
        let bound = self.entries.get(key)?;
        (now_ms.saturating_sub(bound.at_ms) < u64::from(ttl_secs) * 1000).then_some(bound)
    }

    /// Remembers a successful bind. When full, entries too old to serve are dropped first, then
    /// the oldest one.
    pub fn put(&mut self, key: [u8; 32], subject: &str, groups: &[String], now_ms: u64) {
        if self.max_entries == 0 || self.max_ttl_ms == 0 {
            return;
        }
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            let max_ttl_ms = self.max_ttl_ms;
            self.entries
                .retain(|_, b| now_ms.saturating_sub(b.at_ms) < max_ttl_ms);
            if self.entries.len() >= self.max_entries {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, b)| b.at_ms)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(
            key,
            Bound {
                subject: subject.to_owned(),
                groups: groups.to_vec(),
                at_ms: now_ms,
            },
        );
    }

    /// How many binds are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<String> {
        vec!["testgroup".to_owned()]
    }

    #[test]
    fn a_bind_is_found_by_the_same_pair_only_and_within_its_ttl() {
        let mut binds = Binds::new([7; 32], 16, 30);
        let k = binds.key_of("test", Some("10.0.0.1"), b"test123");
        binds.put(k, "test", &groups(), 1_000);
        assert_eq!(
            binds.get(&k, 1_000, 30).map(|b| b.subject.as_str()),
            Some("test")
        );
        assert!(binds.get(&k, 30_999, 30).is_some());
        assert!(binds.get(&k, 31_000, 30).is_none(), "expired at the TTL");
        assert!(binds.get(&k, 5_000, 0).is_none(), "TTL 0: never served");
        let other = binds.key_of("test", Some("10.0.0.1"), b"test124");
        assert_ne!(k, other);
        assert!(
            binds.get(&other, 1_000, 30).is_none(),
            "another password misses"
        );
        // Another source misses: a bind serves only the source that made it.
        let elsewhere = binds.key_of("test", Some("10.0.0.2"), b"test123");
        assert!(binds.get(&elsewhere, 1_000, 30).is_none());
        assert_ne!(k, binds.key_of("test", None, b"test123"));
        // The length prefixes keep ("ab", "c…") and ("a", "bc…") apart, and the source too.
        assert_ne!(
            binds.key_of("ab", None, b"c"),
            binds.key_of("a", None, b"bc")
        );
        assert_ne!(
            binds.key_of("a", Some("1"), b"2"),
            binds.key_of("a", Some("12"), b"")
        );
    }

    #[test]
    fn keys_depend_on_the_worker_key_and_never_hold_the_password() {
        let a = Binds::new([1; 32], 4, 30);
        let b = Binds::new([2; 32], 4, 30);
        assert_ne!(
            a.key_of("test", None, b"test123"),
            b.key_of("test", None, b"test123")
        );
        let mut a = a;
        let k = a.key_of("test", None, b"test123");
        a.put(k, "test", &groups(), 0);
        assert!(!format!("{a:?}").contains("test123"));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_oldest() {
        let mut binds = Binds::new([3; 32], 2, 10);
        let k1 = binds.key_of("u1", None, b"p");
        let k2 = binds.key_of("u2", None, b"p");
        let k3 = binds.key_of("u3", None, b"p");
        binds.put(k1, "u1", &groups(), 0);
        binds.put(k2, "u2", &groups(), 5_000);
        binds.put(k3, "u3", &groups(), 6_000);
        assert_eq!(binds.len(), 2);
        assert!(binds.get(&k1, 6_000, 10).is_none(), "the oldest went");
        assert!(binds.get(&k2, 6_000, 10).is_some());
        // At 15.5 s u2 (5 s) is past the longest TTL, u3 (6 s) is not: u2 goes, not u3.
        binds.put(k1, "u1", &groups(), 15_500);
        assert_eq!(binds.len(), 2);
        assert!(
            binds.get(&k2, 15_500, 100).is_none(),
            "the expired entry was dropped"
        );
        assert!(
            binds.get(&k3, 15_500, 100).is_some(),
            "not the oldest live one"
        );
        assert!(binds.get(&k1, 15_500, 10).is_some());
    }
}
