//! A worker VM restart keeps replay protection and warm sessions: both live in shared data, which
//! belongs to the host (in Envoy, the process), not to the VM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::autoid::{AUTHORITY, Client, Fixture, PROOF, expect_denied, metric, upstream};

const PATH: &str = "/v1/payments";

#[test]
fn a_replay_after_a_worker_restart_is_still_rejected() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, PATH);
    let send = |worker: usize| {
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .worker(worker)
    };
    upstream(&send(0).send());
    gw.restart_worker(0).unwrap();
    expect_denied(&gw, send(0), 401, "replay");
    // The restarted VM also finds the session in shared data: no second RSA unwrap.
    let fresh = alice.proof(&gw, PATH);
    upstream(
        &gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &fresh)
            .worker(0)
            .send(),
    );
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
    assert!(metric(&gw, "autoid_session_cache_hit_shared") >= 1);
}
