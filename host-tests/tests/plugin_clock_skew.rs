//! Clock skew: a proof made up to `max_skew_secs` before or after the gateway's now passes, one
//! second more fails. The virtual clock moves; nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use autoid_host_tests::Gateway;
use common::autoid::{AUTHORITY, Client, Fixture, PROOF, expect_denied, now, upstream};
use serde_json::json;

const PATH: &str = "/v1/payments";

/// The gateway of `fx`, up for ten minutes (the widest skew window): proofs from before it
/// started would meet the restart fence instead of the window under test.
fn up_a_while(fx: Fixture) -> Gateway {
    let gw = fx.build();
    gw.clock().advance(Duration::from_secs(600));
    gw
}

fn send<'g>(gw: &'g Gateway, proof: &str) -> autoid_host_tests::RequestBuilder<'g> {
    gw.request("GET", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, proof)
}

#[test]
fn proofs_at_the_edges_of_the_default_window_pass() {
    let gw = up_a_while(Fixture::static_groups());
    let mut alice = Client::open(&gw, "alice");
    let t = now(&gw);
    for at in [t - 60, t - 1, t, t + 1, t + 60] {
        let proof = alice.proof_for("GET", AUTHORITY, PATH, at, None);
        upstream(&send(&gw, &proof).send());
    }
    for (at, reason) in [(t - 61, "stale"), (t + 61, "future")] {
        let proof = alice.proof_for("GET", AUTHORITY, PATH, at, None);
        expect_denied(&gw, send(&gw, &proof), 401, reason);
    }
}

#[test]
fn a_proof_ages_out_as_the_gateway_clock_moves() {
    let gw = up_a_while(Fixture::static_groups());
    let mut alice = Client::open(&gw, "alice");
    let t = now(&gw);
    let kept = alice.proof_for("GET", AUTHORITY, PATH, t, None);
    let late = alice.proof_for("GET", AUTHORITY, PATH, t, None);
    gw.clock().advance(Duration::from_secs(60));
    upstream(&send(&gw, &kept).send());
    gw.clock().advance(Duration::from_secs(1));
    expect_denied(&gw, send(&gw, &late), 401, "stale");
}

#[test]
fn a_proof_from_a_fast_client_clock_passes_once_the_gateway_catches_up() {
    let gw = up_a_while(Fixture::static_groups());
    let mut alice = Client::open(&gw, "alice");
    let t = now(&gw);
    let early = alice.proof_for("GET", AUTHORITY, PATH, t + 90, None);
    expect_denied(&gw, send(&gw, &early), 401, "future");
    let early = alice.proof_for("GET", AUTHORITY, PATH, t + 90, None);
    gw.clock().advance(Duration::from_secs(30));
    upstream(&send(&gw, &early).send());
}

#[test]
fn a_narrow_configured_window_is_enforced() {
    let gw = up_a_while(Fixture::static_groups().with("/limits/max_skew_secs", json!(5)));
    let mut alice = Client::open(&gw, "alice");
    let t = now(&gw);
    for at in [t - 5, t + 5] {
        let proof = alice.proof_for("GET", AUTHORITY, PATH, at, None);
        upstream(&send(&gw, &proof).send());
    }
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t - 6, None);
    expect_denied(&gw, send(&gw, &proof), 401, "stale");
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t + 6, None);
    expect_denied(&gw, send(&gw, &proof), 401, "future");
    // Sub-second moves do not change the verdict until a whole second has passed.
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t, None);
    gw.clock().advance(Duration::from_millis(5_999));
    upstream(&send(&gw, &proof).send());
    let proof = alice.proof_for("GET", AUTHORITY, PATH, t, None);
    gw.clock().advance(Duration::from_millis(1));
    expect_denied(&gw, send(&gw, &proof), 401, "stale");
}
