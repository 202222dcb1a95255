//! WASI preview 1, by hand: the imports a Rust `wasm32-wasip1` cdylib needs, on the virtual clock.
//!
//! stdout and stderr become log lines; there is no file system; `proc_exit` traps.

use wasmtime::{Caller, Linker};

use crate::log;
use crate::memory::{self, Fault};
use crate::state::{HostState, LogSource};

const MODULE: &str = "wasi_snapshot_preview1";

/// WASI errno values.
mod errno {
    pub const SUCCESS: u32 = 0;
    pub const BADF: u32 = 8;
    pub const FAULT: u32 = 21;
    pub const INVAL: u32 = 28;
    pub const NOSYS: u32 = 52;
    pub const SPIPE: u32 = 70;
}

const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const CLOCK_PROCESS_CPUTIME: u32 = 2;
const CLOCK_THREAD_CPUTIME: u32 = 3;

/// `filetype::character_device`.
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
/// `rights::fd_read | rights::fd_write`.
const RIGHTS_READ_WRITE: u64 = (1 << 1) | (1 << 6);

/// The body of a WASI call: `Ok(errno)`, or a memory fault (`EFAULT`) or a trap.
type WasiResult = Result<u32, Fault>;

fn errno(result: WasiResult) -> wasmtime::Result<u32> {
    match result {
        Ok(code) => Ok(code),
        Err(Fault::Status(_)) => Ok(errno::FAULT),
        Err(Fault::Trap(error)) => Err(error),
    }
}

/// Writes a list of strings the WASI way: pointers at `ptrs`, NUL-terminated bytes at `buf`.
fn write_strings(
    caller: &mut Caller<'_, HostState>,
    strings: &[Vec<u8>],
    mut ptrs: u32,
    mut buf: u32,
) -> WasiResult {
    for string in strings {
        memory::write_u32(caller, ptrs, buf)?;
        memory::write(caller, buf, string)?;
        memory::write(caller, buf.wrapping_add(string.len() as u32), &[0])?;
        ptrs = ptrs.wrapping_add(4);
        buf = buf.wrapping_add(string.len() as u32 + 1);
    }
    Ok(errno::SUCCESS)
}

fn write_sizes(
    caller: &mut Caller<'_, HostState>,
    strings: &[Vec<u8>],
    count_ptr: u32,
    size_ptr: u32,
) -> WasiResult {
    let size: usize = strings.iter().map(|s| s.len() + 1).sum();
    memory::write_u32(caller, count_ptr, strings.len() as u32)?;
    memory::write_u32(caller, size_ptr, size as u32)?;
    Ok(errno::SUCCESS)
}

fn environment(caller: &Caller<'_, HostState>) -> Vec<Vec<u8>> {
    caller
        .data()
        .shared
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect()
}

/// The program name, the only argument a reactor gets.
fn arguments() -> Vec<Vec<u8>> {
    vec![b"autoid-host-tests".to_vec()]
}

fn fd_write(
    caller: &mut Caller<'_, HostState>,
    fd: u32,
    iovs: u32,
    count: u32,
    out: u32,
) -> WasiResult {
    let source = match fd {
        1 => LogSource::Stdout,
        2 => LogSource::Stderr,
        _ => return Ok(errno::BADF),
    };
    let mut bytes = Vec::new();
    for i in 0..count {
        let iov = memory::read(caller, iovs.wrapping_add(i * 8), 8)?;
        let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        bytes.extend(memory::read(caller, ptr, len)?);
    }
    memory::write_u32(caller, out, bytes.len() as u32)?;
    log::capture_output(caller.data_mut(), source, &bytes);
    Ok(errno::SUCCESS)
}

fn clock_time_get(caller: &mut Caller<'_, HostState>, id: u32, out: u32) -> WasiResult {
    let clock = &caller.data().shared.clock;
    let now = match id {
        CLOCK_REALTIME => clock.wall_ns(),
        CLOCK_MONOTONIC | CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => clock.monotonic_ns(),
        _ => return Ok(errno::INVAL),
    };
    memory::write_u64(caller, out, now)?;
    Ok(errno::SUCCESS)
}

fn random_get(caller: &mut Caller<'_, HostState>, ptr: u32, len: u32) -> WasiResult {
    let mut bytes = vec![0; len as usize];
    getrandom::fill(&mut bytes)
        .map_err(|e| Fault::Trap(wasmtime::Error::msg(format!("getrandom failed: {e}"))))?;
    memory::write(caller, ptr, &bytes)?;
    Ok(errno::SUCCESS)
}

fn fd_fdstat_get(caller: &mut Caller<'_, HostState>, fd: u32, out: u32) -> WasiResult {
    if fd > 2 {
        return Ok(errno::BADF);
    }
    let mut stat = [0u8; 24];
    stat[0] = FILETYPE_CHARACTER_DEVICE;
    stat[8..16].copy_from_slice(&RIGHTS_READ_WRITE.to_le_bytes());
    memory::write(caller, out, &stat)?;
    Ok(errno::SUCCESS)
}

/// Registers every WASI function this host provides.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut caller: Caller<'_, HostState>, fd: u32, iovs: u32, count: u32, out: u32| {
            errno(fd_write(&mut caller, fd, iovs, count, out))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |_: Caller<'_, HostState>, _fd: u32, _iovs: u32, _count: u32, _out: u32| errno::BADF,
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |mut caller: Caller<'_, HostState>, ptrs: u32, buf: u32| {
            let env = environment(&caller);
            errno(write_strings(&mut caller, &env, ptrs, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |mut caller: Caller<'_, HostState>, count: u32, size: u32| {
            let env = environment(&caller);
            errno(write_sizes(&mut caller, &env, count, size))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_get",
        |mut caller: Caller<'_, HostState>, ptrs: u32, buf: u32| {
            errno(write_strings(&mut caller, &arguments(), ptrs, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |mut caller: Caller<'_, HostState>, count: u32, size: u32| {
            errno(write_sizes(&mut caller, &arguments(), count, size))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, HostState>, id: u32, _precision: u64, out: u32| {
            errno(clock_time_get(&mut caller, id, out))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut caller: Caller<'_, HostState>, id: u32, out: u32| {
            if id > CLOCK_THREAD_CPUTIME {
                return Ok(errno::INVAL);
            }
            errno(memory::write_u64(&mut caller, out, 1).map(|()| errno::SUCCESS))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut caller: Caller<'_, HostState>, ptr: u32, len: u32| {
            errno(random_get(&mut caller, ptr, len))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, HostState>, code: u32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the guest called proc_exit({code})"
            )))
        },
    )?;
    linker.func_wrap(MODULE, "sched_yield", |_: Caller<'_, HostState>| {
        errno::SUCCESS
    })?;
    linker.func_wrap(MODULE, "fd_close", |_: Caller<'_, HostState>, fd: u32| {
        if fd <= 2 { errno::SUCCESS } else { errno::BADF }
    })?;
    linker.func_wrap(
        MODULE,
        "fd_seek",
        |_: Caller<'_, HostState>, fd: u32, _offset: i64, _whence: u32, _out: u32| {
            if fd <= 2 { errno::SPIPE } else { errno::BADF }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut caller: Caller<'_, HostState>, fd: u32, out: u32| {
            errno(fd_fdstat_get(&mut caller, fd, out))
        },
    )?;
    // No preopened directories: EBADF ends wasi-libc's preopen scan.
    linker.func_wrap(
        MODULE,
        "fd_prestat_get",
        |_: Caller<'_, HostState>, _fd: u32, _out: u32| errno::BADF,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_dir_name",
        |_: Caller<'_, HostState>, _fd: u32, _path: u32, _len: u32| errno::BADF,
    )?;
    linker.func_wrap(
        MODULE,
        "poll_oneoff",
        |_: Caller<'_, HostState>, _in: u32, _out: u32, _count: u32, _events: u32| errno::NOSYS,
    )?;
    Ok(())
}
