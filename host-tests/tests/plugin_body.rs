//! Body-bound proofs: the filter buffers the body and checks its SHA-256 against the digest the
//! proof seals.
//!
//! The filter pauses the headers to wait for the body; as in Envoy, the harness then still
//! delivers the body, and the filter's `Continue` there releases the request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::autoid::{AUTHORITY, Client, Fixture, PROOF, expect_denied, now, upstream};

const PATH: &str = "/v1/payments";
const BODY: &[u8] = br#"{"amount":100,"to":"acct-1"}"#;

#[test]
fn a_proof_bound_to_the_empty_body_passes_without_a_body() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(b""));
    let out = gw
        .request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .send();
    upstream(&out);
}

#[test]
fn a_body_bound_proof_without_its_body_is_refused() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    expect_denied(
        &gw,
        gw.request("POST", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof),
        401,
        "body",
    );
}

#[test]
fn the_right_body_passes() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    let out = gw
        .request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .body(BODY)
        .send();
    let autoid_host_tests::Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(body, BODY);
}

#[test]
fn an_altered_body_is_refused() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    expect_denied(
        &gw,
        gw.request("POST", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .body(br#"{"amount":999,"to":"acct-1"}"#.to_vec()),
        401,
        "body",
    );
}

#[test]
fn a_body_over_the_buffer_limit_is_refused() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let big = vec![b'x'; (1 << 20) + 1];
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(&big));
    let out = gw
        .request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .body(big)
        .send();
    assert!(out.local_status().is_some(), "{out:?}");
    assert!(!out.is_upstream());
}

#[test]
fn a_proof_without_a_body_digest_lets_a_body_through_unchecked() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), None);
    let out = gw
        .request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .body(BODY)
        .send();
    let autoid_host_tests::Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(body, BODY);
}
