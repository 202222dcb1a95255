//! Authorization by route and group: unknown or missing route, disabled API, not in the groups,
//! unknown subject. All 403, with the uniform body and no `www-authenticate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::autoid::{AUTHORITY, Client, Fixture, PROOF, expect_denied, metric, upstream, values};

#[test]
fn an_unknown_route_is_denied() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let out = expect_denied(
        &gw,
        alice.get(&gw, "not-configured", "/x"),
        403,
        "unknown_route",
    );
    assert!(out.header("www-authenticate").is_none());
    // Denied before the proof is looked at: no RSA spent on it.
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 0);
}

#[test]
fn a_request_without_a_route_name_is_denied() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, "/v1/payments");
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, "/v1/payments")
            .header(PROOF, &proof),
        403,
        "unknown_route",
    );
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, "/v1/payments")
            .route("")
            .header(PROOF, &proof),
        403,
        "unknown_route",
    );
    // Route names are exact: no case folding, no prefix match.
    expect_denied(
        &gw,
        alice.get(&gw, "Payments", "/v1/payments"),
        403,
        "unknown_route",
    );
    expect_denied(
        &gw,
        alice.get(&gw, "payments2", "/v1/payments"),
        403,
        "unknown_route",
    );
}

#[test]
fn a_disabled_api_is_denied_even_with_a_valid_proof() {
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(&gw, bob.get(&gw, "legacy", "/legacy"), 403, "api_disabled");
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, "/legacy").route("legacy"),
        403,
        "api_disabled",
    );
}

#[test]
fn a_subject_outside_the_required_groups_is_denied() {
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    let out = expect_denied(
        &gw,
        bob.get(&gw, "payments", "/v1/payments"),
        403,
        "not_in_groups",
    );
    // The body says nothing about groups.
    let body = match &out {
        autoid_host_tests::Outcome::LocalReply { body, .. } => String::from_utf8_lossy(body),
        _ => unreachable!(),
    };
    assert!(
        !body.contains("payments") && !body.contains("group"),
        "{body}"
    );
    // all_of needs every group: alice has payments but not admins.
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "admin", "/admin"), 403, "not_in_groups");
    let mut carol = Client::open(&gw, "carol");
    upstream(&carol.get(&gw, "admin", "/admin").send());
    // any_of needs one: bob reaches reports.
    let out = bob.get(&gw, "reports", "/v1/reports").send();
    assert_eq!(values(upstream(&out), "x-reports-subject"), ["bob"]);
}

#[test]
fn a_subject_unknown_to_the_groups_map_is_denied() {
    let gw = Fixture::static_groups().build();
    let mut dave = Client::open(&gw, "dave");
    expect_denied(
        &gw,
        dave.get(&gw, "payments", "/v1/payments"),
        403,
        "unknown_subject",
    );
    expect_denied(
        &gw,
        dave.get(&gw, "reports", "/v1/reports"),
        403,
        "unknown_subject",
    );
}

#[test]
fn the_deny_line_names_route_and_subject() {
    let gw = Fixture::static_groups().build();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(
        &gw,
        bob.get(&gw, "payments", "/v1/payments"),
        403,
        "not_in_groups",
    );
    let lines = common::autoid::deny_lines(&gw);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0]
            .message
            .contains(r#"status=403 reason=not_in_groups route="payments" subject="bob" "#),
        "{}",
        lines[0].message
    );
}
