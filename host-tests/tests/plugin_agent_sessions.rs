//! Sessions unwrapped by the agent: the filter's configuration names the key id but holds no
//! private key; on a session-cache miss the filter pauses, asks the agent (`POST /v1/sessions`,
//! the shared `SessionRequest`/`SessionReply` types), caches the answer and verifies again. The
//! real agent answers in-process behind a counting script; faults (timeouts, a key retiring) are
//! scripted; e2e/tests/harness_directory.rs runs the agent's binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoid_host_tests::{CalloutReply, Cluster, Outcome};
use autoid_protocol::agent_api::{SessionReply, SessionRequest};
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::keys::GatewayKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::autoid::*;
use serde_json::json;

const PATH: &str = "/v1/payments";
const AGENT: &str = "autoid_agent";
const AGENT_TOKEN: &str = "agent-token-0123456789abcdef";

/// The real agent (the fixture's key), behind a script that checks each session callout and
/// counts it.
fn agent(calls: Arc<AtomicUsize>) -> Cluster {
    let plane = real_agent(None);
    Cluster::Scripted(Arc::new(move |req| {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(req.header(":method"), Some("POST"));
        assert_eq!(req.header(":path"), Some("/v1/sessions"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {AGENT_TOKEN}").as_str())
        );
        plane.answer(req)
    }))
}

/// The static-groups fixture with the key held by the agent at `cluster`.
fn fixture(cluster: Cluster) -> Fixture {
    Fixture::static_groups()
        .with("/keys", json!([{ "kid": KID }]))
        .with(
            "/agent",
            json!({ "cluster": AGENT, "token": AGENT_TOKEN, "timeout_ms": 500 }),
        )
        .agent_route("/v1/sessions", cluster)
}

#[test]
fn the_filter_holds_no_private_key_and_the_agent_unwraps_each_session_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fx = fixture(agent(calls.clone()));
    assert!(
        !fx.config.to_string().contains("PRIVATE KEY"),
        "no private key in the filter's configuration"
    );
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", PATH).worker(0).send();
    assert_eq!(values(upstream(&out), "x-autoid-subject"), ["alice"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(metric(&gw, "autoid_agent_session_callouts"), 1);
    // The session is cached (shared data): later proofs of the session, on either worker, do
    // not ask again.
    for worker in [0, 1, 0, 1] {
        upstream(&alice.get(&gw, "payments", PATH).worker(worker).send());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_body_bound_proof_waits_for_the_agent_and_the_body() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = fixture(agent(calls.clone())).build();
    let mut alice = Client::open(&gw, "alice");
    let body = br#"{"amount":1}"#;
    let proof = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(body));
    let out = gw
        .request("POST", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .body_chunks([body[..4].to_vec(), body[4..].to_vec()])
        .trailer("x-t", "1")
        .send();
    let Outcome::Upstream { body: sent, .. } = &out else {
        panic!("{out:?}");
    };
    assert_eq!(sent, body);
    let other = alice.proof_for("POST", AUTHORITY, PATH, now(&gw), Some(body));
    expect_denied(
        &gw,
        gw.request("POST", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &other)
            .body(b"{}".to_vec()),
        401,
        "body",
    );
}

#[test]
fn junk_is_401_and_an_agent_that_does_not_answer_is_503() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = fixture(agent(calls)).build();
    let mut alice = Client::open(&gw, "alice");
    let proof = alice.proof(&gw, PATH);
    let junk = tamper(&proof, 2, 7);
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &junk),
        401,
        "unwrap",
    );

    let gw = fixture(Cluster::Timeout).build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "agent");
    assert_eq!(metric(&gw, "autoid_agent_session_failures"), 1);
}

#[test]
fn a_private_key_in_the_filter_configuration_is_refused() {
    let err = Fixture::static_groups()
        .with("/keys", json!([{ "kid": KID, "private_key_pem": KEY_PEM }]))
        .try_build()
        .unwrap_err();
    let text = format!("{err}: {err:?}");
    assert!(
        text.contains("keys[0].private_key_pem: not accepted: the agent holds"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

/// An agent in the middle of a key rotation: it serves the fixture key, each 200 says the key
/// retires at `retire_at`, and once `retired` is set the key is unknown (404), as the real agent
/// answers past a key's `not_after`.
fn retiring_agent(retire_at: u64, retired: Arc<AtomicUsize>, calls: Arc<AtomicUsize>) -> Cluster {
    let key = GatewayKey::from_pem(KID, KEY_PEM).unwrap();
    Cluster::Scripted(Arc::new(move |req| {
        calls.fetch_add(1, Ordering::SeqCst);
        let asked: SessionRequest = serde_json::from_slice(&req.body).unwrap();
        if asked.kid != KID || retired.load(Ordering::SeqCst) > 0 {
            return CalloutReply::new(404).body(r#"{"error":"unknown_key"}"#);
        }
        let wrapped = URL_SAFE_NO_PAD.decode(asked.wrapped).unwrap();
        let session = key.unwrap_session(&wrapped).unwrap();
        CalloutReply::new(200).body(
            serde_json::to_vec(&SessionReply {
                session: URL_SAFE_NO_PAD.encode(session.to_bytes()),
                expires_at: Some(retire_at),
            })
            .unwrap(),
        )
    }))
}

#[test]
fn with_any_key_a_key_id_the_filter_never_heard_of_goes_to_the_agent_and_its_sessions_end_when_it_retires()
 {
    let calls = Arc::new(AtomicUsize::new(0));
    let retired = Arc::new(AtomicUsize::new(0));
    // Built once to read the harness clock, then again with the agent that knows it.
    let start = now(&fixture(Cluster::Timeout).build());
    let retire_at = start + 100;
    let fx = Fixture::static_groups()
        .with("/keys", json!([]))
        .with(
            "/agent",
            json!({ "cluster": AGENT, "token": AGENT_TOKEN, "timeout_ms": 500, "any_key": true }),
        )
        .agent_route(
            "/v1/sessions",
            retiring_agent(retire_at, retired.clone(), calls.clone()),
        );
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    upstream(&alice.get(&gw, "payments", PATH).worker(1).send());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "unwrapped once, then cached"
    );

    // Past the key's retirement the cached session is gone: the filter asks again, and the
    // agent, which no longer serves the key, refuses it.
    gw.clock().advance(std::time::Duration::from_secs(
        retire_at.saturating_sub(now(&gw)) + 1,
    ));
    retired.store(1, Ordering::SeqCst);
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 401, "unknown_key");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn without_any_key_an_unlisted_key_id_is_refused_without_a_callout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = Fixture::static_groups()
        .with("/keys", json!([{ "kid": "some-other-key" }]))
        .with(
            "/agent",
            json!({ "cluster": AGENT, "token": AGENT_TOKEN, "timeout_ms": 500 }),
        )
        .agent_route("/v1/sessions", agent(calls.clone()))
        .build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 401, "unknown_key");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_session_the_agent_unwraps_is_judged_as_a_cached_one_expired_is_the_uniform_401() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = fixture(agent(calls.clone())).build();
    let t = now(&gw);
    // Past its lifetime, and issued further ahead than the skew: the agent unwraps both (it
    // does not judge ages), the filter refuses both as it would a cached session.
    for issued_at in [t - 3601, t + 61] {
        let mut old = Client::with_file(epoch().issue("alice").unwrap(), issued_at);
        expect_denied(&gw, old.get(&gw, "payments", PATH), 401, "session_expired");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(metric(&gw, "autoid_agent_session_failures"), 0);
}

#[test]
fn junk_sessions_under_the_public_key_do_not_evict_a_working_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    // A small cache, so that cached junk would evict: 4 shared slots, 2 per worker.
    let gw = fixture(agent(calls.clone()))
        .with(
            "/session_cache",
            json!({ "max_entries": 4, "local_max_entries": 2 }),
        )
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1000, "burst": 1000,
                    "per_source_unwraps_per_second": 1000, "per_source_burst": 1000 }),
        )
        .build();
    let mut alice = Client::open(&gw, "alice");
    for worker in [0, 1] {
        upstream(&alice.get(&gw, "payments", PATH).worker(worker).send());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Anyone can wrap a session with the public key and seal anything under it; without the
    // entropy file the digest is wrong. Each such session is unwrapped (the agent is asked),
    // refused, and never cached.
    let junk = 32;
    for n in 0..junk {
        let zeros = EntropyFile::new(EPOCH, "mallory", 64, vec![0u8; 64 << 10]);
        let mut mallory = Client::with_file(zeros, now(&gw));
        expect_denied(
            &gw,
            mallory.get(&gw, "payments", PATH).worker(n % 2),
            401,
            "entropy",
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1 + junk);
    // Alice's session is still cached on both workers: no new unwrap.
    for worker in [0, 1, 0, 1] {
        upstream(&alice.get(&gw, "payments", PATH).worker(worker).send());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1 + junk);
    // A junk session is asked of the agent again each time: it was never kept.
    let zeros = EntropyFile::new(EPOCH, "mallory", 64, vec![0u8; 64 << 10]);
    let mut mallory = Client::with_file(zeros, now(&gw));
    for _ in 0..2 {
        expect_denied(&gw, mallory.get(&gw, "payments", PATH), 401, "entropy");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3 + junk);
}
