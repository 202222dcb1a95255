//! Bytes that are not text, from a client or from the host: in header names and values
//! (invalid UTF-8, obs-text, NUL), pseudo-headers, trailers, callout reply headers and bodies,
//! and properties. The filter never traps on them: the values it reads fail closed with their
//! uniform answer, every other header is carried, and after each the same worker still gives
//! ordinary requests their right answer (allowed upstream, 401 without a proof).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_host_tests::{CalloutReply, Cluster, Gateway, Outcome};
use common::autoid::{
    AGENT, AUTHORITY, CLUSTER, Client, Fixture, PROOF, callout_subject, directory_reply,
    expect_denied, now, upstream,
};
use std::sync::Arc;

const PATH: &str = "/v1/payments";

/// Header names and values a client may send and a codec may let through.
const HOSTILE: [(&[u8], &[u8]); 8] = [
    (b"x-note", b"caf\xe9"),
    (b"x-note", b"\x80\x81\xfe\xff"),
    (b"x-note", b"a\x00b"),
    (b"x-note", b"\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80"),
    (b"x-caf\xe9", b"value"),
    (b"x-\x00\xff", b"\xff"),
    (b"\xff\xfe", b""),
    (b"x-request-id", b"rid\xe9\x00-1"),
];

/// Every worker still answers ordinary requests: alice allowed upstream, no proof 401.
fn still_serving(gw: &Gateway, alice: &mut Client, after: &str) {
    for worker in 0..gw.workers() {
        assert_eq!(
            gw.worker_fault(worker),
            None,
            "worker {worker} died {after}"
        );
        let allowed = alice.get(gw, "payments", PATH).worker(worker).send();
        assert!(
            matches!(allowed, Outcome::Upstream { .. }),
            "worker {worker}, alice after {after}: {allowed:?}"
        );
        let denied = gw
            .request("GET", AUTHORITY, PATH)
            .route("payments")
            .worker(worker)
            .send();
        assert_eq!(
            denied.local_status(),
            Some(401),
            "worker {worker}, no proof after {after}"
        );
    }
}

#[test]
fn any_bytes_in_a_header_name_or_value_leave_every_worker_serving() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    for (name, value) in HOSTILE {
        let what = format!(
            "header {:?}: {:?}",
            name.escape_ascii(),
            value.escape_ascii()
        );
        for worker in 0..gw.workers() {
            // Unauthenticated: the uniform 401.
            let out = gw
                .request("GET", AUTHORITY, PATH)
                .route("payments")
                .header_raw(name, value)
                .worker(worker)
                .send();
            assert_eq!(out.local_status(), Some(401), "{what}: {out:?}");
            // With a valid proof: allowed, the header carried as it came.
            let out = alice
                .get(&gw, "payments", PATH)
                .header_raw(name, value)
                .worker(worker)
                .send();
            upstream(&out);
        }
        still_serving(&gw, &mut alice, &what);
    }
}

#[test]
fn a_proof_header_that_is_not_utf8_is_the_uniform_401_malformed() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, PATH);
    for bad in [
        [proof.as_bytes(), b"\xe9"].concat(),
        b"\xff\xfe\x00".to_vec(),
        [&proof.as_bytes()[..10], b"\x80", &proof.as_bytes()[11..]].concat(),
    ] {
        expect_denied(
            &gw,
            gw.request("GET", AUTHORITY, PATH)
                .route("payments")
                .header_raw(PROOF.as_bytes(), &bad),
            401,
            "malformed",
        );
    }
    still_serving(&gw, &mut alice, "a non-UTF-8 proof");
}

#[test]
fn a_path_that_is_not_utf8_is_400_unsafe_path() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    for path in [&b"/v1/caf\xe9"[..], b"/v1/\xff\x00", b"/v1/payments?q=\x80"] {
        expect_denied(
            &gw,
            alice.get(&gw, "payments", PATH).pseudo_raw(":path", path),
            400,
            "unsafe_path",
        );
    }
    still_serving(&gw, &mut alice, "a non-UTF-8 path");
}

#[test]
fn a_method_or_authority_that_is_not_utf8_is_the_uniform_401() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    for (name, value) in [
        (":method", &b"G\xc9T"[..]),
        (":authority", b"api.\xe9xample.com"),
    ] {
        expect_denied(
            &gw,
            alice.get(&gw, "payments", PATH).pseudo_raw(name, value),
            401,
            "malformed",
        );
    }
    still_serving(&gw, &mut alice, "a non-UTF-8 method or authority");
}

#[test]
fn trailers_with_any_bytes_leave_the_worker_serving() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let body = b"\xff\x00body\xe9";
    for (name, value) in HOSTILE {
        // A proof that binds the body: the filter waits for the body and the trailers.
        let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(body));
        let out = gw
            .request("POST", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .body(&body[..])
            .trailer_raw(name, value)
            .send();
        upstream(&out);
    }
    still_serving(&gw, &mut alice, "trailers");
}

#[test]
fn properties_that_are_not_utf8_fail_closed() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    // A route name that is no text names no API.
    expect_denied(
        &gw,
        alice
            .get(&gw, "payments", PATH)
            .property(&["xds", "route_name"], &b"pay\xe9ments"[..]),
        403,
        "unknown_route",
    );
    // A peer address or TLS version that is no text: the request is still judged.
    let out = alice
        .get(&gw, "payments", PATH)
        .property(&["source", "address"], &b"\xff\x00:1"[..])
        .property(&["connection", "tls_version"], &b"\xfe"[..])
        .send();
    upstream(&out);
    still_serving(&gw, &mut alice, "non-UTF-8 properties");
}

#[test]
fn callout_replies_with_any_bytes_fail_closed_and_leave_the_worker_serving() {
    // The agent answers with hostile headers (names, values, a `:status` that is no number)
    // and, for bob, a body that is no JSON at all; alice's answer is right.
    let agent = Cluster::Scripted(Arc::new(|req| {
        let subject = callout_subject(req);
        let hostile = |reply: CalloutReply| {
            HOSTILE
                .iter()
                .fold(reply, |r, (k, v)| r.header_bytes(k, v))
                .header_bytes(b":status", b"2\xe900")
        };
        match subject.as_str() {
            "alice" => hostile(directory_reply("alice", Some(&["payments"]))),
            _ => hostile(CalloutReply::new(200).body(&b"\xff\xfe{\x00\"groups\":[\xe9]}"[..])),
        }
    }));
    let gw = Fixture::directory(agent).build();
    let mut alice = Client::open(&gw, "alice");
    let mut bob = Client::open(&gw, "bob");
    let out = bob.get(&gw, "payments", PATH).worker(0).send();
    assert_eq!(out.local_status(), Some(503), "bob's junk reply: {out:?}");
    assert_eq!(gw.worker_fault(0), None);
    still_serving(&gw, &mut alice, "hostile callout replies");
    assert!(
        gw.callouts().iter().all(|c| c.cluster == CLUSTER
            || (c.cluster == AGENT
                && ["/v1/sessions", "/v1/streams"].contains(&c.header(":path").unwrap_or("")))),
        "only the directory (and the agent's key plane for the sessions and streams) was called"
    );
}
