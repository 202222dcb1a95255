//! Unwrapped session keys, so RSA runs once per session (DESIGN.md rule 6).
//!
//! Two layers: each worker's own bounded map (no hostcall on a hit), then a direct-mapped table
//! of `max_entries` shared-data keys `autoid.session.<n>` holding `session_id[32] || key and
//! issued_at[40] || u64be(expires_at)`, so a session unwrapped on one worker is warm on all.
//! Only sessions that unwrapped correctly are ever stored; a colliding session evicts the older.
//!
//! The local map matches the kid and the wrapped bytes themselves (indexed by their first 32
//! bytes, compared in full), so a local hit costs no SHA-256: the session id is computed only for
//! the shared layer.

use std::collections::HashMap;

use autoid_protocol::header::{SessionId, session_id};
use autoid_protocol::verify::SessionKey;

use crate::store::{Store, slot};

const VALUE_LEN: usize = 32 + 40 + 8;

/// Where a session was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// This worker's map.
    Local,
    /// Shared data (another worker unwrapped it).
    Shared,
}

/// A session in a worker's own map.
#[derive(Debug)]
struct Local {
    kid: String,
    wrapped: Box<[u8]>,
    key: SessionKey,
    expires: u64,
}

/// The local map's index: the first bytes of the wrapped key (RSA ciphertext).
type Prefix = [u8; 32];

fn prefix(wrapped: &[u8]) -> Prefix {
    let mut p = [0u8; 32];
    let n = wrapped.len().min(p.len());
    p[..n].copy_from_slice(&wrapped[..n]);
    p
}

/// The two-layer session cache.
#[derive(Debug)]
pub struct Sessions {
    local: HashMap<Prefix, Local>,
    local_max: usize,
    shared_slots: u32,
}

impl Sessions {
    /// A cache with `local_max` local entries and `shared_slots` shared keys.
    pub fn new(local_max: u32, shared_slots: u32) -> Self {
        Sessions {
            local: HashMap::new(),
            local_max: local_max as usize,
            shared_slots,
        }
    }

    fn key(&self, id: &SessionId) -> String {
        format!("autoid.session.{}", slot(id, self.shared_slots))
    }

    /// A live cached session for this kid and wrapped key.
    pub fn get(
        &mut self,
        store: &dyn Store,
        kid: &str,
        wrapped: &[u8],
        now: u64,
    ) -> Option<(SessionKey, Hit)> {
        let p = prefix(wrapped);
        if let Some(local) = self.local.get(&p)
            && local.kid == kid
            && *local.wrapped == *wrapped
        {
            if local.expires > now {
                return Some((local.key.clone(), Hit::Local));
            }
            self.local.remove(&p);
        }
        let id = session_id(kid, wrapped);
        let (value, _) = store.get(&self.key(&id)).ok()??;
        if value.len() != VALUE_LEN || value[..32] != id[..] {
            return None;
        }
        let expires = u64::from_be_bytes(value[72..].try_into().ok()?);
        if expires <= now {
            return None;
        }
        let key = SessionKey::from_bytes(&value[32..72])?;
        self.put_local(kid, wrapped, &key, expires);
        Some((key, Hit::Shared))
    }

    fn put_local(&mut self, kid: &str, wrapped: &[u8], key: &SessionKey, expires: u64) {
        if self.local.len() >= self.local_max {
            self.local.clear();
        }
        let local = Local {
            kid: kid.to_owned(),
            wrapped: wrapped.into(),
            key: key.clone(),
            expires,
        };
        self.local.insert(prefix(wrapped), local);
    }

    /// Remembers a session freshly unwrapped from this kid and wrapped key until `expires`.
    pub fn put(
        &mut self,
        store: &dyn Store,
        kid: &str,
        wrapped: &[u8],
        key: &SessionKey,
        expires: u64,
    ) {
        self.put_local(kid, wrapped, key, expires);
        let id = session_id(kid, wrapped);
        let mut value = Vec::with_capacity(VALUE_LEN);
        value.extend_from_slice(&id);
        value.extend_from_slice(&key.to_bytes());
        value.extend_from_slice(&expires.to_be_bytes());
        // A cache: losing a write only costs another unwrap later.
        let _ = store.set(&self.key(&id), &value, None);
    }

    /// Entries in this worker's map.
    pub fn local_len(&self) -> usize {
        self.local.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn key(n: u8) -> SessionKey {
        let mut b = [n; 40];
        b[32..].copy_from_slice(&1000u64.to_be_bytes());
        SessionKey::from_bytes(&b).unwrap()
    }

    #[test]
    fn a_session_put_on_one_worker_is_found_on_another() {
        let store = MemoryStore::default();
        let mut w1 = Sessions::new(8, 64);
        let mut w2 = Sessions::new(8, 64);
        let one = [1u8; 256];
        w1.put(&store, "k1", &one, &key(1), 5000);
        assert_eq!(w1.get(&store, "k1", &one, 100), Some((key(1), Hit::Local)));
        assert_eq!(w2.get(&store, "k1", &one, 100), Some((key(1), Hit::Shared)));
        assert_eq!(w2.get(&store, "k1", &one, 100), Some((key(1), Hit::Local)));
        assert_eq!(w2.get(&store, "k1", &[2; 256], 100), None);
        assert_eq!(w1.get(&store, "k2", &one, 100), None, "another kid");
        assert_eq!(w1.get(&store, "k1", &one, 5000), None, "expired");
    }

    #[test]
    fn a_local_hit_needs_the_whole_wrapped_key() {
        let store = MemoryStore::default();
        let mut w = Sessions::new(8, 64);
        let one = [1u8; 256];
        let mut same_prefix = one;
        same_prefix[255] = 0;
        w.put(&store, "k1", &one, &key(1), 5000);
        assert_eq!(w.get(&store, "k1", &same_prefix, 100), None);
        assert_eq!(w.get(&store, "k1", &one, 100), Some((key(1), Hit::Local)));
    }

    #[test]
    fn both_layers_stay_bounded_under_a_flood() {
        let store = MemoryStore::default();
        let mut w = Sessions::new(16, 32);
        for i in 0u32..5000 {
            let mut wrapped = [0u8; 256];
            wrapped[..4].copy_from_slice(&i.to_be_bytes());
            w.put(&store, "k1", &wrapped, &key(3), 9999);
            assert!(w.local_len() <= 16);
        }
        assert!(store.keys() <= 32);
    }
}
