//! Bytes that are not text through real Envoy and the autoid wasm filter: invalid UTF-8,
//! obs-text and NUL in header names and values (HTTP/1.1 written raw, HTTP/2 through hyper) and
//! in the path never change an answer, then or later, on any worker. And the second line: a VM
//! that does fail (a module made to crash on demand) is reloaded, as `autoid gateway render`
//! configures Envoy (`failure_policy: FAIL_RELOAD`), instead of leaving its worker answering 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::hostile::{
    ROUNDS, assert_hostile_bytes_change_no_answer, assert_non_utf8_path_is_refused,
};
use common::{Options, Stack, eventually, request};

const PATH: &str = "/payments/x";

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start(&Options::default()))
}

#[test]
fn hostile_header_bytes_change_no_answer_on_http1_and_http2() {
    let s = stack();
    assert_hostile_bytes_change_no_answer(s.http, PATH, true, |n| {
        s.prove_many("alice", "GET", PATH, n)
    });
}

#[test]
fn a_path_that_is_not_utf8_is_refused_and_the_gateway_keeps_serving() {
    let s = stack();
    assert_non_utf8_path_is_refused(s.http, PATH, |n| s.prove_many("alice", "GET", PATH, n));
}

/// The test-only probe module (`host-tests/fixtures/probe-filter`) panics on `x-probe: panic`;
/// it stands in the filter's place in the configuration `autoid gateway render` writes, since the
/// filter itself must never crash.
#[test]
fn a_crashed_vm_is_reloaded_and_requests_meanwhile_are_denied() {
    let s = Stack::start(&Options {
        wasm_module: Some("autoid_probe_filter"),
        ..Options::default()
    });
    // The probe lets ordinary requests through: the upstream answers.
    for _ in 0..ROUNDS {
        let r = request(s.http, "GET", PATH, &[]).unwrap();
        assert_eq!(r.status, 200, "before the crash: {}", r.text());
    }
    // Crash the VM of every worker that takes one (each on a connection of its own).
    for _ in 0..ROUNDS {
        if let Ok(r) = request(s.http, "GET", PATH, &[("x-probe", "panic")]) {
            assert_ne!(r.status, 200, "a request whose VM failed went upstream");
        }
    }
    // Then every worker serves again: a request either fails closed while its VM is down
    // (503, or a reset) or goes through a fresh VM.
    eventually(
        "every worker's VM reloaded",
        Duration::from_secs(15),
        || {
            let statuses: Vec<u16> = (0..2 * ROUNDS)
                .map(|_| request(s.http, "GET", PATH, &[]).map_or(0, |r| r.status))
                .collect();
            for status in &statuses {
                assert!(
                    [0, 200, 503].contains(status),
                    "during the reload: {statuses:?}"
                );
            }
            statuses.iter().all(|&st| st == 200).then_some(())
        },
    );
}
