//! The guest exports through which the host reaches a worker VM's memory.

use wasmtime::{Memory, TypedFunc};

/// The guest exports the host needs to reach guest memory.
#[derive(Clone)]
pub(crate) struct GuestMemory {
    /// The exported `memory`.
    pub memory: Memory,
    /// `proxy_on_memory_allocate` (or `malloc`).
    pub allocate: TypedFunc<u32, u32>,
}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory").finish_non_exhaustive()
    }
}
