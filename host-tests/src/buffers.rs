//! Buffers: `proxy_get_buffer_bytes` and `proxy_set_buffer_bytes` (bodies, configuration, callout bodies).

use wasmtime::{Caller, Linker};

use crate::abi::{Status, buffer_type};
use crate::memory::{self, HostResult, status};
use crate::state::HostState;

/// The buffer a hostcall addresses, if it exists now.
fn buffer(state: &mut HostState, kind: u32) -> Result<&mut Vec<u8>, Status> {
    let buffer = match kind {
        buffer_type::REQUEST_BODY => state.current_stream().map(|s| &mut s.request_body),
        buffer_type::RESPONSE_BODY => state
            .current_stream()
            .filter(|s| s.response_headers.is_some())
            .map(|s| &mut s.response_body),
        buffer_type::CALLOUT_RESPONSE_BODY => state.callout_response.as_mut().map(|r| &mut r.body),
        _ => None,
    };
    buffer.ok_or(Status::NotFound)
}

fn get(
    caller: &mut Caller<'_, HostState>,
    kind: u32,
    start: u32,
    max: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let slice = |bytes: &[u8]| {
        let from = (start as usize).min(bytes.len());
        let to = from.saturating_add(max as usize).min(bytes.len());
        bytes[from..to].to_vec()
    };
    let state = caller.data_mut();
    let bytes = match kind {
        buffer_type::PLUGIN_CONFIGURATION => slice(&state.shared.plugin_config),
        buffer_type::VM_CONFIGURATION => slice(&state.shared.vm_config),
        _ => slice(buffer(state, kind)?),
    };
    memory::give(caller, &bytes, ptr_ptr, size_ptr)
}

fn set(
    caller: &mut Caller<'_, HostState>,
    kind: u32,
    start: u32,
    size: u32,
    ptr: u32,
    len: u32,
) -> HostResult {
    let data = memory::read(caller, ptr, len)?;
    let target = buffer(caller.data_mut(), kind).map_err(|_| Status::BadArgument)?;
    let from = (start as usize).min(target.len());
    let to = from.saturating_add(size as usize).min(target.len());
    target.splice(from..to, data);
    Ok(())
}

/// Registers the buffer hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut caller: Caller<'_, HostState>,
         kind: u32,
         start: u32,
         max: u32,
         ptr_ptr: u32,
         size_ptr: u32| { status(get(&mut caller, kind, start, max, ptr_ptr, size_ptr)) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut caller: Caller<'_, HostState>,
         kind: u32,
         start: u32,
         size: u32,
         ptr: u32,
         len: u32| { status(set(&mut caller, kind, start, size, ptr, len)) },
    )?;
    Ok(())
}
