//! Epochs held by the agent: the filter's configuration lists the epoch's id and public parameters
//! only; when a proof's session opens and the subject's stream is not in the worker's entropy
//! cache, the filter pauses, asks the agent for the subject's key (`POST /v1/streams`, the shared
//! `StreamRequest`/`StreamReply` types), keeps the stream for the reply's TTL (bounded by the
//! configuration) and verifies again. The real agent answers in-process behind a recording
//! script; unusable answers are scripted; e2e/tests/agent_sessions.rs runs the agent's binary in
//! front of real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoid_host_tests::{CalloutReply, Cluster};
use autoid_protocol::agent_api::StreamRequest;
use common::autoid::*;
use serde_json::{Value, json};

const PATH: &str = "/v1/payments";
const AGENT: &str = "autoid_agent";
const AGENT_TOKEN: &str = "agent-token-0123456789abcdef";

/// What the scripted agent saw and how it answers streams.
#[derive(Default)]
struct Seen {
    streams: AtomicUsize,
    sessions: AtomicUsize,
    subjects: Mutex<Vec<String>>,
}

/// The real agent (the fixture's epoch and key, its streams' `ttl_secs` as given), behind a
/// script that checks each callout and records what it was asked.
fn agent(seen: Arc<Seen>, ttl_secs: u64) -> Cluster {
    let plane = real_agent(Some(ttl_secs));
    Cluster::Scripted(Arc::new(move |req| {
        assert_eq!(req.header(":method"), Some("POST"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {AGENT_TOKEN}").as_str())
        );
        match req.header(":path") {
            Some("/v1/streams") => {
                seen.streams.fetch_add(1, Ordering::SeqCst);
                let asked: StreamRequest = serde_json::from_slice(&req.body).unwrap();
                seen.subjects.lock().unwrap().push(asked.subject);
            }
            Some("/v1/sessions") => {
                seen.sessions.fetch_add(1, Ordering::SeqCst);
            }
            other => panic!("unexpected callout {other:?}"),
        }
        plane.answer(req)
    }))
}

/// A scripted agent answering every stream callout with `status` and `body`.
fn answering(status: u16, body: &'static str) -> Cluster {
    Cluster::Scripted(Arc::new(move |_| CalloutReply::new(status).body(body)))
}

/// The static-groups fixture with the epoch held by the agent at `cluster` (id and public
/// parameters only in the filter's configuration).
fn fixture(cluster: Cluster) -> Fixture {
    let e = epoch();
    Fixture::static_groups()
        .with(
            "/epochs",
            json!([{ "id": e.id(), "file_size": e.file_size(), "interval_count": e.interval_count() }]),
        )
        .with(
            "/agent",
            json!({ "cluster": AGENT, "token": AGENT_TOKEN, "timeout_ms": 500 }),
        )
        .agent_route("/v1/streams", cluster)
}

fn epoch_secret() -> String {
    let file: Value = serde_json::from_str(&epoch().to_json()).unwrap();
    file["secret"].as_str().unwrap().to_owned()
}

#[test]
fn a_miss_asks_the_agent_once_and_a_cached_stream_asks_nothing() {
    let seen = Arc::new(Seen::default());
    let fx = fixture(agent(seen.clone(), 300));
    assert!(
        !fx.config.to_string().contains(&epoch_secret()),
        "no epoch secret in the filter's configuration"
    );
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", PATH).worker(0).send();
    assert_eq!(values(upstream(&out), "x-autoid-subject"), ["alice"]);
    assert_eq!(seen.streams.load(Ordering::SeqCst), 1);
    assert_eq!(metric(&gw, "autoid_agent_stream_callouts"), 1);
    for _ in 0..3 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    }
    assert_eq!(
        seen.streams.load(Ordering::SeqCst),
        1,
        "the stream is cached in the worker"
    );
    // Each worker keeps its own streams.
    upstream(&alice.get(&gw, "payments", PATH).worker(1).send());
    upstream(&alice.get(&gw, "payments", PATH).worker(1).send());
    assert_eq!(seen.streams.load(Ordering::SeqCst), 2);
    assert_eq!(metric(&gw, "autoid_agent_stream_failures"), 0);
    // Nothing in the log holds the key or the secret.
    let k = epoch().subject_key("alice").to_base64();
    for line in gw.logs() {
        assert!(!line.message.contains(&k), "{}", line.message);
        assert!(!line.message.contains(&epoch_secret()), "{}", line.message);
    }
}

#[test]
fn a_wrong_file_still_fails_after_the_callout() {
    let seen = Arc::new(Seen::default());
    let gw = fixture(agent(seen.clone(), 300)).build();
    // bob's file claiming to be alice: the session opens, the agent hands alice's key, the
    // digest does not match.
    let mut mallory = Client::open(&gw, "bob");
    let raw = mallory.payload(now(&gw), "alice").to_bytes();
    let proof = mallory.seal_raw(PATH, &raw);
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof),
        401,
        "entropy",
    );
    assert_eq!(*seen.subjects.lock().unwrap(), ["alice"]);
}

#[test]
fn streams_expire_after_the_agents_ttl_bounded_by_the_configuration() {
    let seen = Arc::new(Seen::default());
    let gw = fixture(agent(seen.clone(), 30)).build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    gw.clock().advance(Duration::from_secs(29));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(seen.streams.load(Ordering::SeqCst), 1, "still fresh");
    gw.clock().advance(Duration::from_secs(1));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(
        seen.streams.load(Ordering::SeqCst),
        2,
        "expired: asked again"
    );

    // The agent offers an hour; the configuration keeps at most 10 s.
    let seen = Arc::new(Seen::default());
    let gw = fixture(agent(seen.clone(), 3600))
        .with("/agent/max_stream_ttl_secs", json!(10))
        .build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    gw.clock().advance(Duration::from_secs(10));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(seen.streams.load(Ordering::SeqCst), 2);
}

#[test]
fn an_agent_that_does_not_answer_usably_is_503() {
    let gw = fixture(Cluster::Timeout).build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "agent");
    assert_eq!(metric(&gw, "autoid_agent_stream_failures"), 1);

    let e = epoch();
    let key = e.subject_key("alice").to_base64();
    let wrong_size =
        format!(r#"{{"key":"{key}","file_size":8192,"interval_count":64,"ttl_secs":60}}"#).leak();
    let zero_ttl =
        format!(r#"{{"key":"{key}","file_size":65536,"interval_count":64,"ttl_secs":0}}"#).leak();
    for (status, body) in [
        (500, r#"{"error":"boom"}"#),
        (503, r#"{"error":"overloaded"}"#),
        (401, r#"{"error":"unauthorized"}"#),
        (400, r#"{"error":"bad_request"}"#),
        (200, "not json"),
        (
            200,
            r#"{"key":"AAAA","file_size":65536,"interval_count":64,"ttl_secs":60}"#,
        ),
        (200, &*wrong_size),
        (200, &*zero_ttl),
    ] {
        let gw = fixture(answering(status, body)).build();
        let mut alice = Client::open(&gw, "alice");
        expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "agent");
        assert_eq!(
            metric(&gw, "autoid_agent_stream_failures"),
            1,
            "{status} {body}"
        );
    }
}

#[test]
fn an_epoch_the_agent_does_not_know_is_the_uniform_401() {
    let gw = fixture(answering(404, r#"{"error":"unknown_epoch"}"#)).build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 401, "unknown_epoch");
    // An epoch the filter does not list is refused without a callout.
    let seen = Arc::new(Seen::default());
    let gw = fixture(agent(seen.clone(), 300)).build();
    let mut other = Client::with_file(other_epoch().issue("alice").unwrap(), now(&gw));
    expect_denied(&gw, other.get(&gw, "payments", PATH), 401, "unknown_epoch");
    assert_eq!(seen.streams.load(Ordering::SeqCst), 0);
}

/// A request under `client`'s session whose payload names `subject` (with a zero digest).
fn naming<'g>(
    client: &mut Client,
    gw: &'g autoid_host_tests::Gateway,
    subject: &str,
) -> autoid_host_tests::RequestBuilder<'g> {
    let raw = client.payload(now(gw), subject).to_bytes();
    let proof = client.seal_raw(PATH, &raw);
    gw.request("GET", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .worker(0)
}

#[test]
fn stream_callouts_spend_the_cold_path_budget() {
    // One source and a budget of 2: alice's session unwrap takes 1 (the stream her new session
    // needs comes with it).
    let seen = Arc::new(Seen::default());
    let gw = fixture(agent(seen.clone(), 300))
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1, "burst": 2,
                    "per_source_unwraps_per_second": 1, "per_source_burst": 2 }),
        )
        .build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 1);
    // Her session, naming other subjects (anyone can open a session): each new name is a
    // callout until the budget is spent, then 401 rate_limited with no callout.
    expect_denied(&gw, naming(&mut alice, &gw, "s1"), 401, "entropy");
    expect_denied(&gw, naming(&mut alice, &gw, "s2"), 401, "rate_limited");
    expect_denied(&gw, naming(&mut alice, &gw, "s3"), 401, "rate_limited");
    assert_eq!(*seen.subjects.lock().unwrap(), ["alice", "s1"]);
    assert_eq!(metric(&gw, "autoid_agent_stream_callouts"), 2);
    // Warm requests (session and stream cached) need no budget.
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    // The budget refills with time, one token a second.
    gw.clock().advance(Duration::from_secs(1));
    expect_denied(&gw, naming(&mut alice, &gw, "s4"), 401, "entropy");
    expect_denied(&gw, naming(&mut alice, &gw, "s5"), 401, "rate_limited");
    assert_eq!(seen.streams.load(Ordering::SeqCst), 3);
}

#[test]
fn keys_and_epochs_both_at_the_agent() {
    let seen = Arc::new(Seen::default());
    let script = agent(seen.clone(), 300);
    let fx = fixture(script.clone())
        .agent_route("/v1/sessions", script)
        .with("/keys", json!([{ "kid": KID }]));
    let text = fx.config.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains(&epoch_secret()));
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", PATH).worker(0).send();
    assert_eq!(values(upstream(&out), "x-autoid-subject"), ["alice"]);
    assert_eq!(
        (
            seen.sessions.load(Ordering::SeqCst),
            seen.streams.load(Ordering::SeqCst)
        ),
        (1, 1),
        "the session first, then the stream"
    );
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(seen.streams.load(Ordering::SeqCst), 1);
}

#[test]
fn an_epoch_secret_in_the_filter_configuration_is_refused() {
    let err = Fixture::static_groups()
        .with(
            "/epochs",
            json!([serde_json::from_str::<Value>(&epoch().to_json()).unwrap()]),
        )
        .try_build()
        .unwrap_err();
    let text = format!("{err}: {err:?}");
    assert!(
        text.contains("epochs[0].secret: not accepted: the agent holds"),
        "{text}"
    );
    assert!(!text.contains(&epoch_secret()), "{text}");
}
