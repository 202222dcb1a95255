//! Stream control: continue, close, local replies, the effective context, `proxy_done`, foreign functions.

use wasmtime::{Caller, Linker};

use crate::abi::{Status, stream_type};
use crate::headers::decode_pairs;
use crate::memory::{self, HostResult, status};
use crate::state::{HostState, LocalReplyData, StreamState};

fn stream(state: &mut HostState) -> Result<&mut StreamState, Status> {
    state.current_stream().ok_or(Status::NotFound)
}

fn send_local_response(
    caller: &mut Caller<'_, HostState>,
    status_code: u32,
    details: (u32, u32),
    body: (u32, u32),
    headers: (u32, u32),
) -> HostResult {
    let details = memory::read_string(caller, details.0, details.1)?;
    let body = memory::read(caller, body.0, body.1)?;
    let headers =
        decode_pairs(&memory::read(caller, headers.0, headers.1)?).ok_or(Status::ParseFailure)?;
    let stream = stream(caller.data_mut())?;
    stream.local_reply = Some(LocalReplyData {
        status: status_code,
        details,
        headers,
        body,
    });
    Ok(())
}

/// Registers the stream-control hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut caller: Caller<'_, HostState>, kind: u32| {
            status((|| {
                let stream = stream(caller.data_mut())?;
                match kind {
                    stream_type::REQUEST => stream.resumed_request = true,
                    stream_type::RESPONSE => stream.resumed_response = true,
                    _ => return Err(Status::BadArgument.into()),
                }
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut caller: Caller<'_, HostState>, _kind: u32| {
            status(
                stream(caller.data_mut())
                    .map(|s| s.closed = true)
                    .map_err(Into::into),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut caller: Caller<'_, HostState>,
         status_code: u32,
         details_ptr: u32,
         details_len: u32,
         body_ptr: u32,
         body_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         _grpc_status: i32| {
            status(send_local_response(
                &mut caller,
                status_code,
                (details_ptr, details_len),
                (body_ptr, body_len),
                (headers_ptr, headers_len),
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut caller: Caller<'_, HostState>, context: u32| {
            let state = caller.data_mut();
            let known = context == state.root_id
                || state
                    .stream
                    .as_ref()
                    .is_some_and(|s| s.context_id == context);
            if !known {
                return status(Err(Status::BadArgument.into()));
            }
            state.effective_context = context;
            status(Ok(()))
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_: Caller<'_, HostState>| {
        status(Ok(()))
    })?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: Caller<'_, HostState>,
         _name_ptr: u32,
         _name_len: u32,
         _args_ptr: u32,
         _args_len: u32,
         _ptr_ptr: u32,
         _size_ptr: u32| {
            // No foreign functions are registered, as in an Envoy without extensions.
            status(Err(Status::NotFound.into()))
        },
    )?;
    Ok(())
}
