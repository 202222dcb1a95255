//! What every check worker shares, as Envoy shares it between its workers: the shared data (one
//! thread-safe map with Envoy's CAS semantics, so a replay claim is atomic across workers) and
//! the filter's counters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use autoid_filter::store::{SetError, Store, StoreError};

/// Shared data with Envoy's semantics: every set gives the key a new CAS token; a set with a CAS
/// fails on a key that carries another one (0 means none); a set on a missing key succeeds
/// whatever CAS it carries, so no live key carrying `u32::MAX` makes that a create-only CAS.
#[derive(Debug, Default)]
pub struct SharedStore {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, (Vec<u8>, u32)>,
    next: u32,
}

impl Store for SharedStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let entries = self.inner.lock().map_err(|_| StoreError)?;
        Ok(entries.map.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        let mut entries = self.inner.lock().map_err(|_| SetError::Host)?;
        if let (Some((_, current)), Some(cas)) = (entries.map.get(key), cas)
            && cas != 0
            && cas != *current
        {
            return Err(SetError::CasMismatch);
        }
        // Tokens run 1..u32::MAX-1: never 0 (no CAS) nor the create-only CAS.
        entries.next = if entries.next >= u32::MAX - 1 {
            1
        } else {
            entries.next + 1
        };
        let token = entries.next;
        entries.map.insert(key.to_owned(), (value.to_vec(), token));
        Ok(())
    }
}

/// The filter's counters, defined by name by every worker (one id per name, as Envoy's stats).
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<Vec<(String, AtomicU64)>>,
}

impl Counters {
    /// The id of the counter `name`, defined on first use.
    pub fn define(&self, name: &str) -> Option<u32> {
        let mut counters = self.inner.lock().ok()?;
        if let Some(i) = counters.iter().position(|(n, _)| n == name) {
            return u32::try_from(i).ok();
        }
        counters.push((name.to_owned(), AtomicU64::new(0)));
        u32::try_from(counters.len() - 1).ok()
    }

    /// Adds `n` to the counter `id`.
    pub fn add(&self, id: u32, n: u64) {
        if let Ok(counters) = self.inner.lock()
            && let Some((_, c)) = counters.get(id as usize)
        {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counter `name` (0 when never defined).
    pub fn get(&self, name: &str) -> u64 {
        self.inner.lock().map_or(0, |counters| {
            counters
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, c)| c.load(Ordering::Relaxed))
        })
    }

    /// The counters in the Prometheus text format, named `autoid_check_<filter counter>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(counters) = self.inner.lock() {
            for (name, c) in counters.iter() {
                let name = name.strip_prefix("autoid_").unwrap_or(name);
                let _ = writeln!(out, "# TYPE autoid_check_{name} counter");
                let _ = writeln!(out, "autoid_check_{name} {}", c.load(Ordering::Relaxed));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoid_filter::store::CREATE_ONLY_CAS;

    #[test]
    fn cas_and_create_only_behave_as_envoys() {
        let s = SharedStore::default();
        assert_eq!(s.get("k"), Ok(None));
        assert_eq!(s.set("k", b"a", Some(CREATE_ONLY_CAS)), Ok(()));
        assert_eq!(
            s.set("k", b"b", Some(CREATE_ONLY_CAS)),
            Err(SetError::CasMismatch)
        );
        let Ok(Some((v, cas))) = s.get("k") else {
            panic!("the key exists");
        };
        assert_eq!(v, b"a");
        assert_eq!(s.set("k", b"c", Some(cas)), Ok(()));
        assert_eq!(s.set("k", b"d", Some(cas)), Err(SetError::CasMismatch));
        assert_eq!(s.set("k", b"e", None), Ok(()));
        assert_eq!(
            s.get("k").ok().flatten().map(|(v, _)| v),
            Some(b"e".to_vec())
        );
    }

    #[test]
    fn counters_share_one_id_per_name() {
        let c = Counters::default();
        let a = c.define("autoid_allowed");
        assert_eq!(c.define("autoid_allowed"), a);
        c.add(a.unwrap_or(99), 3);
        assert_eq!(c.get("autoid_allowed"), 3);
        assert!(c.render().contains("autoid_check_allowed 3\n"));
    }
}
