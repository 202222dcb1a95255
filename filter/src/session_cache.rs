//! Unwrapped session keys, so RSA runs once per session (DESIGN.md rule 6).
//!
//! Two layers: each worker's own bounded map (no hostcall on a hit), then a direct-mapped table
//! of `max_entries` shared-data keys `autoid.session.<n>` holding `session_id[32] || key and
//! issued_at[40] || u64be(expires_at) || lp8(kid)`, so a session unwrapped on one worker is warm
//! on all. Only sessions that unwrapped correctly are ever stored; a colliding session evicts the
//! older.
//!
//! A proof names its session by its wrapped key (v1, v2's full form) or by its 16-byte
//! reference (v2's compact form, the first bytes of the session id). The local map is keyed by
//! the reference, with a second index by the wrapped key's first 32 bytes, so a full-form local
//! hit costs no SHA-256 (the wrapped bytes are compared in full) and a compact one no hashing at
//! all: the session id is computed only to store a session and for the shared layer.

use std::collections::HashMap;

use autoid_protocol::header::{SessionId, SessionPart, SessionRef, session_id, session_ref};
use autoid_protocol::verify::SessionKey;

use crate::store::{Store, slot};

const FIXED_LEN: usize = 32 + 40 + 8;

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
    /// The wrapped key, when this worker saw the full form (a compact lookup found in shared
    /// data has none until then).
    wrapped: Option<Box<[u8]>>,
    key: SessionKey,
    expires: u64,
}

/// The full form's index: the first bytes of the wrapped key (RSA ciphertext).
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
    local: HashMap<SessionRef, Local>,
    by_prefix: HashMap<Prefix, SessionRef>,
    local_max: usize,
    shared_slots: u32,
}

impl Sessions {
    /// A cache with `local_max` local entries and `shared_slots` shared keys.
    pub fn new(local_max: u32, shared_slots: u32) -> Self {
        Sessions {
            local: HashMap::new(),
            by_prefix: HashMap::new(),
            local_max: local_max as usize,
            shared_slots,
        }
    }

    /// The shared key of a session: by its reference's first bytes, so both forms find it.
    fn key(&self, reference: &SessionRef) -> String {
        let mut h = [0u8; 32];
        h[..reference.len()].copy_from_slice(reference);
        format!("autoid.session.{}", slot(&h, self.shared_slots))
    }

    /// A live cached session for this kid and session part.
    pub fn get(
        &mut self,
        store: &dyn Store,
        kid: &str,
        part: &SessionPart,
        now: u64,
    ) -> Option<(SessionKey, Hit)> {
        let (reference, id) = match part {
            SessionPart::Wrapped(wrapped) => {
                let p = prefix(wrapped);
                if let Some(r) = self.by_prefix.get(&p).copied() {
                    match self.local.get(&r) {
                        Some(local)
                            if local.kid == kid
                                && local.wrapped.as_deref() == Some(wrapped.as_slice()) =>
                        {
                            if local.expires > now {
                                return Some((local.key.clone(), Hit::Local));
                            }
                            self.local.remove(&r);
                            self.by_prefix.remove(&p);
                        }
                        Some(_) => {}
                        None => {
                            self.by_prefix.remove(&p);
                        }
                    }
                }
                let id = session_id(kid, wrapped);
                (session_ref(&id), Some(id))
            }
            SessionPart::Reference(r) => {
                if let Some(local) = self.local.get(r)
                    && local.kid == kid
                {
                    if local.expires > now {
                        return Some((local.key.clone(), Hit::Local));
                    }
                    self.local.remove(r);
                }
                (*r, None)
            }
        };
        let (value, _) = store.get(&self.key(&reference)).ok()??;
        let (fixed, rest) = value.split_at_checked(FIXED_LEN)?;
        let matches = match &id {
            Some(id) => fixed[..32] == id[..],
            None => fixed[..reference.len()] == reference[..],
        };
        let (kid_len, stored_kid) = rest.split_first()?;
        if !matches || usize::from(*kid_len) != stored_kid.len() || stored_kid != kid.as_bytes() {
            return None;
        }
        let expires = u64::from_be_bytes(fixed[72..80].try_into().ok()?);
        if expires <= now {
            return None;
        }
        let key = SessionKey::from_bytes(&fixed[32..72])?;
        let wrapped = match part {
            SessionPart::Wrapped(w) => Some(w.as_slice()),
            SessionPart::Reference(_) => None,
        };
        self.put_local(kid, wrapped, reference, &key, expires);
        Some((key, Hit::Shared))
    }

    fn put_local(
        &mut self,
        kid: &str,
        wrapped: Option<&[u8]>,
        reference: SessionRef,
        key: &SessionKey,
        expires: u64,
    ) {
        if self.local.len() >= self.local_max {
            self.local.clear();
            self.by_prefix.clear();
        }
        if let Some(w) = wrapped {
            self.by_prefix.insert(prefix(w), reference);
        }
        let local = Local {
            kid: kid.to_owned(),
            wrapped: wrapped.map(Into::into),
            key: key.clone(),
            expires,
        };
        self.local.insert(reference, local);
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
        let id: SessionId = session_id(kid, wrapped);
        let reference = session_ref(&id);
        self.put_local(kid, Some(wrapped), reference, key, expires);
        let mut value = Vec::with_capacity(FIXED_LEN + 1 + kid.len());
        value.extend_from_slice(&id);
        value.extend_from_slice(&key.to_bytes());
        value.extend_from_slice(&expires.to_be_bytes());
        // Key ids are at most 32 bytes (the identifier grammar).
        value.push(kid.len() as u8);
        value.extend_from_slice(kid.as_bytes());
        // A cache: losing a write only costs another unwrap later.
        let _ = store.set(&self.key(&reference), &value, None);
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

    fn full(wrapped: &[u8]) -> SessionPart {
        SessionPart::Wrapped(wrapped.to_vec())
    }

    fn compact(kid: &str, wrapped: &[u8]) -> SessionPart {
        SessionPart::Reference(session_ref(&session_id(kid, wrapped)))
    }

    #[test]
    fn a_session_put_on_one_worker_is_found_on_another() {
        let store = MemoryStore::default();
        let mut w1 = Sessions::new(8, 64);
        let mut w2 = Sessions::new(8, 64);
        let one = [1u8; 256];
        w1.put(&store, "k1", &one, &key(1), 5000);
        assert_eq!(
            w1.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Local))
        );
        assert_eq!(
            w2.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Shared))
        );
        assert_eq!(
            w2.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Local))
        );
        assert_eq!(w2.get(&store, "k1", &full(&[2; 256]), 100), None);
        assert_eq!(w1.get(&store, "k2", &full(&one), 100), None, "another kid");
        assert_eq!(w1.get(&store, "k1", &full(&one), 5000), None, "expired");
    }

    #[test]
    fn a_compact_reference_finds_the_session_locally_and_across_workers() {
        let store = MemoryStore::default();
        let mut w1 = Sessions::new(8, 64);
        let mut w2 = Sessions::new(8, 64);
        let one = [1u8; 384];
        assert_eq!(w1.get(&store, "k1", &compact("k1", &one), 100), None);
        w1.put(&store, "k1", &one, &key(1), 5000);
        let r = compact("k1", &one);
        assert_eq!(w1.get(&store, "k1", &r, 100), Some((key(1), Hit::Local)));
        assert_eq!(w2.get(&store, "k1", &r, 100), Some((key(1), Hit::Shared)));
        assert_eq!(w2.get(&store, "k1", &r, 100), Some((key(1), Hit::Local)));
        // The worker that learned it by reference learns the wrapped key from the full form.
        assert_eq!(
            w2.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Shared))
        );
        assert_eq!(
            w2.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Local))
        );
        // The reference is bound to its key id, in both layers.
        assert_eq!(w1.get(&store, "k2", &r, 100), None);
        let mut w3 = Sessions::new(8, 64);
        assert_eq!(w3.get(&store, "k2", &r, 100), None);
        assert_eq!(w3.get(&store, "k1", &compact("k1", &[2; 384]), 100), None);
        assert_eq!(w1.get(&store, "k1", &r, 5000), None, "expired");
        assert_eq!(
            w3.get(&store, "k1", &r, 5000),
            None,
            "expired in shared data too"
        );
    }

    #[test]
    fn a_local_hit_needs_the_whole_wrapped_key() {
        let store = MemoryStore::default();
        let mut w = Sessions::new(8, 64);
        let one = [1u8; 256];
        let mut same_prefix = one;
        same_prefix[255] = 0;
        w.put(&store, "k1", &one, &key(1), 5000);
        assert_eq!(w.get(&store, "k1", &full(&same_prefix), 100), None);
        assert_eq!(
            w.get(&store, "k1", &full(&one), 100),
            Some((key(1), Hit::Local))
        );
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
            assert!(w.by_prefix.len() <= 16);
        }
        assert!(store.keys() <= 32);
    }
}
