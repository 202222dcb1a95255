//! `proxy_get_current_time_nanoseconds` and tick periods, on the virtual clock.

use wasmtime::{Caller, Linker};

use crate::memory::{self, status};
use crate::state::HostState;

/// Registers `proxy_get_current_time_nanoseconds` and `proxy_set_tick_period_milliseconds`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut caller: Caller<'_, HostState>, time_ptr: u32| {
            let now = caller.data().shared.clock.wall_ns();
            status(memory::write_u64(&mut caller, time_ptr, now))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut caller: Caller<'_, HostState>, period_ms: u32| {
            let state = caller.data_mut();
            state.tick_period_ms = period_ms;
            state.next_tick_ns = (period_ms > 0).then(|| {
                state
                    .shared
                    .clock
                    .monotonic_ns()
                    .saturating_add(u64::from(period_ms) * 1_000_000)
            });
            status(Ok(()))
        },
    )?;
    Ok(())
}
