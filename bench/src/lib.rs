//! `make bench`: autoid against Envoy baselines, measured side by side.
//!
//! The `autoid-bench` binary runs the same HTTP load against Envoy (`--concurrency 1`, every arm
//! routed to one `direct_response`) with, in turn, no filter, the floor proxy-wasm filter, native
//! `jwt_authn` (RS256), and autoid warm, cold and with every group decision a directory miss.
//! It writes `target/bench/summary.json`; docs/PERFORMANCE.md explains the method and results.
//!
//! - [`loadgen`]: the load generator (keep-alive HTTP/1.1, saturation or paced, unique requests).
//! - [`gateway`]: every gateway rendered by `autoid gateway render`, the upstream substituted.
//! - [`envoy`]: the Envoy process and the non-autoid arms' filters.
//! - [`proofs`]: proofs and JWTs made before each run.
//! - [`directory`]: slapd and the autoid agent for the directory arm.
//! - [`nginx`]: arm (n), nginx with `auth_request` to a checking agent.
//! - [`flood`]: second clients beside the paced warm arm, from other source addresses (phases 3, 4).
//! - [`junk`]: phase 3's junk new sessions (no entropy file), in a documented mix.
//! - [`run`]: the arms, the repetitions and the summary.
//! - [`soak`]: the replay table under sustained saturation (`make soak`).
//! - [`chart`]: SVG charts of the results (line charts over time, bar charts of the arms).
//! - [`steps`]: the filter's crypto steps, shared with the wasm microbenchmark module.
//! - [`wasm_micro`]: times those steps inside wasm (wasmtime, Cranelift).
//! - [`procstat`]: CPU time from `/proc`.
//! - [`wrk`]: arms (b) and (c) again with Debian's `wrk`, an independent load generator.
//!
//! Build: `cargo build --release --workspace`; see `autoid-bench --help`.

#![forbid(unsafe_code)]

pub mod chart;
pub mod directory;
pub mod envoy;
pub mod flood;
pub mod gateway;
pub mod junk;
pub mod loadgen;
pub mod nginx;
pub mod procstat;
pub mod proofs;
pub mod run;
pub mod soak;
mod stats;
pub mod steps;
pub mod wasm_micro;
pub mod wrk;
