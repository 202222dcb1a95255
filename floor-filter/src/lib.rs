//! The floor: the smallest useful proxy-wasm filter, the cost every proxy-wasm filter pays.
//!
//! On request headers it reads `x-floor-in` and sets `x-floor-out` to its value (or `none`), then
//! continues. Benchmarks compare the autoid plugin against it, and `host-tests` uses it as the
//! first module its harness runs.
//!
//! Build: `cargo build --profile wasm --target wasm32-wasip1 -p autoid-floor-filter`, giving
//! `target/wasm32-wasip1/wasm/autoid_floor_filter.wasm`.
// `deny`, not `forbid`: `proxy_wasm::main!` expands an `unsafe` block that it allows locally.
#![deny(unsafe_code)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

/// The request header the floor reads.
const HEADER_IN: &str = "x-floor-in";
/// The request header the floor sets.
const HEADER_OUT: &str = "x-floor-out";
/// The value of [`HEADER_OUT`] when the request has no [`HEADER_IN`].
const ABSENT: &str = "none";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot) });
}}

/// The root context: only hands out one [`Floor`] per HTTP stream.
#[derive(Debug)]
struct FloorRoot;

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }
}

/// One HTTP stream.
#[derive(Debug)]
struct Floor;

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let value = self.get_http_request_header(HEADER_IN);
        self.set_http_request_header(HEADER_OUT, Some(value.as_deref().unwrap_or(ABSENT)));
        Action::Continue
    }
}
