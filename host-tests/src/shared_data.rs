//! The shared data and shared queue hostcalls.

use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::memory::{self, HostResult, status};
use crate::state::HostState;

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
