//! The proxy-wasm ABI 0.2.1 constants the host speaks: status codes, map and buffer types.

/// A proxy-wasm status code, as returned to the guest by every `proxy_*` hostcall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The key, map, property or queue does not exist.
    NotFound = 1,
    /// An argument is invalid (unknown enum value, unknown cluster, missing pseudo-header).
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A serialized argument (a header map, a property path) could not be parsed.
    ParseFailure = 4,
    /// A guest pointer or length is outside the guest's memory.
    InvalidMemoryAccess = 6,
    /// The queue is empty.
    Empty = 7,
    /// A shared-data compare-and-swap lost.
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// The host does not implement the call.
    Unimplemented = 12,
}

impl Status {
    /// The code as it crosses the ABI.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// The `proxy_log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    /// `trace`.
    Trace = 0,
    /// `debug`.
    Debug = 1,
    /// `info`.
    Info = 2,
    /// `warn`.
    Warn = 3,
    /// `error`.
    Error = 4,
    /// `critical`.
    Critical = 5,
}

impl LogLevel {
    /// The level with this ABI code, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

/// `MapType`: which header map a hostcall addresses.
pub(crate) mod map_type {
    pub const REQUEST_HEADERS: u32 = 0;
    pub const REQUEST_TRAILERS: u32 = 1;
    pub const RESPONSE_HEADERS: u32 = 2;
    pub const RESPONSE_TRAILERS: u32 = 3;
    pub const CALLOUT_RESPONSE_HEADERS: u32 = 6;
    pub const CALLOUT_RESPONSE_TRAILERS: u32 = 7;
}

/// `BufferType`: which buffer a hostcall addresses.
pub(crate) mod buffer_type {
    pub const REQUEST_BODY: u32 = 0;
    pub const RESPONSE_BODY: u32 = 1;
    pub const CALLOUT_RESPONSE_BODY: u32 = 4;
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
}

/// `StreamType` for `proxy_continue_stream` and `proxy_close_stream`.
pub(crate) mod stream_type {
    pub const REQUEST: u32 = 0;
    pub const RESPONSE: u32 = 1;
}

/// `Action` returned by the stream callbacks.
pub(crate) mod action {
    pub const CONTINUE: u32 = 0;
}

/// `MetricType` for `proxy_define_metric`.
pub(crate) mod metric_type {
    pub const COUNTER: u32 = 0;
    pub const GAUGE: u32 = 1;
    pub const HISTOGRAM: u32 = 2;
}
