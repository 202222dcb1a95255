//! Host state: what one worker's `Store` holds, and what all workers share behind `Arc`.
//!
//! The types live here and below; the hostcall modules read and write them, never the other way.

mod callouts;
mod clock;
mod guest;
mod log;
mod metrics;
mod shared_data;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::abi::LogLevel;
use crate::sync::lock;

pub(crate) use callouts::PendingCallout;
pub use callouts::{CalloutHandler, CalloutRecord, CalloutResult, CalloutRoute, Cluster};
pub use clock::VirtualClock;
pub(crate) use guest::GuestMemory;
pub use log::{LogLine, LogSource};
pub use metrics::{MetricKind, Metrics};
pub use shared_data::SharedData;
pub(crate) use shared_data::SharedQueues;

/// A header map: names (ASCII lower-cased) and values as raw bytes, in order: as Envoy, the host
/// passes whatever bytes a client or a server sent.
pub(crate) type HeaderMap = Vec<(Vec<u8>, Vec<u8>)>;

/// A property path (`["xds", "route_name"]`) and its serialized value.
pub(crate) type Properties = HashMap<Vec<String>, Vec<u8>>;

/// State every worker shares: Envoy's shared data, clock, metrics, clusters and logs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub clock: VirtualClock,
    pub shared_data: SharedData,
    pub queues: SharedQueues,
    pub metrics: Metrics,
    pub logs: Mutex<Vec<LogLine>>,
    pub callouts: Mutex<Vec<CalloutRecord>>,
    pub clusters: Mutex<HashMap<String, Cluster>>,
    pub properties: Mutex<Properties>,
    pub log_level: LogLevel,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub environment: Vec<(String, String)>,
    /// The plugin config's `allow_on_headers_stop_iteration` (Envoy's default: false).
    pub allow_on_headers_stop_iteration: bool,
    /// Request bytes a filter may have Envoy buffer (`per_connection_buffer_limit_bytes`).
    pub buffer_limit: usize,
}

impl Shared {
    pub fn log(&self, line: LogLine) {
        lock(&self.logs).push(line);
    }
}

/// One HTTP stream in flight on a worker.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub context_id: u32,
    pub request_headers: HeaderMap,
    pub request_body: Vec<u8>,
    pub request_trailers: HeaderMap,
    /// `None` until the upstream answered.
    pub response_headers: Option<HeaderMap>,
    pub response_body: Vec<u8>,
    pub response_trailers: HeaderMap,
    /// Per-request properties (the route name), looked up before the gateway's.
    pub properties: Properties,
    pub local_reply: Option<LocalReplyData>,
    /// `proxy_continue_stream(Request)` was called since the last callback started.
    pub resumed_request: bool,
    pub resumed_response: bool,
    /// `proxy_close_stream` was called.
    pub closed: bool,
}

/// What `proxy_send_local_response` captured.
#[derive(Debug, Clone)]
pub(crate) struct LocalReplyData {
    pub status: u32,
    pub details: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The callout response being delivered through `proxy_on_http_call_response`.
#[derive(Debug, Default)]
pub(crate) struct CalloutResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// What one worker's `Store` holds.
#[derive(Debug)]
pub struct HostState {
    pub(crate) worker: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) guest: Option<GuestMemory>,
    pub(crate) root_id: u32,
    pub(crate) effective_context: u32,
    /// The tick period the root context asked for, in milliseconds (0: no ticks).
    pub(crate) tick_period_ms: u32,
    /// When the next tick is due, on the monotonic clock (nanoseconds).
    pub(crate) next_tick_ns: Option<u64>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) stream: Option<StreamState>,
    pub(crate) callout_response: Option<CalloutResponse>,
    pub(crate) pending_callouts: VecDeque<PendingCallout>,
    pub(crate) next_token: u32,
    /// Properties the guest set outside a stream.
    pub(crate) properties: Properties,
}

impl HostState {
    /// The stream the effective context names: none while the root context is effective (in
    /// Envoy the root context has no request), until the guest enters the stream's context
    /// with `proxy_set_effective_context`.
    pub(crate) fn current_stream(&mut self) -> Option<&mut StreamState> {
        let context = self.effective_context;
        self.stream.as_mut().filter(|s| s.context_id == context)
    }

    pub(crate) fn new(worker: usize, shared: Arc<Shared>, root_id: u32) -> Self {
        Self {
            worker,
            shared,
            guest: None,
            root_id,
            effective_context: root_id,
            tick_period_ms: 0,
            next_tick_ns: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stream: None,
            callout_response: None,
            pending_callouts: VecDeque::new(),
            next_token: 1,
            properties: Properties::new(),
        }
    }
}
