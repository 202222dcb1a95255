//! Shared data (a key-value store with compare-and-swap) and shared queues, shared by all workers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::memory::{self, HostResult, status};
use crate::state::{HostState, lock};

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
    fn register(&self, name: &str, worker: usize) -> u32 {
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

    fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        lock(&self.inner)
            .ids
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
    }

    fn enqueue(&self, id: u32, value: Vec<u8>) -> Result<(), Status> {
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

    fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut state = lock(&self.inner);
        let queue = state.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.pop_front().ok_or(Status::Empty)
    }
}

fn get(
    caller: &mut Caller<'_, HostState>,
    key: (u32, u32),
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> HostResult {
    let key = memory::read_string(caller, key.0, key.1)?;
    let (value, cas) = caller
        .data()
        .shared
        .shared_data
        .get(&key)
        .ok_or(Status::NotFound)?;
    memory::give(caller, &value, ptr_ptr, size_ptr)?;
    memory::write_u32(caller, cas_ptr, cas)
}

fn set(
    caller: &mut Caller<'_, HostState>,
    key: (u32, u32),
    value: (u32, u32),
    cas: u32,
) -> HostResult {
    let key = memory::read_string(caller, key.0, key.1)?;
    let value = memory::read(caller, value.0, value.1)?;
    caller.data().shared.shared_data.set(&key, &value, cas)?;
    Ok(())
}

/// Registers the shared data and shared queue hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut caller: Caller<'_, HostState>,
         key_ptr: u32,
         key_len: u32,
         ptr_ptr: u32,
         size_ptr: u32,
         cas_ptr: u32| {
            status(get(
                &mut caller,
                (key_ptr, key_len),
                ptr_ptr,
                size_ptr,
                cas_ptr,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut caller: Caller<'_, HostState>,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32,
         cas: u32| {
            status(set(
                &mut caller,
                (key_ptr, key_len),
                (value_ptr, value_len),
                cas,
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut caller: Caller<'_, HostState>, name_ptr: u32, name_len: u32, id_ptr: u32| {
            status((|| {
                let name = memory::read_string(&caller, name_ptr, name_len)?;
                let worker = caller.data().worker;
                let id = caller.data().shared.queues.register(&name, worker);
                memory::write_u32(&mut caller, id_ptr, id)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut caller: Caller<'_, HostState>,
         vm_ptr: u32,
         vm_len: u32,
         name_ptr: u32,
         name_len: u32,
         id_ptr: u32| {
            status((|| {
                let vm_id = memory::read_string(&caller, vm_ptr, vm_len)?;
                let name = memory::read_string(&caller, name_ptr, name_len)?;
                let id = caller
                    .data()
                    .shared
                    .queues
                    .resolve(&vm_id, &name)
                    .ok_or(Status::NotFound)?;
                memory::write_u32(&mut caller, id_ptr, id)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut caller: Caller<'_, HostState>, id: u32, value_ptr: u32, value_len: u32| {
            status((|| {
                let value = memory::read(&caller, value_ptr, value_len)?;
                caller.data_mut().shared.queues.enqueue(id, value)?;
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut caller: Caller<'_, HostState>, id: u32, ptr_ptr: u32, size_ptr: u32| {
            status((|| {
                let value = caller.data().shared.queues.dequeue(id)?;
                memory::give(&mut caller, &value, ptr_ptr, size_ptr)
            })())
        },
    )?;
    Ok(())
}
