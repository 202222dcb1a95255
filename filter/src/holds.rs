//! Sources the agent's password throttle holds back (its 429 with `"held":"source"`), in shared
//! data so every worker knows them: while a source is held, every HTTP Basic request from it is
//! answered 429 without a remembered bind, so the answer does not depend on whether the password
//! is right (a bind remembered from before the hold would otherwise say so at once).
//!
//! Bounded: [`SLOTS`] keys of at most [`PER_SLOT`] holds each, a source's slot picked by its
//! SHA-256. A full slot drops the holds already over, then the one ending first (so a flood of
//! fresh short holds cannot push out a long one). Entries carry their own end: shared data has no
//! TTL and no delete.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{CREATE_ONLY_CAS, SetError, Store, StoreError, slot};

/// Shared-data keys of the table.
pub const SLOTS: u32 = 1024;
/// Holds per key.
pub const PER_SLOT: usize = 8;
/// Tries of a CAS update before giving up (the hold then stays with the agent alone).
const TRIES: usize = 4;

/// The shared-data key of `source`'s slot.
fn key(source: &str) -> String {
    let hash: [u8; 32] = Sha256::digest(source.as_bytes()).into();
    format!("autoid.basic_holds.{}", slot(&hash, SLOTS))
}

/// One slot's holds: (source, held until in ms since the Unix epoch).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Slot(Vec<(String, u64)>);

fn read(store: &dyn Store, key: &str) -> Result<(Slot, Option<u32>), StoreError> {
    Ok(match store.get(key)? {
        // A slot that does not parse holds nothing usable: it is rewritten whole.
        Some((bytes, cas)) => (
            serde_json::from_slice(&bytes).unwrap_or_default(),
            Some(cas),
        ),
        None => (Slot::default(), None),
    })
}

/// How long `source` is still held at `now_ms` (ms, more than 0), `None` when it is not;
/// `Err` when shared data failed (the caller then asks the agent, which holds it anyway).
pub fn held(store: &dyn Store, source: &str, now_ms: u64) -> Result<Option<u64>, StoreError> {
    let (slot, _) = read(store, &key(source))?;
    Ok(slot
        .0
        .iter()
        .find(|(s, until)| s == source && *until > now_ms)
        .map(|(_, until)| until - now_ms))
}

/// Records that the agent holds `source` until `until_ms`; `false` if shared data would not take
/// it.
pub fn hold(store: &dyn Store, source: &str, until_ms: u64, now_ms: u64) -> bool {
    let key = key(source);
    for _ in 0..TRIES {
        let Ok((Slot(mut holds), cas)) = read(store, &key) else {
            return false;
        };
        holds.retain(|(s, until)| *until > now_ms && s != source);
        holds.push((source.to_owned(), until_ms));
        if holds.len() > PER_SLOT {
            holds.sort_by_key(|(_, until)| std::cmp::Reverse(*until));
            holds.truncate(PER_SLOT);
        }
        let Ok(bytes) = serde_json::to_vec(&Slot(holds)) else {
            return false;
        };
        match store.set(&key, &bytes, Some(cas.unwrap_or(CREATE_ONLY_CAS))) {
            Ok(()) => return true,
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Host) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[test]
    fn a_hold_is_seen_by_its_source_only_and_until_it_ends() {
        let store = MemoryStore::default();
        assert_eq!(held(&store, "203.0.113.9", 1_000), Ok(None));
        assert!(hold(&store, "203.0.113.9", 5_000, 1_000));
        assert_eq!(held(&store, "203.0.113.9", 1_000), Ok(Some(4_000)));
        assert_eq!(held(&store, "203.0.113.9", 4_999), Ok(Some(1)));
        assert_eq!(
            held(&store, "203.0.113.9", 5_000),
            Ok(None),
            "over at its end"
        );
        assert_eq!(held(&store, "203.0.113.10", 1_000), Ok(None));
        // A later hold of the same source replaces the earlier one.
        assert!(hold(&store, "203.0.113.9", 9_000, 6_000));
        assert_eq!(held(&store, "203.0.113.9", 6_000), Ok(Some(3_000)));
    }

    #[test]
    fn memory_is_bounded_and_a_full_slot_keeps_the_longest_holds() {
        let store = MemoryStore::default();
        for i in 0..5_000u64 {
            assert!(hold(
                &store,
                &format!("10.0.{}.{}", i / 256, i % 256),
                1_000_000 + i,
                0
            ));
        }
        assert!(store.keys() <= SLOTS as usize);
        // Every slot holds at most PER_SLOT sources (about 60 bytes each).
        assert!(
            store.bytes() <= SLOTS as usize * (40 + PER_SLOT * 40),
            "{}",
            store.bytes()
        );
        // A long hold survives a flood of short ones into its slot.
        let long = "198.51.100.7";
        assert!(hold(&store, long, 10_000_000, 0));
        let mut same_slot = 0;
        for i in 0..100_000u64 {
            let s = format!("172.16.{}.{}", i / 256, i % 256);
            if key(&s) == key(long) {
                assert!(hold(&store, &s, 2_000, 0));
                same_slot += 1;
            }
        }
        assert!(same_slot > PER_SLOT, "{same_slot}");
        assert!(held(&store, long, 1_000).unwrap().is_some());
    }
}
