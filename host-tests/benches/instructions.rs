//! Wasm instructions per request (wasmtime fuel), deterministic whatever else the machine does:
//! the floor filter, and autoid's warm path in protocol v1 (the wrapped session key in every
//! proof) and v2 (the compact form, docs/PROTOCOL.md §11). It counts only the module's own work
//! (parsing, base64, crypto, caches); what Envoy spends on each hostcall is not in it — that is
//! `make bench`'s Envoy CPU per request.
//!
//! Run: `cargo bench -p autoid-host-tests --bench instructions` (`make bench` runs it and writes
//! `target/bench/wasm-instructions.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use autoid_host_tests::Gateway;
use autoid_protocol::client::Form;
use common::autoid::{AUTHORITY, Client, Fixture, PROOF};
use serde_json::json;

const PATH: &str = "/v1/payments";
const REQUESTS: u64 = 2000;

/// Instructions per request over `REQUESTS` requests, each checked to go upstream.
fn per_request(gw: &Gateway, next: &mut impl FnMut() -> Vec<(&'static str, String)>) -> f64 {
    let requests: Vec<_> = (0..REQUESTS).map(|_| next()).collect();
    let before = gw.wasm_instructions().expect("a metered gateway");
    for headers in &requests {
        let mut req = gw.request("GET", AUTHORITY, PATH).route("payments");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let out = req.send();
        assert!(out.is_upstream(), "{out:?}");
    }
    let after = gw.wasm_instructions().expect("a metered gateway");
    (after - before) as f64 / REQUESTS as f64
}

/// The warm path with proofs of `form` (the session primed by one full-form proof): with the
/// subject's stream (64 AES blocks per proof), then with its file materialized on the tick, as
/// for a hot subject in Envoy. And the header's length.
fn warm(form: Form) -> (f64, f64, usize) {
    let gw = Fixture::static_groups()
        .with(
            "/replay",
            json!({ "buckets": 1 << 16, "slots_per_bucket": 64 }),
        )
        .workers(1)
        .metered()
        .build();
    let mut alice = Client::open(&gw, "alice");
    let prime = alice.proof_as(
        &gw,
        PATH,
        if form == Form::V1 {
            Form::V1
        } else {
            Form::Full
        },
    );
    assert!(
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &prime)
            .send()
            .is_upstream()
    );
    let mut len = 0;
    let mut next = || {
        let proof = alice.proof_as(&gw, PATH, form);
        len = proof.len();
        vec![(PROOF, proof)]
    };
    let stream = per_request(&gw, &mut next);
    // Every proof of the window was verified: alice is hot, and the tick materializes her file.
    gw.clock().advance(std::time::Duration::from_secs(1));
    gw.tick();
    let file = per_request(&gw, &mut next);
    assert!(
        file < stream,
        "the file is materialized ({file} vs {stream})"
    );
    (stream, file, len)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument names what to run (none: everything).
    let floor = {
        let gw = common::floor_metered()
            .gateway()
            .workers(1)
            .build()
            .unwrap();
        per_request(&gw, &mut || vec![("x-floor-in", "bench".to_owned())])
    };
    let (v1_stream, v1, v1_len) = warm(Form::V1);
    let (v2_stream, v2, v2_len) = warm(Form::Compact);
    let result = json!({
        "unit": "wasm instructions per request (wasmtime fuel)",
        "requests": REQUESTS,
        "floor": floor,
        "warm_v1": v1,
        "warm_v2_compact": v2,
        "v2_vs_v1": v2 / v1,
        "with_the_subject_stream_only": { "warm_v1": v1_stream, "warm_v2_compact": v2_stream },
        "proof_header_bytes": { "v1": v1_len, "v2_compact": v2_len },
    });
    let text = serde_json::to_string_pretty(&result).unwrap();
    println!("{text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("wasm-instructions.json"), text + "\n");
    }
}
