//! Body-bound proofs: the filter buffers the body and checks its SHA-256 against the digest the
//! proof seals.
//!
//! The filter pauses the headers to wait for the body. Envoy delivers the body to a filter that
//! paused its headers only with `allow_on_headers_stop_iteration` (which `autoid gateway render`
//! sets and the fixture mirrors); by default it stalls the request. The body arrives in chunks,
//! Envoy buffers what the filter holds, and trailers, when the client sends them, end the body:
//! e2e/tests/body.rs runs the same scenarios through real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_host_tests::{Gateway, Outcome, RequestBuilder};
use autoid_protocol::policy::MAX_BODY_BYTES;
use common::autoid::{AUTHORITY, Client, Fixture, PROOF, expect_denied, now, upstream};

const PATH: &str = "/v1/payments";

/// `POST PATH` on the payments route with `proof`.
fn post<'g>(gw: &'g Gateway, proof: &str) -> RequestBuilder<'g> {
    gw.request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, proof)
}
const BODY: &[u8] = br#"{"amount":100,"to":"acct-1"}"#;

#[test]
fn a_proof_bound_to_the_empty_body_passes_without_a_body() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(b""));
    let out = post(&gw, &proof).send();
    upstream(&out);
}

#[test]
fn a_body_bound_proof_without_its_body_is_refused() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    expect_denied(&gw, post(&gw, &proof), 401, "body");
}

#[test]
fn the_right_body_passes() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    let out = post(&gw, &proof).body(BODY).send();
    let Outcome::Upstream { body, .. } = &out else {
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
        post(&gw, &proof).body(br#"{"amount":999,"to":"acct-1"}"#.to_vec()),
        401,
        "body",
    );
}

/// A body of `len` bytes in 16 KiB chunks, as Envoy reads them.
fn chunks(body: &[u8]) -> Vec<Vec<u8>> {
    body.chunks(16 * 1024).map(<[u8]>::to_vec).collect()
}

#[test]
fn a_body_at_the_limit_passes_and_one_byte_more_is_413_with_the_uniform_body() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let at_limit = vec![b'x'; MAX_BODY_BYTES];
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(&at_limit));
    let out = post(&gw, &proof).body_chunks(chunks(&at_limit)).send();
    let Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(body.len(), MAX_BODY_BYTES);

    let over = vec![b'x'; MAX_BODY_BYTES + 1];
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(&over));
    expect_denied(
        &gw,
        post(&gw, &proof).body_chunks(chunks(&over)),
        413,
        "body_too_large",
    );
}

#[test]
fn under_envoys_default_a_body_bound_proof_stalls() {
    // What the rendered `allow_on_headers_stop_iteration` is for: without it Envoy turns the
    // headers-phase pause into "stop everything" and never delivers the body the filter awaits.
    let gw = Fixture::static_groups()
        .builder()
        .allow_on_headers_stop_iteration(false)
        .build()
        .unwrap();
    // After the second the filter was configured in (the restart fence).
    gw.clock().advance(std::time::Duration::from_secs(1));
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    let out = post(&gw, &proof).body(BODY).send();
    assert!(matches!(out, Outcome::Stalled { .. }), "{out:?}");
    // A proof without a body digest is decided on the headers: nothing waits for the body.
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), None);
    let out = post(&gw, &proof).body(BODY).send();
    assert!(out.is_upstream(), "{out:?}");
}

#[test]
fn a_body_in_chunks_is_checked_whole() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let body: Vec<u8> = (0..100_000u32).flat_map(u32::to_le_bytes).collect();
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(&body));
    let out = post(&gw, &proof).body_chunks(chunks(&body)).send();
    let Outcome::Upstream { body: sent, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(sent, &body);

    // The same length, one byte changed in the last chunk.
    let mut altered = body.clone();
    *altered.last_mut().unwrap() ^= 1;
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(&body));
    expect_denied(
        &gw,
        post(&gw, &proof).body_chunks(chunks(&altered)),
        401,
        "body",
    );
}

#[test]
fn trailers_end_the_body_and_never_resume_a_request_whose_body_does_not_match() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    let out = post(&gw, &proof)
        .body_chunks([BODY[..5].to_vec(), BODY[5..].to_vec()])
        .trailer("x-checksum", "abc")
        .send();
    let Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(body, BODY);

    // The swapped body with trailers: the SDK's default `Continue` on trailers would let it
    // through past the body check.
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    expect_denied(
        &gw,
        post(&gw, &proof)
            .body(br#"{"amount":999,"to":"acct-1"}"#.to_vec())
            .trailer("x-checksum", "abc"),
        401,
        "body",
    );
}

#[test]
fn headers_then_trailers_without_data_is_the_empty_body() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(b""));
    let out = post(&gw, &proof).trailer("x-checksum", "abc").send();
    upstream(&out);
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    expect_denied(
        &gw,
        post(&gw, &proof).trailer("x-checksum", "abc"),
        401,
        "body",
    );
}

#[test]
fn a_body_bound_proof_is_claimed_once_its_body_matched() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(BODY));
    // A wrong body first: refused, and the nonce is not spent on it...
    expect_denied(&gw, post(&gw, &proof).body(b"{}".to_vec()), 401, "body");
    // ...so the right body with the same proof passes, once.
    let out = post(&gw, &proof).body(BODY).send();
    upstream(&out);
    expect_denied(&gw, post(&gw, &proof).body(BODY), 401, "replay");
}

#[test]
fn a_proof_without_a_body_digest_lets_a_body_through_unchecked() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), None);
    let out = post(&gw, &proof).body(BODY).send();
    let Outcome::Upstream { body, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(body, BODY);
}
