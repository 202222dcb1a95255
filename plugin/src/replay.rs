//! The replay cache: a nonce seen within its proof's lifetime is rejected on every worker.
//!
//! `buckets` shared-data keys `autoid.replay.<n>`, each holding up to `slots_per_bucket` entries
//! of `nonce[16] || u64be(expires_at)`. An entry expires when its proof would be stale anyway
//! (timestamp + skew), so live entries are bounded by traffic within one skew window and memory
//! by `buckets × slots × 24` bytes. A bucket full of live nonces fails closed.

use sha2::{Digest, Sha256};

use crate::store::{CREATE_ONLY_CAS, SetError, Store, slot};

const ENTRY: usize = 24;
const MAX_CAS_TRIES: usize = 8;

/// One entry: `nonce[16] || u64be(expires_at)`.
fn entry(nonce: &[u8; 16], expires_at: u64) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..16].copy_from_slice(nonce);
    e[16..].copy_from_slice(&expires_at.to_be_bytes());
    e
}

/// What an insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// First sighting: recorded.
    Fresh,
    /// Seen before, still live.
    Replay,
    /// The bucket is full of live nonces (fail closed).
    Full,
    /// Shared data failed, or CAS kept losing (fail closed).
    Unavailable,
}

/// The replay table's shape and its bucket salt.
#[derive(Debug, Clone)]
pub struct ReplayTable {
    buckets: u32,
    slots: u32,
    salt: [u8; 16],
}

impl ReplayTable {
    /// A table of `buckets` keys of `slots` entries; `salt` keys the bucket choice so a client
    /// cannot aim its nonces at one bucket.
    pub fn new(buckets: u32, slots: u32, salt: [u8; 16]) -> Self {
        ReplayTable {
            buckets,
            slots,
            salt,
        }
    }

    fn key(&self, nonce: &[u8; 16]) -> String {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(nonce);
        format!("autoid.replay.{}", slot(&h.finalize().into(), self.buckets))
    }

    /// Records `nonce` until `expires_at`, or reports why not.
    pub fn insert(&self, store: &dyn Store, nonce: &[u8; 16], expires_at: u64, now: u64) -> Insert {
        let key = self.key(nonce);
        for _ in 0..MAX_CAS_TRIES {
            let (value, cas) = match store.get(&key) {
                Ok(Some(found)) => found,
                // A missing bucket is created holding this nonce, with a CAS no live key carries:
                // if another worker created it meanwhile the set fails and the loop reads it.
                Ok(None) => match store.set(&key, &entry(nonce, expires_at), Some(CREATE_ONLY_CAS))
                {
                    Ok(()) => return Insert::Fresh,
                    Err(SetError::CasMismatch) => continue,
                    Err(SetError::Host) => return Insert::Unavailable,
                },
                Err(_) => return Insert::Unavailable,
            };
            let mut live = Vec::with_capacity(value.len() + ENTRY);
            for entry in value.chunks_exact(ENTRY) {
                let expiry = u64::from_be_bytes(entry[16..].try_into().unwrap_or([0; 8]));
                if expiry <= now {
                    continue;
                }
                if &entry[..16] == nonce {
                    return Insert::Replay;
                }
                live.extend_from_slice(entry);
            }
            if live.len() / ENTRY >= self.slots as usize {
                return Insert::Full;
            }
            live.extend_from_slice(&entry(nonce, expires_at));
            match store.set(&key, &live, Some(cas)) {
                Ok(()) => return Insert::Fresh,
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

    #[test]
    fn a_nonce_is_fresh_once_then_a_replay_until_it_expires() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(16, 4, [1; 16]);
        assert_eq!(t.insert(&store, &[7; 16], 160, 100), Insert::Fresh);
        assert_eq!(t.insert(&store, &[7; 16], 160, 159), Insert::Replay);
        assert_eq!(
            t.insert(&store, &[7; 16], 260, 160),
            Insert::Fresh,
            "expired entries are dropped"
        );
    }

    #[test]
    fn a_full_bucket_fails_closed_and_memory_stays_bounded() {
        let store = MemoryStore::default();
        let t = ReplayTable::new(4, 2, [0; 16]);
        let mut outcomes = Vec::new();
        for i in 0u32..10_000 {
            let mut nonce = [0u8; 16];
            nonce[..4].copy_from_slice(&i.to_be_bytes());
            outcomes.push(t.insert(&store, &nonce, 1000, 10));
        }
        assert_eq!(outcomes.iter().filter(|o| **o == Insert::Fresh).count(), 8);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Insert::Fresh | Insert::Full))
        );
        assert!(store.keys() <= 4);
        assert!(store.bytes() <= 4 * (16 + 2 * ENTRY));
        // Once they expire, room comes back.
        let mut nonce = [9u8; 16];
        nonce[0] = 0xff;
        assert_eq!(t.insert(&store, &nonce, 3000, 1000), Insert::Fresh);
    }

    #[test]
    fn a_concurrent_writer_forces_a_retry_not_a_lost_nonce() {
        // Two workers read the same bucket; the second write must fail CAS and retry.
        let store = MemoryStore::default();
        let t = ReplayTable::new(1, 8, [0; 16]);
        assert_eq!(t.insert(&store, &[1; 16], 100, 0), Insert::Fresh);
        let (before, cas) = store.get("autoid.replay.0").unwrap().unwrap();
        assert_eq!(t.insert(&store, &[2; 16], 100, 0), Insert::Fresh);
        assert_eq!(
            store.set("autoid.replay.0", &before, Some(cas)),
            Err(SetError::CasMismatch)
        );
        assert_eq!(t.insert(&store, &[2; 16], 100, 0), Insert::Replay);
    }

    #[test]
    fn a_bucket_created_by_another_worker_first_is_read_not_overwritten() {
        // Worker B creates the bucket between worker A's read (missing) and A's create.
        let store = MemoryStore::default();
        let t = ReplayTable::new(1, 8, [0; 16]);
        assert_eq!(t.insert(&store, &[1; 16], 100, 0), Insert::Fresh);
        assert_eq!(
            store.set(
                "autoid.replay.0",
                &entry(&[2; 16], 100),
                Some(CREATE_ONLY_CAS)
            ),
            Err(SetError::CasMismatch),
            "a create never overwrites a live bucket"
        );
        assert_eq!(t.insert(&store, &[2; 16], 100, 0), Insert::Fresh);
        assert_eq!(t.insert(&store, &[1; 16], 100, 0), Insert::Replay);
        assert_eq!(t.insert(&store, &[2; 16], 100, 0), Insert::Replay);
    }
}
