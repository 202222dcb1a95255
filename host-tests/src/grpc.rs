//! gRPC hostcalls: present so modules that import them link, all `Unimplemented`.

use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::state::HostState;

const UNIMPLEMENTED: u32 = Status::Unimplemented as u32;

/// Registers `proxy_grpc_*` and `proxy_get_status` as `Unimplemented`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |_: Caller<'_, HostState>,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32| UNIMPLEMENTED,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_: Caller<'_, HostState>,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32| UNIMPLEMENTED,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |_: Caller<'_, HostState>, _: u32, _: u32, _: u32, _: u32| UNIMPLEMENTED,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |_: Caller<'_, HostState>, _: u32| UNIMPLEMENTED,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_close",
        |_: Caller<'_, HostState>, _: u32| UNIMPLEMENTED,
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |_: Caller<'_, HostState>, _: u32, _: u32, _: u32| UNIMPLEMENTED,
    )?;
    Ok(())
}
