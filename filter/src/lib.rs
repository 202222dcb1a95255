//! autoid's decisions, for any host: the filter's logic without proxy-wasm.
//!
//! Per request: pick the API by the route name, strip client copies of every header the filter
//! sets, verify the entropy proof (`autoid-protocol`), reject replays across workers, authorize the
//! subject's groups (static map, or the autoid agent through an HTTP callout with a shared-data
//! decision cache), then inject the API's credentials and identity headers and remove the proof
//! before the request goes upstream. Anything else is a uniform 401/403/503.
//!
//! Everything is plain Rust over one seam, [`host`] (`Host` + `HttpHost`): no proxy-wasm type
//! appears here. A request's way is in `flow`, what a worker's requests share in `state`, its
//! configuration, tick and callouts in `worker`, the caches, rate limit and replies beside them —
//! unit-tested natively with a recording host.
//!
//! Hosts: the proxy-wasm filter (`autoid-plugin`, whose `wasm_host` implements the seam over
//! hostcalls), the agent's `/v1/check` (Envoy `ext_authz`, nginx `auth_request`) and the test
//! host. Builds natively and for `wasm32-wasip1`; configuration: `docs/CONFIG.md`.

pub mod binds;
mod callout;
pub mod credential_cache;
pub mod decisions;
pub mod entropy_cache;
pub mod fleet_batch;
mod flow;
pub mod headers;
pub mod holds;
pub mod host;
pub mod metrics;
pub mod ratelimit;
pub mod replay;
pub mod reply;
pub mod session_cache;
mod state;
pub mod store;
mod worker;

pub use flow::{Flow, Shared};
pub use state::State;
pub use worker::{TICK, Worker};
