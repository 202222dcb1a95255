//! The one file that calls proxy-wasm hostcalls: [`Envoy`] is the filter's [`Host`] and
//! [`HttpHost`] in a proxy, and [`SharedData`] its [`Store`]. `proxy_wasm::types::Status` stops
//! here: a refused call is an `Err`, a `None` or an empty answer, never a panic.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

use crate::host::{Host, HostError, HttpHost, Level};
use crate::store::{SetError, Store, StoreError};

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
        hostcalls::get_map(MapType::HttpCallResponseHeaders)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u32>().ok())
    }

    fn callout_body(&self, len: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, len)
            .ok()
            .flatten()
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
    fn request_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value).map_err(|_| HostError)
    }

    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, len)
            .ok()
            .flatten()
    }

    fn resume_request(&self) {
        let _ = hostcalls::resume_http_request();
    }

    fn send_reply(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        let _ = hostcalls::send_http_response(status, headers, Some(body));
    }

    fn route_name(&self) -> Option<String> {
        let bytes = hostcalls::get_property(vec!["xds", "route_name"]).ok()??;
        String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
    }

    fn source_address(&self) -> Option<String> {
        let bytes = hostcalls::get_property(vec!["source", "address"]).ok()??;
        String::from_utf8(bytes).ok()
    }

    fn downstream_tls(&self) -> bool {
        // Envoy gives `connection.tls_version` only for a TLS connection.
        matches!(
            hostcalls::get_property(vec!["connection", "tls_version"]),
            Ok(Some(v)) if !v.is_empty()
        )
    }
}
