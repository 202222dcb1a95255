//! The floor filter end to end: header read and set, pseudo-headers, several workers.

mod common;

use autoid_host_tests::{Gateway, Outcome};

#[test]
fn floor_copies_the_header() {
    let gw = common::floor().gateway().build().unwrap();
    let out = gw
        .request("GET", "api.local", "/x")
        .header("X-Floor-In", "hello")
        .send();
    assert!(out.is_upstream(), "{out:?}");
    assert_eq!(out.header("x-floor-out"), Some("hello"));
    assert_eq!(out.header("x-floor-in"), Some("hello"));
}

#[test]
fn floor_says_none_without_the_header() {
    let gw = common::floor().gateway().build().unwrap();
    let out = gw.request("GET", "api.local", "/x").send();
    assert_eq!(out.header("x-floor-out"), Some("none"));
}

#[test]
fn pseudo_headers_reach_upstream_as_in_envoy() {
    let gw = common::floor().gateway().build().unwrap();
    let out = gw
        .request("POST", "api.local", "/v1/items?q=1")
        .body(b"payload".to_vec())
        .send();
    let Outcome::Upstream {
        headers,
        body,
        response_headers,
    } = &out
    else {
        panic!("{out:?}")
    };
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&names[..4], [":authority", ":path", ":method", ":scheme"]);
    assert_eq!(out.header(":method"), Some("POST"));
    assert_eq!(out.header(":path"), Some("/v1/items?q=1"));
    assert_eq!(body, b"payload");
    assert_eq!(
        response_headers[0],
        (":status".to_owned(), "200".to_owned())
    );
}

#[test]
fn every_worker_runs_the_filter() {
    let gw = common::floor().gateway().workers(3).build().unwrap();
    assert_eq!(gw.workers(), 3);
    for worker in 0..3 {
        for i in 0..5 {
            let value = format!("w{worker}-{i}");
            let out = gw
                .request("GET", "api.local", "/")
                .header("x-floor-in", &value)
                .worker(worker)
                .send();
            assert_eq!(
                out.header("x-floor-out"),
                Some(value.as_str()),
                "worker {worker}"
            );
        }
    }
    // Round robin without .worker().
    for _ in 0..4 {
        assert!(gw.request("GET", "api.local", "/").send().is_upstream());
    }
}

#[test]
fn builder_from_a_path_and_a_missing_path() {
    let gw = Gateway::builder(common::wasm("autoid_floor_filter.wasm"))
        .build()
        .unwrap();
    assert!(gw.request("GET", "a", "/").send().is_upstream());
    let err = Gateway::builder("/nonexistent/filter.wasm")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/filter.wasm"),
        "{err}"
    );
}

#[test]
fn many_requests_on_one_worker_stay_cheap() {
    // The bench's shape: one VM, many requests, no re-instantiation.
    let gw = common::floor().gateway().build().unwrap();
    for i in 0..2000 {
        let out = gw
            .request("GET", "api.local", "/")
            .header("x-floor-in", "v")
            .worker(0)
            .send();
        assert!(out.is_upstream(), "request {i}: {out:?}");
    }
}

#[test]
fn a_metered_gateway_counts_the_wasm_instructions_each_request_runs() {
    let plain = common::floor().gateway().build().unwrap();
    assert_eq!(
        plain.wasm_instructions(),
        None,
        "only a metered module counts"
    );
    let gw = common::floor_metered()
        .gateway()
        .workers(1)
        .build()
        .unwrap();
    let start = gw.wasm_instructions().unwrap();
    let send = |value: &str| {
        let before = gw.wasm_instructions().unwrap();
        let out = gw
            .request("GET", "api.local", "/x")
            .header("x-floor-in", value)
            .send();
        assert_eq!(out.header("x-floor-out"), Some(value));
        gw.wasm_instructions().unwrap() - before
    };
    let first = send("a");
    assert!(first > 100, "{first}");
    // Once the allocator has warmed up, the same request runs the same instructions.
    let counts: Vec<u64> = (0..6).map(|_| send("a")).collect();
    assert_eq!(counts[4], counts[5], "{counts:?}");
    assert!(gw.wasm_instructions().unwrap() >= start + first + counts.iter().sum::<u64>());
}
