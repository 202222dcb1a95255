//! The host's hostcalls linked for a guest, and the check that it imports nothing else.

use std::sync::Arc;

use wasmtime::{Engine, Linker, Module, Store};

use crate::error::HostError;
use crate::state::{HostState, Shared};
use crate::worker::ROOT_ID;
use crate::{
    buffers, clock, grpc, headers, http_call, log, metrics, properties, shared_data, stream, wasi,
};

/// Every hostcall of this host, ABI area by ABI area.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasi::add_to_linker(&mut linker)?;
    log::add_to_linker(&mut linker)?;
    clock::add_to_linker(&mut linker)?;
    buffers::add_to_linker(&mut linker)?;
    headers::add_to_linker(&mut linker)?;
    properties::add_to_linker(&mut linker)?;
    shared_data::add_to_linker(&mut linker)?;
    http_call::add_to_linker(&mut linker)?;
    metrics::add_to_linker(&mut linker)?;
    stream::add_to_linker(&mut linker)?;
    grpc::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Names every import the host does not provide, instead of failing on the first.
pub(crate) fn check_imports(
    engine: &Engine,
    module: &Module,
    linker: &Linker<HostState>,
    shared: &Arc<Shared>,
) -> Result<(), HostError> {
    let mut store = Store::new(engine, HostState::new(0, Arc::clone(shared), ROOT_ID));
    let names: Vec<String> = module
        .imports()
        .filter(|import| linker.get_by_import(&mut store, import).is_none())
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if names.is_empty() {
        Ok(())
    } else {
        Err(HostError::MissingImports { names })
    }
}
