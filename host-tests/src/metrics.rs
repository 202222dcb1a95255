//! Metrics: `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`, `proxy_get_metric`.

use wasmtime::{Caller, Linker};

use crate::abi::{Status, metric_type};
use crate::memory::{self, HostResult, status};
use crate::state::{HostState, MetricKind};

fn define(
    caller: &mut Caller<'_, HostState>,
    kind: u32,
    name: (u32, u32),
    id_ptr: u32,
) -> HostResult {
    let kind = match kind {
        metric_type::COUNTER => MetricKind::Counter,
        metric_type::GAUGE => MetricKind::Gauge,
        metric_type::HISTOGRAM => MetricKind::Histogram,
        _ => return Err(Status::BadArgument.into()),
    };
    let name = memory::read_string(caller, name.0, name.1)?;
    let id = caller.data().shared.metrics.define(kind, &name)?;
    memory::write_u32(caller, id_ptr, id)
}

/// Registers the metric hostcalls.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut caller: Caller<'_, HostState>,
         kind: u32,
         name_ptr: u32,
         name_len: u32,
         id_ptr: u32| { status(define(&mut caller, kind, (name_ptr, name_len), id_ptr)) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |caller: Caller<'_, HostState>, id: u32, offset: i64| {
            status(
                caller
                    .data()
                    .shared
                    .metrics
                    .increment(id, offset)
                    .map_err(Into::into),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |caller: Caller<'_, HostState>, id: u32, value: u64| {
            status(
                caller
                    .data()
                    .shared
                    .metrics
                    .record(id, value)
                    .map_err(Into::into),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut caller: Caller<'_, HostState>, id: u32, value_ptr: u32| {
            status((|| {
                let value = caller.data().shared.metrics.get(id)?;
                memory::write_u64(&mut caller, value_ptr, value)
            })())
        },
    )?;
    Ok(())
}
