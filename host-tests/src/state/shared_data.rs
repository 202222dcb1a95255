//! Shared data (a key-value store with compare-and-swap) and shared queues, shared by all workers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::abi::Status;
use crate::sync::lock;

/// Envoy's shared data: one map for all VMs. Each value carries a CAS token; every successful set
/// gives the key a new, never-zero token. Cloning shares the store.
#[derive(Debug, Clone, Default)]
pub struct SharedData {
    inner: Arc<Mutex<SharedDataState>>,
}

#[derive(Debug, Default)]
struct SharedDataState {
    entries: HashMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
}

impl SharedData {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value under `key` and its CAS token.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        lock(&self.inner).entries.get(key).cloned()
    }

    /// Sets `key`, returning the new CAS token. `cas == 0` sets unconditionally; otherwise the
    /// current token of an existing key must equal `cas` or nothing changes and the result is
    /// `Err(Status::CasMismatch)`. A missing key is created whatever `cas` says (as in Envoy).
    pub fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<u32, Status> {
        let mut state = lock(&self.inner);
        if let Some((_, current)) = state.entries.get(key)
            && cas != 0
            && cas != *current
        {
            return Err(Status::CasMismatch);
        }
        state.last_cas = state.last_cas.wrapping_add(1).max(1);
        let token = state.last_cas;
        state
            .entries
            .insert(key.to_owned(), (value.to_vec(), token));
        Ok(token)
    }

    /// Every stored key, sorted (read-only: for tests that bound what a filter keeps).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.inner).entries.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        lock(&self.inner).entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shared queues: named FIFOs any worker can enqueue to. As in proxy-wasm-cpp-host, a queue
/// belongs to the root context that registered its name last, and every enqueue wakes that
/// worker's root with `proxy_on_queue_ready` (here: at the end of that worker's current or next
/// guest call, as Envoy posts it to the worker's event loop).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedQueues {
    inner: Arc<Mutex<QueuesState>>,
}

#[derive(Debug, Default)]
struct QueuesState {
    ids: HashMap<(String, String), u32>,
    queues: HashMap<u32, VecDeque<Vec<u8>>>,
    /// The worker whose root registered each queue last.
    owners: HashMap<u32, usize>,
    /// Wake-ups not yet delivered: (worker, queue).
    ready: VecDeque<(usize, u32)>,
}

/// The VM id every worker of this harness runs under.
const VM_ID: &str = "";

impl SharedQueues {
    pub(crate) fn register(&self, name: &str, worker: usize) -> u32 {
        let mut state = lock(&self.inner);
        let next = state.ids.len() as u32 + 1;
        let id = *state
            .ids
            .entry((VM_ID.to_owned(), name.to_owned()))
            .or_insert(next);
        state.queues.entry(id).or_default();
        state.owners.insert(id, worker);
        id
    }

    /// The next wake-up for `worker`'s root: a queue it owns that something was enqueued on.
    pub(crate) fn next_ready(&self, worker: usize) -> Option<u32> {
        let mut state = lock(&self.inner);
        let at = state.ready.iter().position(|(w, _)| *w == worker)?;
        state.ready.remove(at).map(|(_, id)| id)
    }

    pub(crate) fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        lock(&self.inner)
            .ids
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
    }

    pub(crate) fn enqueue(&self, id: u32, value: Vec<u8>) -> Result<(), Status> {
        let mut state = lock(&self.inner);
        state
            .queues
            .get_mut(&id)
            .ok_or(Status::NotFound)?
            .push_back(value);
        if let Some(owner) = state.owners.get(&id).copied() {
            state.ready.push_back((owner, id));
        }
        Ok(())
    }

    pub(crate) fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut state = lock(&self.inner);
        let queue = state.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.pop_front().ok_or(Status::Empty)
    }
}
