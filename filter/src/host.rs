//! The one seam between the filter's decisions and the proxy: what the filter asks of its host.
//!
//! [`Host`] is what a worker asks (clock, logs, randomness, shared data, counters, callouts and
//! their replies); [`HttpHost`] adds what one request asks (its headers and body, a local reply,
//! its route and peer). `autoid-plugin`'s `wasm_host` implements both over proxy-wasm hostcalls,
//! the agent's `check` over its own runtime, the native tests with a recording fake. The logic is
//! generic over them (monomorphized: no dynamic dispatch on the request path).

#[cfg(test)]
pub mod fake;

use std::time::Duration;

use crate::headers::Header;
use crate::store::Store;

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What happened to a request (denials, configuration).
    Info,
    /// A dependency misbehaved; the filter failed closed or served a stale answer.
    Warn,
    /// The filter cannot work (bad configuration, no shared data).
    Error,
}

/// The host refused a call (its status stays in the host: `autoid-plugin`'s `wasm_host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError;

/// What the filter asks of its host from any context: the worker's view.
pub trait Host {
    /// Milliseconds since the Unix epoch by the host's clock (0 if the host fails).
    fn now_ms(&self) -> u64;
    /// Writes a log line.
    fn log(&self, level: Level, message: &str);
    /// Fills `buf` from the host's CSPRNG; `false` if it failed.
    fn random(&self, buf: &mut [u8]) -> bool;
    /// The shared data every worker of the VM sees.
    fn store(&self) -> &dyn Store;
    /// Defines a counter: its id, `None` if the host refused it.
    fn define_counter(&self, name: &str) -> Option<u32>;
    /// Adds `n` to the counter `id`.
    fn add_to_counter(&self, id: u32, n: u64);
    /// Sends an HTTP callout to `cluster`: the token its reply will carry.
    fn dispatch(
        &self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// The `:status` of the callout reply being delivered, if it has a numeric one.
    fn callout_status(&self) -> Option<u32>;
    /// The first `len` bytes of the callout reply being delivered.
    fn callout_body(&self, len: usize) -> Option<Vec<u8>>;
    /// Registers a shared queue owned by this worker's root context: its id. The host tells the
    /// root when something is enqueued (`on_queue_ready`), from the worker's event loop.
    fn register_queue(&self, name: &str) -> Option<u32>;
    /// Enqueues `value` on the queue `queue`.
    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError>;
    /// Takes the oldest value of the queue `queue`, `None` when it is empty (or gone).
    fn dequeue(&self, queue: u32) -> Option<Vec<u8>>;
    /// Makes `context` the one the following calls act on (a request's, from the root context):
    /// an error when the host no longer knows it (the request ended).
    fn enter(&self, context: u32) -> Result<(), HostError>;
}

/// What the filter asks of its host for the request in progress.
pub trait HttpHost: Host {
    /// The request headers (pseudo-headers included), in order, as bytes: a client may send any
    /// byte, and the filter decides on bytes (`headers`).
    fn request_headers(&self) -> Vec<Header>;
    /// Sets a request header, or removes it (`None`).
    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// The first `len` bytes of the buffered request body.
    fn request_body(&self, len: usize) -> Option<Vec<u8>>;
    /// Resumes the request paused by an earlier callback (after a callout answered, from the
    /// root context: [`Host::enter`] first).
    fn resume_request(&self);
    /// Answers the request locally; it never goes upstream.
    fn send_reply(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]);
    /// The route name (`xds.route_name`), if the host gives a non-empty one.
    fn route_name(&self) -> Option<String>;
    /// The downstream peer's address (`ip:port`), if the host gives one.
    fn source_address(&self) -> Option<String>;
    /// Whether the downstream connection is TLS (a TLS version is known for it).
    fn downstream_tls(&self) -> bool;
}

/// What the proxy does with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it go on (upstream, or to the next filter).
    Continue,
    /// Hold it: denied with a local reply, or waiting for a callout or the body.
    Pause,
}
