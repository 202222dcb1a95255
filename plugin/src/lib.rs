//! The autoid proxy-wasm filter (`wasm32-wasip1` cdylib).
//!
//! Per request: pick the API by the `xds.route_name` property, strip client copies of every
//! header the filter sets, verify the entropy proof (`autoid-protocol`), reject replays across
//! workers, authorize the subject's groups (static map, or the autoid agent through an HTTP callout
//! with a shared-data decision cache), then inject the API's credentials and identity headers and
//! remove the proof before the request goes upstream. Anything else is a uniform 401/403/503.
//!
//! Build: `make build` (`cargo build --profile wasm --target wasm32-wasip1 -p autoid-plugin`).
//! Configuration: `docs/CONFIG.md`.
//!
//! Layout: the decisions are plain Rust over one seam, [`host`] — a request's way in `flow`, a
//! worker's configuration and tick in `worker`, the caches, rate limit and replies beside them —
//! unit-tested natively with a recording host. `filter` holds the proxy-wasm contexts, which only
//! forward each callback with `wasm_host::Envoy`, the one type that calls proxy-wasm hostcalls.

#![deny(unsafe_code)]

pub mod binds;
mod callout;
pub mod credentials;
pub mod decisions;
pub mod entropy_cache;
mod filter;
pub mod fleet;
mod flow;
pub mod headers;
pub mod holds;
pub mod host;
pub mod metrics;
pub mod ratelimit;
pub mod replay;
pub mod reply;
pub mod sessions;
pub mod store;
mod wasm_host;
mod worker;

// The plugin is also an rlib: the agent drives the same logic over its native host to answer
// gateways without wasm (`/v1/check`, issue 15).
pub use flow::Flow;
pub use worker::{State, TICK, Worker};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::Root::new(id))
    });
}}
