//! The one file that calls proxy-wasm hostcalls directly: shared data, time, properties, logs,
//! metrics and randomness. `proxy_wasm::types::Status` stops here.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType, Status};

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

/// Milliseconds since the Unix epoch by the host's clock (0 if the host fails).
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Envoy route name of the current request (`xds.route_name`).
pub fn route_name() -> Option<String> {
    let bytes = hostcalls::get_property(vec!["xds", "route_name"]).ok()??;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// The downstream peer's address (`source.address`: `ip:port`), if the host gives one.
pub fn source_address() -> Option<String> {
    let bytes = hostcalls::get_property(vec!["source", "address"]).ok()??;
    String::from_utf8(bytes).ok()
}

/// Logs at info level.
pub fn info(message: &str) {
    let _ = hostcalls::log(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    let _ = hostcalls::log(LogLevel::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    let _ = hostcalls::log(LogLevel::Error, message);
}

/// Fills `buf` from the host's CSPRNG (WASI `random_get`); `false` if it failed.
pub fn random(buf: &mut [u8]) -> bool {
    getrandom::fill(buf).is_ok()
}

/// Counters defined once per worker.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    /// Defines every counter named.
    pub fn define<'a>(names: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut ids = HashMap::new();
        for name in names {
            if let Ok(id) = hostcalls::define_metric(MetricType::Counter, name) {
                ids.insert(name.to_owned(), id);
            }
        }
        Metrics { ids }
    }

    /// Adds one to a counter (unknown names are ignored).
    pub fn inc(&self, name: &str) {
        self.add(name, 1);
    }

    /// Adds `n` to a counter (unknown names are ignored).
    pub fn add(&self, name: &str, n: u64) {
        if let Some(id) = self.ids.get(name) {
            let _ = hostcalls::increment_metric(*id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
