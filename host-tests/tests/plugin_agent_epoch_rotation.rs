//! Epoch rotation at the agent: with `agent.any_epoch` a proof naming an epoch id the filter does
//! not list goes to the agent for the subject's stream (the same cold-path budget), and the
//! epoch's public parameters come with the agent's reply; a stream is never kept past the epoch's
//! `expires_at`. The agent here is scripted; e2e/tests/rotation.rs rotates an epoch at the real
//! agent behind real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoid_host_tests::{CalloutReply, Cluster};
use autoid_protocol::agent_api::{StreamReply, StreamRequest};
use autoid_protocol::entropy::Epoch;
use common::autoid::*;
use serde_json::json;

const PATH: &str = "/v1/payments";
const AGENT: &str = "autoid_agent";

/// A new epoch the filter's configuration does not list, with other parameters than the
/// fixture's (8 KiB files, 32 intervals): the filter can only know them from the agent.
fn new_epoch() -> Epoch {
    Epoch::new("e-new", [0x23; 32], 8192, 32).unwrap()
}

/// The epochs the scripted agent serves, each with its `expires_at`; answers it counted.
#[derive(Default)]
struct Agent {
    epochs: Mutex<Vec<(Epoch, Option<u64>)>>,
    streams: AtomicUsize,
}

fn cluster(agent: Arc<Agent>) -> Cluster {
    Cluster::Scripted(Arc::new(move |req| {
        assert_eq!(req.header(":path"), Some("/v1/streams"));
        agent.streams.fetch_add(1, Ordering::SeqCst);
        let asked: StreamRequest = serde_json::from_slice(&req.body).unwrap();
        let epochs = agent.epochs.lock().unwrap();
        let Some((e, expires_at)) = epochs.iter().find(|(e, _)| e.id() == asked.epoch) else {
            return CalloutReply::new(404).body(r#"{"error":"unknown_epoch"}"#);
        };
        CalloutReply::new(200).body(
            serde_json::to_vec(&StreamReply {
                key: e.subject_key(&asked.subject).to_base64(),
                file_size: e.file_size(),
                interval_count: e.interval_count(),
                ttl_secs: 300,
                expires_at: *expires_at,
            })
            .unwrap(),
        )
    }))
}

/// The fixture with the shared epoch listed id-only and the agent at `agent`; `any_epoch` as
/// given.
fn fixture(agent: Arc<Agent>, any_epoch: bool) -> Fixture {
    let e = epoch();
    Fixture::static_groups()
        .with(
            "/epochs",
            json!([{ "id": e.id(), "file_size": e.file_size(), "interval_count": e.interval_count() }]),
        )
        .with(
            "/agent",
            json!({ "cluster": AGENT, "timeout_ms": 500, "any_epoch": any_epoch }),
        )
        .agent_route("/v1/streams", cluster(agent))
}

fn serving(epochs: Vec<(Epoch, Option<u64>)>) -> Arc<Agent> {
    Arc::new(Agent {
        epochs: Mutex::new(epochs),
        streams: AtomicUsize::new(0),
    })
}

#[test]
fn an_unlisted_epoch_works_through_the_agent_with_any_epoch_and_is_401_without() {
    let agent = serving(vec![(epoch(), None), (new_epoch(), None)]);
    let gw = fixture(agent.clone(), true).build();
    let mut alice = Client::with_file(new_epoch().issue("alice").unwrap(), now(&gw));
    let out = alice.get(&gw, "payments", PATH).worker(0).send();
    assert_eq!(values(upstream(&out), "x-autoid-subject"), ["alice"]);
    assert_eq!(agent.streams.load(Ordering::SeqCst), 1);
    // Cached with the parameters the agent sent: no callout for the next proofs.
    for _ in 0..3 {
        upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    }
    assert_eq!(agent.streams.load(Ordering::SeqCst), 1);
    // The listed epoch still works beside it.
    let mut carol = Client::open(&gw, "carol");
    upstream(&carol.get(&gw, "payments", PATH).worker(0).send());
    // A file of the wrong subject under the new epoch still fails after the callout.
    let mut mallory = Client::with_file(new_epoch().issue("bob").unwrap(), now(&gw));
    let raw = mallory.payload(now(&gw), "carol").to_bytes();
    let proof = mallory.seal_raw(PATH, &raw);
    let req = gw
        .request("GET", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, &proof)
        .worker(0);
    expect_denied(&gw, req, 401, "entropy");
    // An epoch the agent does not know either: its 404 is the uniform 401.
    let mut other = Client::with_file(other_epoch().issue("alice").unwrap(), now(&gw));
    expect_denied(&gw, other.get(&gw, "payments", PATH), 401, "unknown_epoch");

    // Without any_epoch the unlisted epoch is refused with no callout.
    let agent = serving(vec![(epoch(), None), (new_epoch(), None)]);
    let gw = fixture(agent.clone(), false).build();
    let mut alice = Client::with_file(new_epoch().issue("alice").unwrap(), now(&gw));
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 401, "unknown_epoch");
    assert_eq!(agent.streams.load(Ordering::SeqCst), 0);
}

#[test]
fn unlisted_epochs_spend_the_cold_path_budget() {
    let agent = serving(vec![(new_epoch(), None)]);
    let gw = fixture(agent.clone(), true)
        .with(
            "/cold_path",
            json!({ "unwraps_per_second": 1, "burst": 2,
                    "per_source_unwraps_per_second": 1, "per_source_burst": 2 }),
        )
        .build();
    // One token for the session unwrap (the stream the new session needs comes with it), one
    // for another subject's stream; a third subject finds none.
    let mut alice = Client::with_file(new_epoch().issue("alice").unwrap(), now(&gw));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    let mut naming = |subject: &str| {
        let mut raw = alice.payload(now(&gw), subject);
        raw.epoch = new_epoch().id().to_owned();
        let proof = alice.seal_raw(PATH, &raw.to_bytes());
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .worker(0)
    };
    expect_denied(&gw, naming("bob"), 401, "entropy");
    expect_denied(&gw, naming("carol"), 401, "rate_limited");
    assert_eq!(agent.streams.load(Ordering::SeqCst), 2);
}

#[test]
fn a_stream_is_dropped_at_its_epochs_expires_at() {
    let agent = serving(vec![(epoch(), None), (new_epoch(), None)]);
    let gw = fixture(agent.clone(), true).build();
    let retires = now(&gw) + 20;
    agent.epochs.lock().unwrap()[0].1 = Some(retires);
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    gw.clock().advance(Duration::from_secs(19));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    assert_eq!(agent.streams.load(Ordering::SeqCst), 1, "still cached");
    // The epoch retires at the agent: the cached stream goes at expires_at (well before the
    // agent's ttl_secs of 300), and the agent's refusal is the uniform 401.
    agent.epochs.lock().unwrap().remove(0);
    gw.clock().advance(Duration::from_secs(1));
    expect_denied(
        &gw,
        alice.get(&gw, "payments", PATH).worker(0),
        401,
        "unknown_epoch",
    );
    assert_eq!(agent.streams.load(Ordering::SeqCst), 2, "asked again");
    // The new epoch's stream has its own, later, expiry.
    let mut alice = Client::with_file(new_epoch().issue("alice").unwrap(), now(&gw));
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
}

#[test]
fn an_unusable_reply_for_an_unlisted_epoch_is_503() {
    let key = new_epoch().subject_key("alice").to_base64();
    let too_small =
        format!(r#"{{"key":"{key}","file_size":100,"interval_count":32,"ttl_secs":60}}"#).leak();
    let too_many =
        format!(r#"{{"key":"{key}","file_size":8192,"interval_count":9999,"ttl_secs":60}}"#).leak();
    let retired = format!(
        r#"{{"key":"{key}","file_size":8192,"interval_count":32,"ttl_secs":60,"expires_at":1}}"#
    )
    .leak();
    for body in [&*too_small, &*too_many, &*retired] {
        let gw = Fixture::static_groups()
            .with(
                "/agent",
                json!({ "cluster": AGENT, "timeout_ms": 500, "any_epoch": true }),
            )
            .agent_route(
                "/v1/streams",
                Cluster::Scripted(Arc::new(move |_| CalloutReply::new(200).body(body))),
            )
            .build();
        let mut alice = Client::with_file(new_epoch().issue("alice").unwrap(), now(&gw));
        expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "agent");
        assert_eq!(metric(&gw, "autoid_agent_stream_failures"), 1, "{body}");
    }
}
