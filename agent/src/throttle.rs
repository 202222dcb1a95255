//! Failed password checks slow their source and their target down, without locking the account
//! out for its owner (`POST /v1/authenticate`).
//!
//! Two counters of failures within [`WINDOW`]: per username (a guessing attack on one account)
//! and per source address (one client spraying many accounts). Past the free failures, each
//! further failure blocks the key for twice as long as the one before, capped: a username at
//! [`USER_MAX_DELAY`], a source at [`SOURCE_MAX_DELAY`]. A blocked request is answered at once,
//! without a bind. A success marks its (username, source) pair as known for [`KNOWN_FOR`]: from
//! a known source the owner is never held back by the username's counter, so an attacker
//! elsewhere cannot lock them out (the source's own counter still applies). A success does not
//! clear the username's failures: an owner logging in often would otherwise hand an attacker a
//! fresh set of free guesses each time. Memory is bounded: each map keeps at most [`MAX_KEYS`] entries, dropping
//! those idle longest first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures are forgotten this long after the last one.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures per username within the window before it is slowed down.
pub const USER_FREE_FAILURES: u32 = 5;
/// Failures per source within the window before it is slowed down.
pub const SOURCE_FREE_FAILURES: u32 = 20;
/// The longest a username is held back after a failure.
pub const USER_MAX_DELAY: Duration = Duration::from_secs(60);
/// The longest a source is held back after a failure.
pub const SOURCE_MAX_DELAY: Duration = Duration::from_secs(300);
/// How long a source a user logged in from stays known for that user.
pub const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);
/// Entries per map.
pub const MAX_KEYS: usize = 65_536;

/// A key's failures.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<String, Failures>,
    sources: HashMap<String, Failures>,
    /// (username, source) → known until.
    known: HashMap<(String, String), Instant>,
}

/// Why a check may not go ahead now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The username failed too often lately (and the source is not known for it).
    User(Duration),
    /// The source failed too often lately.
    Source(Duration),
}

impl Held {
    /// What is held back, as the 429 body names it: `username` or `source`. A gateway that
    /// remembers binds answers a held source 429 itself until the hold ends, whatever the
    /// password (`filter/src/holds.rs`).
    pub fn scope(self) -> &'static str {
        match self {
            Held::User(_) => "username",
            Held::Source(_) => "source",
        }
    }

    /// How long until a retry may go ahead, in whole seconds (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        let (Held::User(d) | Held::Source(d)) = self;
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

/// The failure counters (one per agent).
#[derive(Debug, Default)]
pub struct Throttle {
    tables: Mutex<Tables>,
}

/// The delay after `count` failures, `free` of them without one.
fn delay(count: u32, free: u32, max: Duration) -> Duration {
    match count.checked_sub(free + 1) {
        None => Duration::ZERO,
        Some(over) => Duration::from_secs(1u64 << over.min(20)).min(max),
    }
}

/// Keeps `map` under [`MAX_KEYS`] before an insert: the entries idle longest go first.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    idle: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_KEYS {
        return;
    }
    let mut ages: Vec<(Instant, K)> = map.iter().map(|(k, v)| (idle(v), k.clone())).collect();
    ages.sort_by_key(|(at, _)| *at);
    for (_, k) in ages.into_iter().take(MAX_KEYS / 4) {
        map.remove(&k);
    }
}

fn fail(map: &mut HashMap<String, Failures>, key: &str, now: Instant, free: u32, max: Duration) {
    if !map.contains_key(key) {
        make_room(map, |f| f.last);
    }
    let f = map.entry(key.to_owned()).or_insert(Failures {
        count: 0,
        last: now,
        blocked_until: now,
    });
    if now.saturating_duration_since(f.last) > WINDOW {
        f.count = 0;
    }
    f.count = f.count.saturating_add(1);
    f.last = now;
    f.blocked_until = now + delay(f.count, free, max);
}

fn held_for(map: &HashMap<String, Failures>, key: &str, now: Instant) -> Option<Duration> {
    let f = map.get(key)?;
    (f.blocked_until > now).then(|| f.blocked_until - now)
}

impl Throttle {
    /// Whether a password check for `user` from `source` may go ahead at `now`.
    pub fn check(&self, user: &str, source: Option<&str>, now: Instant) -> Result<(), Held> {
        let Ok(t) = self.tables.lock() else {
            return Ok(());
        };
        if let Some(s) = source
            && let Some(d) = held_for(&t.sources, s, now)
        {
            return Err(Held::Source(d));
        }
        let known = source.is_some_and(|s| {
            t.known
                .get(&(user.to_owned(), s.to_owned()))
                .is_some_and(|until| *until > now)
        });
        match held_for(&t.users, user, now) {
            Some(d) if !known => Err(Held::User(d)),
            _ => Ok(()),
        }
    }

    /// A check for `user` from `source` failed (wrong password, unknown user, empty password).
    pub fn failed(&self, user: &str, source: Option<&str>, now: Instant) {
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        fail(&mut t.users, user, now, USER_FREE_FAILURES, USER_MAX_DELAY);
        if let Some(s) = source {
            fail(
                &mut t.sources,
                s,
                now,
                SOURCE_FREE_FAILURES,
                SOURCE_MAX_DELAY,
            );
        }
    }

    /// A check for `user` from `source` succeeded: the source becomes known for the username.
    pub fn succeeded(&self, user: &str, source: Option<&str>, now: Instant) {
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        if let Some(s) = source {
            let pair = (user.to_owned(), s.to_owned());
            if !t.known.contains_key(&pair) {
                make_room(&mut t.known, |until| *until);
            }
            t.known.insert(pair, now + KNOWN_FOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_slowed_after_its_free_failures_and_the_delay_doubles_to_its_cap() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..USER_FREE_FAILURES {
            assert_eq!(t.check("alice", None, now), Ok(()));
            t.failed("alice", None, now);
        }
        assert_eq!(
            t.check("alice", None, now),
            Ok(()),
            "free failures cost nothing"
        );
        t.failed("alice", None, now);
        assert_eq!(
            t.check("alice", None, now),
            Err(Held::User(Duration::from_secs(1)))
        );
        let mut at = now;
        for expected in [2, 4, 8, 16, 32, 60, 60] {
            at += Duration::from_secs(61);
            assert_eq!(t.check("alice", None, at), Ok(()), "the delay has passed");
            t.failed("alice", None, at);
            assert_eq!(
                t.check("alice", None, at),
                Err(Held::User(Duration::from_secs(expected)))
            );
        }
        // Another user is not affected.
        assert_eq!(t.check("bob", None, at), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_after_the_window_and_a_success_only_frees_its_source() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..=USER_FREE_FAILURES {
            t.failed("alice", None, now);
        }
        assert!(t.check("alice", None, now).is_err());
        // A failure after a quiet window starts the count again.
        let later = now + WINDOW + Duration::from_secs(1);
        t.failed("alice", None, later);
        assert_eq!(t.check("alice", None, later), Ok(()));
        for _ in 0..USER_FREE_FAILURES {
            t.failed("alice", None, later);
        }
        assert!(t.check("alice", Some("10.0.0.7"), later).is_err());
        // Once the delay passed, alice logs in from 10.0.0.7: that source is free of the
        // username's counter from now on, every other source is not.
        let after = later + USER_MAX_DELAY;
        t.succeeded("alice", Some("10.0.0.7"), after);
        t.failed("alice", Some("198.51.100.1"), after);
        assert_eq!(t.check("alice", Some("10.0.0.7"), after), Ok(()));
        assert!(t.check("alice", Some("198.51.100.1"), after).is_err());
        assert!(t.check("alice", None, after).is_err());
    }

    #[test]
    fn the_owner_from_a_known_source_is_never_locked_out_by_an_attack_elsewhere() {
        let t = Throttle::default();
        let now = Instant::now();
        t.succeeded("alice", Some("10.0.0.7"), now);
        // Attackers from many sources fail alice's password.
        for i in 0..100 {
            t.failed("alice", Some(&format!("198.51.100.{i}")), now);
        }
        assert!(matches!(
            t.check("alice", Some("198.51.100.200"), now),
            Err(Held::User(_))
        ));
        assert_eq!(t.check("alice", Some("10.0.0.7"), now), Ok(()));
    }

    #[test]
    fn a_source_spraying_many_users_is_slowed_while_others_are_not() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..=SOURCE_FREE_FAILURES {
            t.failed(&format!("user{i}"), Some("203.0.113.9"), now);
        }
        assert_eq!(
            t.check("someone", Some("203.0.113.9"), now),
            Err(Held::Source(Duration::from_secs(1)))
        );
        assert_eq!(t.check("someone", Some("203.0.113.10"), now), Ok(()));
        assert_eq!(
            Held::Source(Duration::from_millis(1500)).retry_after_secs(),
            2
        );
    }

    #[test]
    fn memory_stays_bounded_whatever_the_number_of_names() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 1000) {
            t.failed(
                &format!("invented{i}"),
                Some("203.0.113.1"),
                now + Duration::from_millis(i as u64),
            );
        }
        let tables = t.tables.lock().unwrap();
        assert!(tables.users.len() <= MAX_KEYS);
        assert_eq!(tables.sources.len(), 1);
    }

    #[test]
    fn a_hold_names_its_scope() {
        assert_eq!(Held::User(Duration::from_secs(1)).scope(), "username");
        assert_eq!(Held::Source(Duration::from_secs(1)).scope(), "source");
    }
}
