//! The one file that calls proxy-wasm hostcalls: [`Envoy`] is the filter's [`Host`] and
//! [`HttpHost`] in a proxy, and [`SharedData`] its [`Store`]. `proxy_wasm::types::Status` stops
//! here: a refused call is an `Err`, a `None` or an empty answer, never a panic.
//!
//! What a client or a server sent is read as bytes: header maps through the raw ABI call (the
//! SDK's `get_map` and `get_map_bytes` build `String`s and panic on a byte that is not UTF-8),
//! and bodies and properties through calls that answer every host status without a panic.

use std::ptr::null_mut;
use std::time::{Duration, UNIX_EPOCH};

use autoid_filter::headers::{self, Header};
use autoid_filter::host::{Host, HostError, HttpHost, Level};
use autoid_filter::store::{SetError, Store, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

// The proxy-wasm ABI 0.2.1 calls that hand the module host data, declared as the SDK declares
// them but with plain integers for the map type and the status (a status the SDK's enum does not
// list is then a number, not undefined behaviour).
#[allow(unsafe_code)]
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

/// The ABI's `Ok` status.
const OK: u32 = 0;

/// The bytes a host call returned in module memory: owned from here on. `None` for any status
/// but `Ok` or no data.
#[allow(unsafe_code)]
fn returned(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != OK || data.is_null() {
        return None;
    }
    // SAFETY: on `Ok` the host wrote `size` bytes at `data`, memory it allocated through the
    // module's `proxy_on_memory_allocate` (the SDK's: a boxed slice of exactly `size` bytes) and
    // handed over; it is taken once, as the SDK's own calls take it.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Every pair of the header map `map`, names and values as bytes (`None`: the host refused, or
/// sent a map that does not decode).
#[allow(unsafe_code)]
fn map_pairs(map: MapType) -> Option<Vec<Header>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: both out-pointers point at live locals of the right types.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    match returned(status, data, size) {
        Some(bytes) => headers::decode(&bytes),
        None if status == OK => Some(Vec::new()),
        None => None,
    }
}

/// Up to `len` bytes of the buffer `buffer` from its start.
#[allow(unsafe_code)]
fn buffer(buffer: BufferType, len: usize) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: both out-pointers point at live locals of the right types.
    let status = unsafe { proxy_get_buffer_bytes(buffer as u32, 0, len, &mut data, &mut size) };
    returned(status, data, size)
}

/// The property at `path` (its segments NUL-separated, as the ABI wants them).
#[allow(unsafe_code)]
fn property(path: &[&str]) -> Option<Vec<u8>> {
    let serialized = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the path is a live buffer of that length; both out-pointers point at live locals.
    let status =
        unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) };
    returned(status, data, size)
}

/// Envoy's shared data for this VM id.
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedData;

impl Store for SharedData {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Ok(Some((value, cas.unwrap_or(0)))),
            // The SDK reads an existing key holding an empty value as no bytes; its CAS token
            // says the key exists.
            Ok((None, Some(cas))) => Ok(Some((Vec::new(), cas))),
            Ok((None, None)) => Ok(None),
            Err(_) => Err(StoreError),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Host),
        }
    }
}

/// The proxy the filter runs in, for the context whose callback is running (the SDK sets the
/// current context before each callback, so the host carries no state).
#[derive(Debug, Clone, Copy, Default)]
pub struct Envoy;

impl Host for Envoy {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }

    /// The host's CSPRNG through WASI `random_get`.
    fn random(&self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }

    fn store(&self) -> &dyn Store {
        &SharedData
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Counter, name).ok()
    }

    fn add_to_counter(&self, id: u32, n: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, headers, body, vec![], timeout)
            .map_err(|_| HostError)
    }

    fn callout_status(&self) -> Option<u32> {
        let headers = map_pairs(MapType::HttpCallResponseHeaders)?;
        let status = headers::first(&headers, ":status")?;
        std::str::from_utf8(status).ok()?.parse::<u32>().ok()
    }

    fn callout_body(&self, len: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpCallResponseBody, len)
    }

    fn register_queue(&self, name: &str) -> Option<u32> {
        hostcalls::register_shared_queue(name).ok()
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        hostcalls::enqueue_shared_queue(queue, Some(value)).map_err(|_| HostError)
    }

    fn dequeue(&self, queue: u32) -> Option<Vec<u8>> {
        hostcalls::dequeue_shared_queue(queue).ok().flatten()
    }

    /// Envoy (proxy-wasm-cpp-host `set_effective_context`) answers `BadArgument` for a context
    /// it no longer has, which the SDK returns as an error.
    fn enter(&self, context: u32) -> Result<(), HostError> {
        hostcalls::set_effective_context(context).map_err(|_| HostError)
    }
}

impl HttpHost for Envoy {
    fn request_headers(&self) -> Vec<Header> {
        map_pairs(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value).map_err(|_| HostError)
    }

    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpRequestBody, len)
    }

    fn resume_request(&self) {
        let _ = hostcalls::resume_http_request();
    }

    fn send_reply(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        let _ = hostcalls::send_http_response(status, headers, Some(body));
    }

    fn route_name(&self) -> Option<String> {
        let bytes = property(&["xds", "route_name"])?;
        String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
    }

    fn source_address(&self) -> Option<String> {
        let bytes = property(&["source", "address"])?;
        String::from_utf8(bytes).ok()
    }

    fn downstream_tls(&self) -> bool {
        // Envoy gives `connection.tls_version` only for a TLS connection.
        property(&["connection", "tls_version"]).is_some_and(|v| !v.is_empty())
    }
}
