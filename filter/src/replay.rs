//! The replay cache: a nonce seen within its proof's lifetime is rejected on every worker.
//!
//! A claimed nonce must be remembered until its proof would be refused as stale anyway: its
//! `expires_at` (timestamp + skew + 1). The table is a ring of [`GENERATIONS`] generations, each
//! `buckets` shared-data keys `autoid.replay.<ring>.<bucket>`; generation `g` holds the nonces
//! whose `expires_at` falls in `[g × width, (g + 1) × width)` and lives at ring position
//! `g mod GENERATIONS`. A key's value is `u64be(g) || fingerprint[8]*`. A nonce's generation comes
//! from its proof's timestamp, so a replayed proof always lands in the same key as the original.
//!
//! Expired nonces are dropped a generation at a time: the first insert of generation `g` into a key
//! still holding generation `g − GENERATIONS` (or older) replaces the whole value, without reading
//! an expiry per entry. The width is chosen from the skew so that by then every nonce of the old
//! generation has expired (see [`generation_width`]). So a key holds the nonces of about `width`
//! seconds of traffic, and the table holds about `GENERATIONS × width` ≈ `(2 × skew + 1) × 4/3`
//! seconds of it: 8 bytes per nonce, with no per-entry expiry.
//!
//! A fingerprint is 8 bytes of `SHA-256(salt ‖ nonce)` (other bytes than those that pick the
//! bucket); the salt is random per Envoy process, so a client cannot aim nonces at one bucket or
//! make two nonces share a fingerprint. Two different live nonces collide (the second is refused
//! as a replay) with probability about `n / 2^64` for a bucket of `n` entries. A bucket already
//! holding `slots` nonces of its generation fails closed ([`Insert::Full`]).

use sha2::{Digest, Sha256};

use crate::store::{CREATE_ONLY_CAS, SetError, Store, slot};

/// Generations in the ring.
pub const GENERATIONS: u64 = 16;
/// Generations of slack beyond the proof lifetime: a claim made up to this many widths after its
/// proof was verified (a request that waited for a callout) still finds its generation in place.
const SLACK: u64 = 3;
const HEADER: usize = 8;
const FINGERPRINT: usize = 8;
const MAX_CAS_TRIES: usize = 8;

/// The width of a generation, in seconds, for a skew of `max_skew_secs` each way.
///
/// A proof is accepted at `now` when its timestamp is within `now ± skew`, so its `expires_at` lies
/// in `(now, now + 2 × skew + 1]`. A key's old generation `g − GENERATIONS` is replaced when a
/// nonce of generation `g` arrives, which is verified at `now ≥ g × width − 2 × skew − 1`; the old
/// generation's nonces all expire before `(g − GENERATIONS + 1) × width`. With
/// `(GENERATIONS − 1 − SLACK) × width ≥ 2 × skew + 1` the old ones have all expired by then, with
/// `SLACK` generations to spare for claims that come late.
pub fn generation_width(max_skew_secs: u64) -> u64 {
    (2 * max_skew_secs + 1)
        .div_ceil(GENERATIONS - 1 - SLACK)
        .max(1)
}

/// The shared-data key of the restart fence.
pub const FENCE_KEY: &str = "autoid.replay-fence";

/// The restart fence: when the first worker of this Envoy process configured the filter (Unix
/// seconds), `None` if shared data fails. Shared data lives exactly as long as the process: a
/// new VM (a configuration update) finds the fence its process set, a new process (a restart)
/// sets its own. Proofs made before it, or in its second, are refused ([`fenced`]): the replay
/// table of the
/// process before the restart is gone, and without the fence every proof it accepted would be
/// accepted once more within the skew window.
pub fn restart_fence(store: &dyn Store, now: u64) -> Option<u64> {
    // Of two workers racing, the second's create fails and both read the first's.
    let _ = store.set(FENCE_KEY, &now.to_be_bytes(), Some(CREATE_ONLY_CAS));
    let (value, _) = store.get(FENCE_KEY).ok()??;
    let bytes: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Whether a proof made at `timestamp` falls behind the fence: made before this process started,
/// or in the second it started (the process before may have lived into that second), so
/// possibly accepted already by the process before.
pub fn fenced(timestamp: u64, fence: u64) -> bool {
    timestamp <= fence
}

/// What an insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// First sighting: recorded. `fill` is the number of nonces now in its bucket.
    Fresh { fill: u32 },
    /// Seen before, still live.
    Replay,
    /// The proof had expired when it was claimed (`expires_at` at or before `now`): refused, not
    /// recorded. A claim is won only by recording it.
    Stale,
    /// The bucket is full of live nonces (fail closed).
    Full,
    /// Shared data failed, CAS kept losing, or the nonce's generation has already been replaced
    /// (a claim later than the slack allows; the clock went back): fail closed.
    Unavailable,
}

/// The replay table's shape and its salt.
#[derive(Debug, Clone)]
pub struct ReplayTable {
    buckets: u32,
    slots: u32,
    width: u64,
    salt: [u8; 16],
}

impl ReplayTable {
    /// A table of `buckets` keys per generation, each holding at most `slots` nonces, for proofs
    /// accepted within `max_skew_secs` each way; `salt` keys the bucket and the fingerprint.
    pub fn new(buckets: u32, slots: u32, max_skew_secs: u64, salt: [u8; 16]) -> Self {
        ReplayTable {
            buckets: buckets.max(1),
            slots,
            width: generation_width(max_skew_secs),
            salt,
        }
    }

    /// The most nonces a bucket holds.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The key and the fingerprint of `nonce` in generation `generation`.
    fn locate(&self, nonce: &[u8; 16], generation: u64) -> (String, [u8; FINGERPRINT]) {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(nonce);
        let hash: [u8; 32] = h.finalize().into();
        let mut fingerprint = [0u8; FINGERPRINT];
        fingerprint.copy_from_slice(&hash[8..8 + FINGERPRINT]);
        let key = format!(
            "autoid.replay.{}.{}",
            generation % GENERATIONS,
            slot(&hash, self.buckets)
        );
        (key, fingerprint)
    }

    /// Records `nonce`, whose proof is refused as stale from `expires_at` on, or reports why not.
    /// `now` is when the claim is made: a proof already expired then is refused
    /// ([`Insert::Stale`]), never reported fresh without an entry.
    pub fn insert(&self, store: &dyn Store, nonce: &[u8; 16], expires_at: u64, now: u64) -> Insert {
        if expires_at <= now {
            return Insert::Stale;
        }
        let generation = expires_at / self.width;
        let (key, fingerprint) = self.locate(nonce, generation);
        // The value of a key that holds this nonce alone (created, or reset from an old
        // generation): on the stack, so a claim into a live key allocates nothing for it.
        let mut fresh = [0u8; HEADER + FINGERPRINT];
        fresh[..HEADER].copy_from_slice(&generation.to_be_bytes());
        fresh[HEADER..].copy_from_slice(&fingerprint);
        for _ in 0..MAX_CAS_TRIES {
            let (mut value, cas) = match store.get(&key) {
                Ok(Some(found)) => found,
                // A missing key is created holding this nonce, with a CAS no live key carries: if
                // another worker created it meanwhile the set fails and the loop reads it.
                Ok(None) => match store.set(&key, &fresh, Some(CREATE_ONLY_CAS)) {
                    Ok(()) => return Insert::Fresh { fill: 1 },
                    Err(SetError::CasMismatch) => continue,
                    Err(SetError::Host) => return Insert::Unavailable,
                },
                Err(_) => return Insert::Unavailable,
            };
            let held = value
                .get(..HEADER)
                .and_then(|h| <[u8; HEADER]>::try_from(h).ok())
                .map(u64::from_be_bytes);
            let fill = match held {
                // This generation: look for the nonce, then append it.
                Some(held) if held == generation => {
                    let entries = value[HEADER..].chunks_exact(FINGERPRINT);
                    let count = entries.len();
                    if entries.into_iter().any(|e| e == fingerprint) {
                        return Insert::Replay;
                    }
                    if count >= self.slots as usize {
                        return Insert::Full;
                    }
                    value.truncate(HEADER + count * FINGERPRINT);
                    value.extend_from_slice(&fingerprint);
                    count + 1
                }
                // A newer generation holds the key: this nonce's entries are gone.
                Some(held) if held > generation => return Insert::Unavailable,
                // An older generation (or an unreadable value): every nonce in it has expired.
                _ => {
                    value.clear();
                    value.extend_from_slice(&fresh);
                    1
                }
            };
            match store.set(&key, &value, Some(cas)) {
                Ok(()) => {
                    return Insert::Fresh {
                        fill: u32::try_from(fill).unwrap_or(u32::MAX),
                    };
                }
                Err(SetError::CasMismatch) => continue,
                Err(SetError::Host) => return Insert::Unavailable,
            }
        }
        Insert::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn nonce(i: u32) -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..4].copy_from_slice(&i.to_be_bytes());
        n
    }

    fn fresh(outcome: Insert) -> bool {
        matches!(outcome, Insert::Fresh { .. })
    }

    #[test]
    fn a_nonce_is_fresh_once_then_a_replay_until_it_expires() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(16, 4, 60, [1; 16]);
        assert_eq!(
            t.insert(&store, &[7; 16], 161, 100),
            Insert::Fresh { fill: 1 }
        );
        assert_eq!(t.insert(&store, &[7; 16], 161, 159), Insert::Replay);
        assert_eq!(t.insert(&store, &[7; 16], 161, 160), Insert::Replay);
        assert_eq!(
            t.insert(&store, &[7; 16], 161, 161),
            Insert::Stale,
            "a proof already stale is refused"
        );
    }

    #[test]
    fn a_claim_at_the_window_edge_is_recorded_or_refused_never_won_unrecorded() {
        let store = MemoryStore::default();
        // One bucket: the fill counts every entry.
        let t = ReplayTable::new(1, 4, 60, [1; 16]);
        // The proof's last second: recorded, so a copy claimed in that second by another worker
        // is a replay.
        assert_eq!(
            t.insert(&store, &nonce(1), 161, 160),
            Insert::Fresh { fill: 1 }
        );
        assert_eq!(t.insert(&store, &nonce(1), 161, 160), Insert::Replay);
        // Its remaining life zero or less when claimed (the claim raced its expiry): refused
        // each time, and nothing recorded.
        for now in [161, 162, u64::MAX] {
            for _ in 0..2 {
                assert_eq!(t.insert(&store, &nonce(2), 161, now), Insert::Stale);
            }
        }
        assert_eq!(
            t.insert(&store, &nonce(2), 161, 160),
            Insert::Fresh { fill: 2 },
            "the refused claims left no entry"
        );
    }

    /// The entry of a nonce claimed in its last valid second outlives that second, wherever its
    /// expiry falls in its generation: the furthest-future proof any later claim can carry while
    /// it is live (made `skew` ahead, so expiring at `now + 2 × skew + 1`) never replaces its key.
    #[test]
    fn a_live_entry_is_never_dropped_before_its_expiry_whatever_its_place_in_the_generation() {
        for skew in [1, 7, 60, 600] {
            let w = generation_width(skew);
            for offset in 0..w {
                let store = MemoryStore::default();
                // One bucket, so every generation at one ring position shares its key.
                let t = ReplayTable::new(1, 4096, skew, [5; 16]);
                let expires = 100 * w + offset;
                assert!(fresh(t.insert(&store, &nonce(0), expires, expires - 1)));
                for now in expires.saturating_sub(2 * skew + 1)..expires {
                    let furthest = now + 2 * skew + 1;
                    assert!(
                        fresh(t.insert(&store, &nonce(u32::try_from(now).unwrap()), furthest, now)),
                        "skew {skew} offset {offset} at {now}"
                    );
                    assert_eq!(
                        t.insert(&store, &nonce(0), expires, now),
                        Insert::Replay,
                        "skew {skew} offset {offset} at {now}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_width_leaves_every_accepted_proof_its_whole_lifetime_plus_slack() {
        for skew in 1..=600 {
            let w = generation_width(skew);
            assert!((GENERATIONS - 1 - SLACK) * w > 2 * skew, "skew {skew}");
            assert!(
                w <= (2 * skew + 1) / (GENERATIONS - 1 - SLACK) + 1,
                "skew {skew}: too wide"
            );
        }
    }

    /// Traffic over many generations with every proof's timestamp anywhere in `now ± skew`: every
    /// replay of a nonce still live is refused, whichever generation shares its key meanwhile.
    #[test]
    fn no_live_nonce_is_forgotten_as_generations_turn_over() {
        let skew = 60;
        let store = MemoryStore::default();
        // One bucket: every generation shares one key per ring position.
        let t = ReplayTable::new(1, 4096, skew, [3; 16]);
        let mut live: Vec<([u8; 16], u64)> = Vec::new();
        let mut next = 0u32;
        for now in 1_000u64..1_000 + 20 * GENERATIONS * generation_width(skew) {
            // Two new proofs a second at the extremes of the window, and one in the middle.
            for ts in [now - skew, now, now + skew] {
                let n = nonce(next);
                next += 1;
                let expires = ts + skew + 1;
                assert!(fresh(t.insert(&store, &n, expires, now)), "at {now}");
                live.push((n, expires));
            }
            live.retain(|(_, expires)| *expires > now);
            // Replays of every still-live nonce, claimed now and late (within the slack).
            for (n, expires) in live.iter().step_by(7) {
                assert_eq!(
                    t.insert(&store, n, *expires, now),
                    Insert::Replay,
                    "at {now}"
                );
            }
        }
        assert!(store.keys() as u64 <= GENERATIONS);
    }

    #[test]
    fn an_old_generation_is_replaced_wholesale_and_memory_stays_bounded() {
        let skew = 60;
        let w = generation_width(skew);
        let store = MemoryStore::default();
        let t = ReplayTable::new(8, 64, skew, [0; 16]);
        let mut next = 0u32;
        for now in (0..100 * GENERATIONS * w).step_by(w as usize) {
            for _ in 0..40 {
                next += 1;
                assert!(fresh(t.insert(&store, &nonce(next), now + skew + 1, now)));
            }
        }
        assert!(store.keys() as u64 <= GENERATIONS * 8);
        assert!(store.bytes() as u64 <= GENERATIONS * 8 * (24 + 8 + 64 * 8));
    }

    #[test]
    fn a_full_bucket_fails_closed() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(4, 2, 60, [0; 16]);
        let outcomes: Vec<Insert> = (0u32..10_000)
            .map(|i| t.insert(&store, &nonce(i), 1000, 10))
            .collect();
        assert_eq!(outcomes.iter().filter(|o| fresh(**o)).count(), 8);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Insert::Fresh { .. } | Insert::Full))
        );
        // Once the generation has moved on, room comes back.
        let later = 1000 + GENERATIONS * generation_width(60);
        assert!(fresh(t.insert(&store, &nonce(1), later + 100, later)));
    }

    #[test]
    fn a_claim_whose_generation_was_replaced_fails_closed() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(1, 8, 60, [0; 16]);
        let w = generation_width(60);
        let newer = 1000 + GENERATIONS * w;
        assert!(fresh(t.insert(&store, &nonce(1), newer, newer - 100)));
        assert_eq!(t.insert(&store, &nonce(2), 1000, 900), Insert::Unavailable);
    }

    #[test]
    fn the_fence_is_set_once_per_process_and_read_by_every_later_worker() {
        let store = MemoryStore::default();
        assert_eq!(restart_fence(&store, 1000), Some(1000));
        // Another worker, or a new VM of the same process, later: the same fence.
        assert_eq!(restart_fence(&store, 1500), Some(1000));
        assert!(fenced(999, 1000) && fenced(1000, 1000) && !fenced(1001, 1000));
        // A new process: new shared data, a new fence.
        assert_eq!(restart_fence(&MemoryStore::default(), 2000), Some(2000));
    }

    #[test]
    fn a_concurrent_writer_forces_a_retry_not_a_lost_nonce() {
        // Two workers read the same bucket; the second write must fail CAS and retry.
        let store = MemoryStore::default();
        let t = ReplayTable::new(1, 8, 60, [0; 16]);
        let g = 100 / generation_width(60) % GENERATIONS;
        let key = format!("autoid.replay.{g}.0");
        assert!(fresh(t.insert(&store, &nonce(1), 100, 0)));
        let (before, cas) = store.get(&key).unwrap().unwrap();
        assert_eq!(
            t.insert(&store, &nonce(2), 100, 0),
            Insert::Fresh { fill: 2 }
        );
        assert_eq!(
            store.set(&key, &before, Some(cas)),
            Err(SetError::CasMismatch)
        );
        assert_eq!(t.insert(&store, &nonce(2), 100, 0), Insert::Replay);
    }

    #[test]
    fn a_bucket_created_by_another_worker_first_is_read_not_overwritten() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(1, 8, 60, [0; 16]);
        let g = 100 / generation_width(60) % GENERATIONS;
        let key = format!("autoid.replay.{g}.0");
        assert!(fresh(t.insert(&store, &nonce(1), 100, 0)));
        assert_eq!(
            store.set(&key, &[0; 16], Some(CREATE_ONLY_CAS)),
            Err(SetError::CasMismatch),
            "a create never overwrites a live bucket"
        );
        assert!(fresh(t.insert(&store, &nonce(2), 100, 0)));
        assert_eq!(t.insert(&store, &nonce(1), 100, 0), Insert::Replay);
        assert_eq!(t.insert(&store, &nonce(2), 100, 0), Insert::Replay);
    }
}
