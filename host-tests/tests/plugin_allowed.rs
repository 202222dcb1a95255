//! An allowed request: upstream sees the injected credentials and identity headers, never the
//! proof, and never a client's own copy of any header some API injects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::autoid::{
    AUTHORITY, Client, Fixture, MANAGED, PAYMENTS_AUTH, PAYMENTS_KEY, PROOF, REPORTS_TOKEN,
    expect_denied, metric, upstream, values,
};

#[test]
fn allowed_request_gets_credentials_and_identity_but_not_the_proof() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", "/v1/payments?limit=10").send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "authorization"), [PAYMENTS_AUTH]);
    assert_eq!(values(headers, "x-api-key"), [PAYMENTS_KEY]);
    assert_eq!(values(headers, "x-autoid-subject"), ["alice"]);
    assert_eq!(values(headers, "x-autoid-groups"), ["payments,readers"]);
    assert!(values(headers, PROOF).is_empty(), "{headers:?}");
    // Another API's headers are not set here.
    assert!(values(headers, "x-reports-token").is_empty());
    assert!(values(headers, "x-reports-subject").is_empty());
    // The request itself is untouched.
    assert_eq!(values(headers, ":path"), ["/v1/payments?limit=10"]);
    assert_eq!(values(headers, ":authority"), [AUTHORITY]);
    assert_eq!(metric(&gw, "autoid_requests_allowed"), 1);
    assert_eq!(metric(&gw, "autoid_requests_denied"), 0);
}

#[test]
fn an_api_without_identity_headers_sets_none() {
    let gw = Fixture::static_groups().build();
    let mut carol = Client::open(&gw, "carol");
    let out = carol.get(&gw, "admin", "/admin").send();
    let headers = upstream(&out);
    for name in MANAGED {
        assert!(values(headers, name).is_empty(), "{name}: {headers:?}");
    }
    assert!(values(headers, PROOF).is_empty());
}

#[test]
fn client_copies_of_injected_and_identity_headers_are_replaced_on_success() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice
        .get(&gw, "payments", "/v1/payments")
        // Mixed case (lower-cased on the way in, as Envoy does), duplicates, empty values.
        .header("Authorization", "Bearer stolen")
        .header("AUTHORIZATION", "Bearer stolen-too")
        .header("X-Api-Key", "")
        .header("x-autoid-subject", "root")
        .header("X-AutoID-Subject", "root")
        .header("x-autoid-groups", "admins")
        .header("X-Reports-Token", "forged")
        .header("x-reports-subject", "")
        .header("x-unrelated", "kept")
        .send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "authorization"), [PAYMENTS_AUTH]);
    assert_eq!(values(headers, "x-api-key"), [PAYMENTS_KEY]);
    assert_eq!(values(headers, "x-autoid-subject"), ["alice"]);
    assert_eq!(values(headers, "x-autoid-groups"), ["payments,readers"]);
    // Another API's headers, spoofed here, are gone rather than passed through.
    assert!(values(headers, "x-reports-token").is_empty(), "{headers:?}");
    assert!(
        values(headers, "x-reports-subject").is_empty(),
        "{headers:?}"
    );
    assert_eq!(values(headers, "x-unrelated"), ["kept"]);
}

#[test]
fn headers_spoofed_for_another_api_never_reach_upstream() {
    // `reports` injects only x-reports-*: the client's copies of payments' headers must still be
    // stripped, or an upstream behind `reports` would trust them.
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    let out = bob
        .get(&gw, "reports", "/v1/reports")
        .header("authorization", "Bearer forged")
        .header("X-API-KEY", "forged")
        .header("x-api-key", "")
        .header("x-autoid-subject", "alice")
        .header("x-autoid-groups", "payments,admins")
        .header("x-reports-subject", "alice")
        .send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "x-reports-token"), [REPORTS_TOKEN]);
    assert_eq!(values(headers, "x-reports-subject"), ["bob"]);
    for name in [
        "authorization",
        "x-api-key",
        "x-autoid-subject",
        "x-autoid-groups",
    ] {
        assert!(values(headers, name).is_empty(), "{name}: {headers:?}");
    }
}

#[test]
fn spoofed_headers_on_a_denied_request_do_not_leak_into_the_next_one() {
    // The failure path strips too; the next (allowed) request on the same worker must not see
    // anything the denied one carried, and its own spoofed copies are stripped.
    let gw = Fixture::static_groups().workers(1).build();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(
        &gw,
        bob.get(&gw, "payments", "/v1/payments")
            .header("authorization", "Bearer forged")
            .header("x-reports-token", "forged"),
        403,
        "not_in_groups",
    );
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, "/v1/reports")
            .route("reports")
            .header("x-reports-token", "forged")
            .header("x-api-key", "forged"),
        401,
        "missing",
    );
    let out = bob
        .get(&gw, "reports", "/v1/reports")
        .header("x-api-key", "forged")
        .header("Authorization", "Bearer forged")
        .send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "x-reports-token"), [REPORTS_TOKEN]);
    assert!(values(headers, "x-api-key").is_empty(), "{headers:?}");
    assert!(values(headers, "authorization").is_empty(), "{headers:?}");
}

#[test]
fn the_proof_header_is_removed_even_when_the_api_needs_no_identity() {
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    let proof = bob.proof(&gw, "/v1/reports");
    let out = gw
        .request("GET", AUTHORITY, "/v1/reports")
        .route("reports")
        .header("X-AutoID-Proof", &proof)
        .send();
    let headers = upstream(&out);
    assert!(values(headers, PROOF).is_empty(), "{headers:?}");
}

#[test]
fn authority_is_compared_case_insensitively() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, "/v1/payments");
    let out = gw
        .request("GET", "API.Example.COM", "/v1/payments")
        .route("payments")
        .header(PROOF, &proof)
        .send();
    upstream(&out);
}
