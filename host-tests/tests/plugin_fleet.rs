//! Fleet replay (`replay.scope: "fleet"`) under the harness, as Envoy drives it: the claim is
//! sent in a batch by the root context, woken through the worker's shared queue
//! (`proxy_on_queue_ready`), and answered in the root context, which enters the waiting
//! request's context to let it go upstream or answer it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use autoid_host_tests::{CalloutReply, Cluster};
use autoid_protocol::agent_api::ReplayBatchRequest;
use common::autoid::{Client, Fixture, PAYMENTS_AUTH, metric, upstream, values};
use serde_json::json;

const AGENT: &str = "autoid_agent";

/// A fleet-scoped gateway whose agent answers each batch with `verdict` for every claim (or
/// `status` alone when it is not 200), recording the batches' sizes.
fn gateway(
    status: u16,
    verdict: &'static str,
    sizes: Arc<Mutex<Vec<usize>>>,
) -> autoid_host_tests::Gateway {
    let agent = Cluster::Scripted(Arc::new(move |req| {
        assert_eq!(req.header(":path"), Some("/v1/replay"));
        let batch: ReplayBatchRequest = serde_json::from_slice(&req.body).unwrap();
        sizes.lock().unwrap().push(batch.claims.len());
        let verdicts = vec![verdict; batch.claims.len()];
        CalloutReply::new(status).body(json!({ "verdicts": verdicts }).to_string())
    }));
    Fixture::static_groups()
        .with("/agent", json!({ "cluster": AGENT, "timeout_ms": 500 }))
        .with(
            "/replay",
            json!({ "scope": "fleet", "fleet_timeout_ms": 300 }),
        )
        .agent_route("/v1/replay", agent)
        .build()
}

#[test]
fn a_claim_the_fleet_grants_goes_upstream_from_the_root_contexts_answer() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let gw = gateway(200, "claimed", Arc::clone(&sizes));
    let mut alice = Client::open(&gw, "alice");
    for _ in 0..3 {
        let out = alice.get(&gw, "payments", "/v1/payments").send();
        assert_eq!(values(upstream(&out), "authorization"), [PAYMENTS_AUTH]);
    }
    // One request at a time: each claim alone in its batch.
    assert_eq!(*sizes.lock().unwrap(), [1, 1, 1]);
    assert_eq!(metric(&gw, "autoid_replay_fleet_claims"), 3);
    assert_eq!(metric(&gw, "autoid_replay_fleet_batches"), 3);
}

#[test]
fn a_claim_the_fleet_saw_is_a_replay_and_a_failed_batch_is_503() {
    let gw = gateway(200, "replay", Arc::default());
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", "/v1/payments").send();
    assert_eq!(out.local_status(), Some(401), "{out:?}");
    assert_eq!(metric(&gw, "autoid_denied_replay"), 1);

    let gw = gateway(503, "claimed", Arc::default());
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", "/v1/payments").send();
    assert_eq!(out.local_status(), Some(503), "{out:?}");
    assert_eq!(metric(&gw, "autoid_replay_fleet_failures"), 1);
}
