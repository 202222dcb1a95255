//! A proxy-wasm ABI 0.2.1 host on wasmtime, to test and benchmark autoid's filter without Envoy.
//!
//! It loads a built filter (`.wasm`, from `make build`), starts several worker VMs over one
//! shared-data store, virtual clock and metrics store, and runs requests through them the way
//! Envoy does: context creation, request headers and body, callouts answered by the test
//! (scripted, a real local HTTP server, or a timeout), response headers, log, done, delete.
//! Host state lives in each worker's wasmtime `Store`, never in globals, so tests run in parallel.
//!
//! ```no_run
//! use autoid_host_tests::{CalloutReply, Gateway, Outcome};
//! # fn main() -> Result<(), autoid_host_tests::HostError> {
//! let gw = Gateway::builder("target/wasm32-wasip1/wasm/autoid_floor_filter.wasm")
//!     .workers(2)
//!     .cluster_handler("autoid-directory", |_| CalloutReply::new(200).body("{}"))
//!     .build()?;
//! let out = gw.request("GET", "api.local", "/x").header("x-floor-in", "a").worker(1).send();
//! assert_eq!(out.header("x-floor-out"), Some("a"));
//! # Ok(()) }
//! ```
//!
//! WASI preview 1 is implemented by hand ([`wasi`](crate)'s module), on the virtual clock; there
//! is no file system. Build and test: `make build && cargo test --release -p autoid-host-tests`.
#![forbid(unsafe_code)]

mod abi;
mod buffers;
mod callout;
mod clock;
mod error;
mod exports;
mod gateway;
mod grpc;
mod headers;
mod http_call;
mod http_client;
mod linker;
mod log;
mod memory;
mod metrics;
mod outcome;
mod properties;
mod shared_data;
mod state;
mod stream;
mod sync;
mod virtual_time;
mod wasi;
mod worker;

pub use abi::{LogLevel, Status};
pub use callout::{CalloutReply, CalloutRequest};
pub use error::HostError;
pub use gateway::{
    ENVOY_DEFAULT_BUFFER_LIMIT, FilterModule, Gateway, GatewayBuilder, RequestBuilder,
};
pub use outcome::Outcome;
pub use state::{
    CalloutHandler, CalloutRecord, CalloutResult, CalloutRoute, Cluster, HostState, LogLine,
    LogSource, MetricKind, Metrics, SharedData, VirtualClock,
};
pub use virtual_time::Clock;
