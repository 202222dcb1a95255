//! Upstream credentials supplied by the agent (`apis.*.agent_headers`): the filter's configuration
//! holds only the header names; the first request asks the agent (`GET /v1/credentials/{api}`),
//! every worker then uses the one shared-data entry, the root context's tick refreshes it ahead of
//! expiry with no request waiting, and when the agent fails the cached value is served for the
//! stale window, then 503 `credentials`. The agent is scripted here; e2e/tests/credentials.rs
//! runs the real one against moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoid_host_tests::{CalloutReply, Cluster};
use common::autoid::*;
use serde_json::json;

const PATH: &str = "/v1/payments";
const AGENT: &str = "autoid_agent";
const AGENT_TOKEN: &str = "agent-token-0123456789abcdef";

/// An agent serving `value` (changeable) for `payments` with a 30 s time to live, counting calls.
fn agent(value: Arc<Mutex<String>>, calls: Arc<AtomicUsize>) -> Cluster {
    Cluster::Scripted(Arc::new(move |req| {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(req.header(":method"), Some("GET"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {AGENT_TOKEN}").as_str())
        );
        if req.header(":path") != Some("/v1/credentials/payments") {
            return CalloutReply::new(404).body(r#"{"error":"unknown_api"}"#);
        }
        let v = value.lock().unwrap().clone();
        CalloutReply::new(200).body(
            json!({"headers": {"authorization": v}, "ttl_secs": 30})
                .to_string()
                .into_bytes(),
        )
    }))
}

fn failing() -> Cluster {
    Cluster::Scripted(Arc::new(|_| {
        CalloutReply::new(503).body(r#"{"error":"credentials_unavailable"}"#)
    }))
}

/// Payments' `authorization` comes from the agent (refreshed 10 s ahead, 20 s stale window).
fn fixture(cluster: Cluster) -> Fixture {
    let mut fx = Fixture::static_groups()
        .with(
            "/agent",
            json!({ "cluster": AGENT, "token": AGENT_TOKEN, "timeout_ms": 500 }),
        )
        .with("/apis/payments/agent_headers", json!(["authorization"]))
        .with(
            "/credentials",
            json!({ "refresh_ahead_secs": 10, "stale_secs": 20 }),
        )
        .agent_route("/v1/credentials/", cluster);
    remove(&mut fx.config, "/apis/payments/inject/authorization");
    fx
}

#[test]
fn the_first_request_asks_the_agent_then_every_worker_uses_the_shared_entry() {
    let value = Arc::new(Mutex::new("Bearer from-the-agent".to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let fx = fixture(agent(value, calls.clone()));
    assert!(!fx.config.to_string().contains("from-the-agent"));
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice
        .get(&gw, "payments", PATH)
        .header("authorization", "Bearer client-forged")
        .worker(0)
        .send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "authorization"), ["Bearer from-the-agent"]);
    assert_eq!(values(headers, "x-api-key"), [PAYMENTS_KEY]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for worker in [1, 0, 1] {
        let out = alice.get(&gw, "payments", PATH).worker(worker).send();
        assert_eq!(
            values(upstream(&out), "authorization"),
            ["Bearer from-the-agent"]
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one callout for all workers"
    );
    assert_eq!(metric(&gw, "autoid_credentials_callouts"), 1);
    assert_eq!(metric(&gw, "autoid_credentials_cache_hits"), 3);
    // An API without agent headers never asks.
    let out = alice.get(&gw, "reports", "/v1/reports").send();
    assert_eq!(values(upstream(&out), "x-reports-token"), [REPORTS_TOKEN]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_tick_refreshes_ahead_of_expiry_and_no_request_waits() {
    let value = Arc::new(Mutex::new("Bearer one".to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = fixture(agent(value.clone(), calls.clone())).build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    *value.lock().unwrap() = "Bearer two".to_owned();
    // Outside the refresh window: the ticks do not ask.
    gw.clock().advance(Duration::from_secs(15));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let out = alice.get(&gw, "payments", PATH).send();
    assert_eq!(values(upstream(&out), "authorization"), ["Bearer one"]);
    // Inside it (10 s before the 30 s expiry): one worker's tick refreshes, once.
    gw.clock().advance(Duration::from_secs(7));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(metric(&gw, "autoid_credentials_refreshes"), 1);
    let out = alice.get(&gw, "payments", PATH).worker(1).send();
    assert_eq!(values(upstream(&out), "authorization"), ["Bearer two"]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the request did not call out"
    );
    assert_eq!(metric(&gw, "autoid_credentials_callouts"), 1);
}

#[test]
fn a_failing_agent_leaves_the_cached_value_for_the_stale_window_then_503() {
    let value = Arc::new(Mutex::new("Bearer last-good".to_owned()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (gw, plane) = fixture(agent(value, calls)).build_with_agent();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    // The agent's credentials fail from now on (its key plane still answers).
    gw.set_cluster(
        AGENT,
        KeyPlane::cluster(plane, vec![("/v1/credentials/".to_owned(), failing())]),
    );
    // Past the expiry (30 s), within the stale window (20 s more).
    gw.clock().advance(Duration::from_secs(40));
    assert!(metric(&gw, "autoid_credentials_failures") >= 1);
    let out = alice.get(&gw, "payments", PATH).send();
    assert_eq!(
        values(upstream(&out), "authorization"),
        ["Bearer last-good"]
    );
    assert_eq!(metric(&gw, "autoid_credentials_stale_served"), 1);
    // Past the stale window: the request asks, the agent fails, 503.
    gw.clock().advance(Duration::from_secs(11));
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "credentials");
    // With no agent answer at all (timeout), the same.
    let gw = fixture(Cluster::Timeout).build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "credentials");
}

#[test]
fn agent_headers_need_an_agent_and_valid_names() {
    let mut fx = fixture(failing());
    remove(&mut fx.config, "/agent");
    let err = fx.try_build().unwrap_err();
    let text = format!("{err}: {err:?}");
    // Without an agent nothing holds the gateway's keys: that is refused first.
    assert!(text.contains("agent: required"), "{text}");
    let err = fixture(failing())
        .with("/apis/payments/agent_headers", json!(["Authorization"]))
        .try_build()
        .unwrap_err();
    let text = format!("{err}: {err:?}");
    assert!(text.contains("apis.payments.agent_headers[0]"), "{text}");
}
