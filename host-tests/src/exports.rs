//! The guest's exported proxy-wasm callbacks, looked up once per worker with their signatures
//! checked, and the guest memory the host writes into.

use wasmtime::{Store, TypedFunc, WasmParams, WasmResults};

use crate::error::HostError;
use crate::state::{GuestMemory, HostState};

/// The stream callbacks: `proxy_on_{request,response}_{headers,body}(context, size, end_of_stream)`.
pub(crate) type StreamCallback = TypedFunc<(u32, u32, u32), u32>;
/// `proxy_on_request_trailers(context, trailers)`.
pub(crate) type TrailersCallback = TypedFunc<(u32, u32), u32>;
/// `proxy_on_queue_ready(root context, queue)`.
pub(crate) type QueueCallback = TypedFunc<(u32, u32), ()>;
/// `proxy_on_http_call_response(context, token, headers, body_size, trailers)`.
pub(crate) type CalloutCallback = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// The guest's exported callbacks.
pub(crate) struct Exports {
    pub(crate) initialize: Option<TypedFunc<(), ()>>,
    pub(crate) abi_version: TypedFunc<(), ()>,
    pub(crate) on_context_create: TypedFunc<(u32, u32), ()>,
    pub(crate) on_vm_start: Option<TypedFunc<(u32, u32), u32>>,
    pub(crate) on_configure: Option<TypedFunc<(u32, u32), u32>>,
    pub(crate) on_request_headers: Option<StreamCallback>,
    pub(crate) on_request_body: Option<StreamCallback>,
    pub(crate) on_request_trailers: Option<TrailersCallback>,
    pub(crate) on_response_headers: Option<StreamCallback>,
    pub(crate) on_response_body: Option<StreamCallback>,
    pub(crate) on_log: Option<TypedFunc<u32, ()>>,
    pub(crate) on_done: Option<TypedFunc<u32, u32>>,
    pub(crate) on_delete: Option<TypedFunc<u32, ()>>,
    pub(crate) on_tick: Option<TypedFunc<u32, ()>>,
    pub(crate) on_http_call_response: Option<CalloutCallback>,
    pub(crate) on_queue_ready: Option<QueueCallback>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports").finish_non_exhaustive()
    }
}

/// The guest's memory and its allocator (`proxy_on_memory_allocate`, else `malloc`).
pub(crate) fn guest_memory(
    store: &mut Store<HostState>,
    instance: &wasmtime::Instance,
) -> Result<GuestMemory, HostError> {
    let memory =
        instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| HostError::MissingExport {
                name: "memory".into(),
            })?;
    let allocate = match optional(store, instance, "proxy_on_memory_allocate")? {
        Some(f) => f,
        None => required(store, instance, "malloc")?,
    };
    Ok(GuestMemory { memory, allocate })
}

impl Exports {
    /// Every callback the harness drives; the required ones must be there.
    pub(crate) fn find(
        store: &mut Store<HostState>,
        instance: &wasmtime::Instance,
    ) -> Result<Exports, HostError> {
        Ok(Exports {
            initialize: optional(store, instance, "_initialize")?,
            abi_version: required(store, instance, "proxy_abi_version_0_2_1")?,
            on_context_create: required(store, instance, "proxy_on_context_create")?,
            on_vm_start: optional(store, instance, "proxy_on_vm_start")?,
            on_configure: optional(store, instance, "proxy_on_configure")?,
            on_request_headers: optional(store, instance, "proxy_on_request_headers")?,
            on_request_body: optional(store, instance, "proxy_on_request_body")?,
            on_request_trailers: optional(store, instance, "proxy_on_request_trailers")?,
            on_response_headers: optional(store, instance, "proxy_on_response_headers")?,
            on_response_body: optional(store, instance, "proxy_on_response_body")?,
            on_log: optional(store, instance, "proxy_on_log")?,
            on_done: optional(store, instance, "proxy_on_done")?,
            on_delete: optional(store, instance, "proxy_on_delete")?,
            on_tick: optional(store, instance, "proxy_on_tick")?,
            on_http_call_response: optional(store, instance, "proxy_on_http_call_response")?,
            on_queue_ready: optional(store, instance, "proxy_on_queue_ready")?,
        })
    }
}

fn optional<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    instance: &wasmtime::Instance,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, HostError> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(func) => func
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|e| HostError::Wasmtime {
                message: format!("export `{name}` has an unexpected signature: {e}"),
            }),
    }
}

fn required<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    instance: &wasmtime::Instance,
    name: &str,
) -> Result<TypedFunc<P, R>, HostError> {
    optional(store, instance, name)?.ok_or_else(|| HostError::MissingExport {
        name: name.to_owned(),
    })
}
