//! The autoid proxy-wasm filter (`wasm32-wasip1` cdylib): glue between Envoy and the decisions.
//!
//! The decisions are `autoid-filter`'s, over its host seam (`Host` + `HttpHost`). This crate holds
//! only what needs the proxy-wasm SDK: `filter`, the contexts, which forward each callback to the
//! filter's `Worker` and `Flow` with `wasm_host::Envoy`, the one type that makes hostcalls.
//!
//! Build: `make build` (`cargo build --profile wasm --target wasm32-wasip1 -p autoid-plugin`).
//! Configuration: `docs/CONFIG.md`.

#![deny(unsafe_code)]

mod filter;
mod wasm_host;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::Root::new(id))
    });
}}
