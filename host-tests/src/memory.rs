//! The one place that touches guest memory: bounds-checked reads and writes, and guest allocation.
//!
//! Hostcalls return [`Fault`]: a bad guest pointer becomes a status the guest sees
//! (`InvalidMemoryAccess`, as Envoy does); a broken harness or a trap inside the guest's allocator
//! becomes a trap.

use wasmtime::Caller;

use crate::abi::Status;
use crate::state::{GuestMemory, HostState};

/// Why a hostcall did not succeed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Returned to the guest as a status code.
    Status(Status),
    /// Ends the guest call with a trap.
    Trap(wasmtime::Error),
}

impl From<Status> for Fault {
    fn from(status: Status) -> Self {
        Fault::Status(status)
    }
}

impl From<wasmtime::Error> for Fault {
    fn from(error: wasmtime::Error) -> Self {
        Fault::Trap(error)
    }
}

/// The result of a hostcall body.
pub(crate) type HostResult = Result<(), Fault>;

/// Turns a hostcall body's result into the status the guest sees, or a trap.
pub(crate) fn status(result: HostResult) -> wasmtime::Result<u32> {
    match result {
        Ok(()) => Ok(Status::Ok.code()),
        Err(Fault::Status(status)) => Ok(status.code()),
        Err(Fault::Trap(error)) => Err(error),
    }
}

fn guest(caller: &Caller<'_, HostState>) -> Result<GuestMemory, Fault> {
    caller.data().guest.clone().ok_or_else(|| {
        Fault::Trap(wasmtime::Error::msg(
            "harness bug: hostcall before the guest memory was registered",
        ))
    })
}

fn range(ptr: u32, len: u32, size: usize) -> Result<std::ops::Range<usize>, Fault> {
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Fault::Status(Status::InvalidMemoryAccess))?;
    if end > size {
        return Err(Fault::Status(Status::InvalidMemoryAccess));
    }
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(caller: &Caller<'_, HostState>, ptr: u32, len: u32) -> Result<Vec<u8>, Fault> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let memory = guest(caller)?.memory;
    let data = memory.data(caller);
    Ok(data[range(ptr, len, data.len())?].to_vec())
}

/// Reads a UTF-8 string (lossily: invalid bytes become U+FFFD).
pub(crate) fn read_string(
    caller: &Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> Result<String, Fault> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(caller: &mut Caller<'_, HostState>, ptr: u32, bytes: &[u8]) -> HostResult {
    if bytes.is_empty() {
        return Ok(());
    }
    let memory = guest(caller)?.memory;
    let data = memory.data_mut(caller);
    let range = range(ptr, bytes.len() as u32, data.len())?;
    data[range].copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(caller: &mut Caller<'_, HostState>, ptr: u32, value: u32) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `ptr`.
pub(crate) fn write_u64(caller: &mut Caller<'_, HostState>, ptr: u32, value: u64) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into a fresh guest allocation and writes its address and size at `ptr_ptr` and
/// `size_ptr`. Empty data is returned as a null pointer and size 0, as Envoy does.
pub(crate) fn give(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> HostResult {
    let address = if bytes.is_empty() {
        0
    } else {
        let size = u32::try_from(bytes.len()).map_err(|_| Status::InternalFailure)?;
        let allocate = guest(caller)?.allocate;
        let address = allocate.call(&mut *caller, size)?;
        if address == 0 {
            return Err(Status::InternalFailure.into());
        }
        write(caller, address, bytes)?;
        address
    };
    write_u32(caller, ptr_ptr, address)?;
    write_u32(caller, size_ptr, bytes.len() as u32)
}
