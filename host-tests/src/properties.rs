//! Properties: `proxy_get_property` and `proxy_set_property`, looked up per request, then per worker, then gateway-wide.

use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::memory::{self, HostResult, status};
use crate::state::HostState;
use crate::sync::lock;

/// Parses a property path: segments, each followed by `\0`.
pub(crate) fn decode_path(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    bytes
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// A path as the gateway API takes it.
pub(crate) fn owned_path(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

fn lookup(state: &HostState, path: &[String]) -> Option<Vec<u8>> {
    if let Some(value) = state.stream.as_ref().and_then(|s| s.properties.get(path)) {
        return Some(value.clone());
    }
    if let Some(value) = state.properties.get(path) {
        return Some(value.clone());
    }
    lock(&state.shared.properties).get(path).cloned()
}

fn get(
    caller: &mut Caller<'_, HostState>,
    path: (u32, u32),
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let path = decode_path(&memory::read(caller, path.0, path.1)?);
    let value = lookup(caller.data(), &path).ok_or(Status::NotFound)?;
    memory::give(caller, &value, ptr_ptr, size_ptr)
}

fn set(caller: &mut Caller<'_, HostState>, path: (u32, u32), value: (u32, u32)) -> HostResult {
    let path = decode_path(&memory::read(caller, path.0, path.1)?);
    let value = memory::read(caller, value.0, value.1)?;
    let state = caller.data_mut();
    let context = state.effective_context;
    match state.stream.as_mut().filter(|s| s.context_id == context) {
        Some(stream) => stream.properties.insert(path, value),
        None => state.properties.insert(path, value),
    };
    Ok(())
}

/// Registers the property hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut caller: Caller<'_, HostState>,
         path_ptr: u32,
         path_len: u32,
         ptr_ptr: u32,
         size_ptr: u32| {
            status(get(&mut caller, (path_ptr, path_len), ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut caller: Caller<'_, HostState>,
         path_ptr: u32,
         path_len: u32,
         value_ptr: u32,
         value_len: u32| {
            status(set(
                &mut caller,
                (path_ptr, path_len),
                (value_ptr, value_len),
            ))
        },
    )?;
    Ok(())
}
