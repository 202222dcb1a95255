//! Shared data as the caches see it: get with a CAS token, set with an optional CAS.
//!
//! ABI 0.2.1 shared data has no delete and no TTL, and a set on a missing key succeeds whatever
//! CAS it carries. So every table here lives in a fixed set of keys (bounded memory), entries
//! carry their own expiry, and a key is created with [`CREATE_ONLY_CAS`], which fails on a key
//! that already exists, so a create never overwrites what another worker wrote.

/// The host's shared data failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

/// Why a set failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// The key changed since it was read.
    CasMismatch,
    /// Any other host failure.
    Host,
}

/// The host's shared-data store.
pub trait Store {
    /// The value and its CAS token, `None` when the key is missing; `Err` on host failure.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Sets `key`; with `cas`, only if the key still carries that token.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// A CAS no live key carries: a set with it only succeeds when the key is missing.
pub const CREATE_ONLY_CAS: u32 = u32::MAX;

/// The slot a hash falls in.
pub fn slot(hash: &[u8; 32], slots: u32) -> u32 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&hash[..8]);
    (u64::from_be_bytes(word) % u64::from(slots.max(1))) as u32
}

/// An in-memory store with Envoy's semantics, for native tests.
#[cfg(test)]
pub mod memory {
    use super::{SetError, Store, StoreError};
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Debug, Default)]
    pub struct MemoryStore {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next: RefCell<u32>,
    }

    impl MemoryStore {
        pub fn keys(&self) -> usize {
            self.map.borrow().len()
        }
        pub fn bytes(&self) -> usize {
            self.map
                .borrow()
                .iter()
                .map(|(k, (v, _))| k.len() + v.len())
                .sum()
        }
    }

    impl Store for MemoryStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            Ok(self.map.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            let mut map = self.map.borrow_mut();
            let mut next = self.next.borrow_mut();
            if let (Some((_, current)), Some(cas)) = (map.get(key), cas)
                && cas != 0
                && cas != *current
            {
                return Err(SetError::CasMismatch);
            }
            *next += 1;
            map.insert(key.to_owned(), (value.to_vec(), *next));
            Ok(())
        }
    }
}
