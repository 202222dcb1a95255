//! Logging: `proxy_log`, `proxy_get_log_level`, and the guest's stdout/stderr turned into lines.

use wasmtime::{Caller, Linker};

use crate::abi::{LogLevel, Status};
use crate::memory::{self, status};
use crate::state::{HostState, LogLine, LogSource};

/// Registers `proxy_log` and `proxy_get_log_level`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut caller: Caller<'_, HostState>, level: u32, ptr: u32, len: u32| {
            status((|| {
                let level = LogLevel::from_code(level).ok_or(Status::BadArgument)?;
                let message = memory::read_string(&caller, ptr, len)?;
                let state = caller.data_mut();
                if level >= state.shared.log_level {
                    let worker = state.worker;
                    state.shared.log(LogLine {
                        level,
                        worker,
                        message,
                        source: LogSource::Proxy,
                    });
                }
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut caller: Caller<'_, HostState>, level_ptr: u32| {
            let level = caller.data().shared.log_level as u32;
            status(memory::write_u32(&mut caller, level_ptr, level))
        },
    )?;
    Ok(())
}

/// Appends guest output to a worker's stdout or stderr buffer, logging each complete line.
pub(crate) fn capture_output(state: &mut HostState, source: LogSource, bytes: &[u8]) {
    let worker = state.worker;
    let (buffer, level) = match source {
        LogSource::Stderr => (&mut state.stderr, LogLevel::Error),
        _ => (&mut state.stdout, LogLevel::Info),
    };
    buffer.extend_from_slice(bytes);
    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        let message = String::from_utf8_lossy(&line[..end]).into_owned();
        state.shared.log(LogLine {
            level,
            worker,
            message,
            source,
        });
    }
}

/// Logs whatever the guest wrote without a final newline (called when a VM call ends).
pub(crate) fn flush_output(state: &mut HostState) {
    for source in [LogSource::Stdout, LogSource::Stderr] {
        let buffer = match source {
            LogSource::Stderr => &mut state.stderr,
            _ => &mut state.stdout,
        };
        if !buffer.is_empty() {
            capture_output(state, source, b"\n");
        }
    }
}
