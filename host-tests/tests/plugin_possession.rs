//! Protocol v3's possession ticket (docs/PROTOCOL.md §12): a new session's proof shows it holds
//! the entropy file before the gateway spends an RSA unwrap on it. A flood of junk sessions from
//! many sources spends no RSA when it carries tickets, and, when it does not (v1, v2), only the
//! budget of sessions without one: v3 clients keep theirs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use autoid_host_tests::Cluster;
use autoid_protocol::agent_api::SessionRequest;
use autoid_protocol::client::Form;
use autoid_protocol::entropy::EntropyFile;
use autoid_protocol::header::Version;
use common::autoid::*;
use serde_json::json;

const PATH: &str = "/v1/payments";

/// Someone with the public key and no entropy file: a new session each time.
fn mallory(gw: &autoid_host_tests::Gateway) -> Client {
    let zeros = EntropyFile::new(EPOCH, "mallory", 64, vec![0u8; 64 << 10]);
    Client::with_file(zeros, now(gw))
}

fn from<'g>(
    gw: &'g autoid_host_tests::Gateway,
    proof: &str,
    source: &str,
) -> autoid_host_tests::RequestBuilder<'g> {
    gw.request("GET", AUTHORITY, PATH)
        .route("payments")
        .header(PROOF, proof)
        .property(&["source", "address"], source)
        .worker(0)
}

/// 256 source addresses, 127.0.x.y.
fn source(i: usize) -> String {
    format!(
        "127.0.{}.{}:{}",
        (i / 256) % 256,
        i % 256,
        20000 + i % 40000
    )
}

#[test]
fn junk_tickets_from_many_sources_spend_no_rsa_and_v3_sessions_keep_their_budget() {
    // A small budget for sessions without a ticket, as a flood would leave it.
    let (gw, agent) = Fixture::static_groups()
        .with("/cold_path", json!({ "unwraps_per_second": 1, "burst": 2 }))
        .build_with_agent();
    // v3 junk: wrapped with the public key, a ticket made from a file of zeros. The filter does
    // not hold mallory's stream: the agent checks each ticket, before any RSA, and refuses it.
    for i in 0..256 {
        let p = mallory(&gw).proof_in(&gw, PATH, Version::V3, Form::Full);
        expect_denied(&gw, from(&gw, &p, &source(i)), 401, "entropy");
    }
    assert_eq!(
        agent.metric("autoid_agent_rsa_unwraps_total"),
        0,
        "no RSA for a junk ticket"
    );
    assert_eq!(agent.metric("autoid_agent_possession_refused_total"), 256);
    // They spent the checked lane's budget, not the v1/v2 one.
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 256);
    // v2 junk from as many sources spends the v1/v2 budget (2), then is rate limited.
    for i in 0..256 {
        let p = mallory(&gw).proof_in(&gw, PATH, Version::V2, Form::Full);
        let out = from(&gw, &p, &source(i)).send();
        assert_eq!(out.local_status(), Some(401), "{out:?}");
    }
    assert_eq!(metric(&gw, "autoid_rsa_unwraps"), 256 + 2);
    assert_eq!(agent.metric("autoid_agent_rsa_unwraps_total"), 2);
    assert!(metric(&gw, "autoid_denied_rate_limited") >= 250);
    // In the same instant: a new v3 session opens; a new v2 session is rate limited.
    let mut alice = Client::open(&gw, "alice");
    let p = alice.proof_in(&gw, PATH, Version::V3, Form::Full);
    upstream(&from(&gw, &p, "127.0.9.9:4000").send());
    let p = alice.proof_in(&gw, PATH, Version::V3, Form::Compact);
    upstream(&from(&gw, &p, "127.0.9.9:4000").send());
    let mut bob = Client::open(&gw, "bob");
    let p = bob.proof_in(&gw, PATH, Version::V2, Form::Full);
    expect_denied(&gw, from(&gw, &p, "127.0.9.10:4000"), 401, "rate_limited");
}

#[test]
fn a_ticket_must_say_what_the_sealed_payload_says() {
    let gw = Fixture::static_groups().build();
    let mut alice = Client::open(&gw, "alice");
    let good = alice.proof_in(&gw, PATH, Version::V3, Form::Full);
    let other = alice.proof_in(&gw, PATH, Version::V3, Form::Full);
    // The ticket of another proof of the same session: right for its own nonce, so it passes the
    // check before the unwrap, but the payload's nonce differs.
    let mut parts = parts(&good);
    parts[4] = common::autoid::parts(&other)[4].clone();
    let swapped = parts.join(".");
    let gw2 = Fixture::static_groups().build();
    expect_denied(
        &gw2,
        gw2.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &swapped),
        401,
        "payload",
    );
    // A v3 full form without its ticket is malformed.
    let cut = parts[..4].join(".");
    expect_denied(
        &gw,
        gw.request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &cut),
        401,
        "malformed",
    );
}

/// The real agent (the fixture's key and epoch), behind a script recording each session
/// request's ticket fields.
fn agent(asked: Arc<std::sync::Mutex<Vec<SessionRequest>>>) -> Cluster {
    let plane = real_agent(None);
    Cluster::Scripted(Arc::new(move |req| {
        let body: SessionRequest = serde_json::from_slice(&req.body).unwrap();
        asked.lock().unwrap().push(body);
        plane.answer(req)
    }))
}

#[test]
fn the_filter_checks_the_ticket_when_it_holds_the_subjects_stream_and_says_so() {
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gw = Fixture::static_groups()
        .agent_route("/v1/sessions", agent(asked.clone()))
        .build();
    // Alice's first session: her stream is not at hand yet, so the agent checks the ticket.
    let mut alice = Client::open(&gw, "alice");
    let p = alice.proof_in(&gw, PATH, Version::V3, Form::Full);
    upstream(&from(&gw, &p, "127.0.9.9:4000").send());
    assert_eq!(asked.lock().unwrap().len(), 1);
    assert!(!asked.lock().unwrap()[0].ticket_checked);
    // Her stream is now in the worker's cache: a junk ticket naming her is refused there, the
    // agent never asked.
    for i in 0..16 {
        let zeros = EntropyFile::new(EPOCH, "alice", 64, vec![0u8; 64 << 10]);
        let p = Client::with_file(zeros, now(&gw)).proof_in(&gw, PATH, Version::V3, Form::Full);
        expect_denied(&gw, from(&gw, &p, &source(i)), 401, "entropy");
    }
    assert_eq!(asked.lock().unwrap().len(), 1);
    // A good new session goes to the agent marked as checked, in the checked lane.
    let mut again = alice.reopen(&gw);
    let p = again.proof_in(&gw, PATH, Version::V3, Form::Full);
    upstream(&from(&gw, &p, "127.0.9.9:4000").send());
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 2);
    assert!(asked[1].ticket_checked);
}
