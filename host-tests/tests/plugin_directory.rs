//! Groups from the agent: scripted replies, the shared-data decision cache with its
//! positive and negative TTLs, stale-if-error, failures that fail closed, and what the callout
//! carries (cluster, authority, bearer token, percent-encoded subject).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoid_host_tests::{CalloutRequest, CalloutResult, Cluster, Gateway};
use common::autoid::{
    AGENT_AUTHORITY, AUTHORITY, CLUSTER, Client, Fixture, PAYMENTS_AUTH, PROOF, TOKEN,
    callout_subject, callouts_to, directory_reply, expect_denied, metric, now, upstream, values,
};
use serde_json::json;

const PATH: &str = "/v1/payments";

/// What the scripted agent answers for a subject.
#[derive(Debug, Clone)]
enum Answer {
    Groups(Vec<&'static str>),
    NotFound,
    Status(u16),
    Body(String),
}

/// A scripted agent whose answers the test changes as it goes.
#[derive(Debug, Clone, Default)]
struct ScriptedAgent {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
}

impl ScriptedAgent {
    fn set(&self, subject: &str, answer: Answer) {
        self.answers
            .lock()
            .unwrap()
            .insert(subject.to_owned(), answer);
    }

    fn cluster(&self) -> Cluster {
        let answers = Arc::clone(&self.answers);
        Cluster::Scripted(Arc::new(move |req: &CalloutRequest| {
            let subject = callout_subject(req);
            let answer = answers
                .lock()
                .unwrap()
                .get(&subject)
                .cloned()
                .unwrap_or(Answer::NotFound);
            match answer {
                Answer::Groups(groups) => directory_reply(&subject, Some(&groups)),
                Answer::NotFound => directory_reply(&subject, None),
                Answer::Status(status) => {
                    autoid_host_tests::CalloutReply::new(status).body(r#"{"error":"internal"}"#)
                }
                Answer::Body(body) => autoid_host_tests::CalloutReply::new(200).body(body),
            }
        }))
    }
}

fn setup() -> (Gateway, ScriptedAgent) {
    let agent = ScriptedAgent::default();
    agent.set("alice", Answer::Groups(vec!["payments", "readers"]));
    agent.set("bob", Answer::Groups(vec!["readers"]));
    let gw = Fixture::directory(agent.cluster()).build();
    (gw, agent)
}

/// The directory callouts (the agent's key-plane callouts, to another cluster, are not counted).
fn callouts(gw: &Gateway) -> usize {
    callouts_to(gw, CLUSTER).len()
}

/// The reference encoding: every byte but `A-Za-z0-9-._~` as `%XX`.
fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn an_allowed_subject_passes_with_the_directory_groups() {
    let (gw, _) = setup();
    let mut alice = Client::open(&gw, "alice");
    let out = alice.get(&gw, "payments", PATH).send();
    let headers = upstream(&out);
    assert_eq!(values(headers, "authorization"), [PAYMENTS_AUTH]);
    assert_eq!(values(headers, "x-autoid-groups"), ["payments,readers"]);
    assert_eq!(callouts(&gw), 1);
    assert_eq!(metric(&gw, "autoid_directory_callouts"), 1);
    assert_eq!(metric(&gw, "autoid_directory_failures"), 0);
}

#[test]
fn the_callout_names_the_configured_cluster_authority_token_and_subject() {
    let (gw, _) = setup();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    let calls = callouts_to(&gw, CLUSTER);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, CLUSTER);
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(call.header(":authority"), Some(AGENT_AUTHORITY));
    assert_eq!(call.header(":path"), Some("/v1/groups?subject=alice"));
    assert_eq!(
        call.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(call.timeout_ms, 250);
    assert!(call.body.is_empty());
    assert_eq!(call.result, Some(CalloutResult::Replied { status: 200 }));
    // The client's proof never travels to the agent.
    assert!(call.header("x-autoid-proof").is_none());
}

#[test]
fn the_authority_defaults_to_the_cluster_name() {
    let agent = ScriptedAgent::default();
    agent.set("alice", Answer::Groups(vec!["payments"]));
    let mut fx = Fixture::directory(agent.cluster());
    common::autoid::remove(&mut fx.config, "/directory/authority");
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(
        callouts_to(&gw, CLUSTER)[0].header(":authority"),
        Some(CLUSTER)
    );
}

#[test]
fn without_a_token_the_callout_carries_no_authorization_header() {
    // An agent on a unix socket (Envoy's `pipe` cluster): its file permissions authenticate
    // Envoy, and no token is in the filter's configuration.
    let agent = ScriptedAgent::default();
    agent.set("alice", Answer::Groups(vec!["payments"]));
    let mut fx = Fixture::directory(agent.cluster());
    common::autoid::remove(&mut fx.config, "/directory/token");
    let gw = fx.build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    let calls = callouts_to(&gw, CLUSTER);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header(":path"), Some("/v1/groups?subject=alice"));
    assert!(calls[0].header("authorization").is_none(), "{:?}", calls[0]);
}

#[test]
fn subjects_are_percent_encoded_and_metacharacters_never_reach_the_bridge() {
    // The canonical grammar keeps LDAP metacharacters out of subjects altogether (a proof naming
    // one is refused before any callout); what it allows is still percent-encoded in the query.
    let agent = ScriptedAgent::default();
    let subjects = ["svc@ci.example", "a.b-c_d9"];
    for s in subjects {
        agent.set(s, Answer::Groups(vec!["payments"]));
    }
    let gw = Fixture::directory(agent.cluster()).build();
    for (i, subject) in subjects.iter().enumerate() {
        let mut client = Client::open(&gw, subject);
        let out = client.get(&gw, "payments", PATH).send();
        assert_eq!(values(upstream(&out), "x-autoid-subject"), [*subject]);
        let call = &callouts_to(&gw, CLUSTER)[i];
        let path = call.header(":path").unwrap();
        assert_eq!(path, format!("/v1/groups?subject={}", encode(subject)));
        let value = path.split_once("?subject=").unwrap().1;
        assert!(!value.contains(['@', '&', '=']), "{path}");
        assert_eq!(common::autoid::percent_decode(value), *subject);
    }
    assert_eq!(encode(subjects[0]), "svc%40ci.example");
    let mut alice = Client::open(&gw, "alice");
    let before = callouts_to(&gw, CLUSTER).len();
    for subject in [
        "*)(uid=*))(|(uid=*",
        "cn=admin,dc=example",
        "al ice&subject=root",
    ] {
        let bytes = alice.payload(now(&gw), subject).to_bytes();
        let proof = alice.seal_raw(PATH, &bytes);
        let out = gw
            .request("GET", AUTHORITY, PATH)
            .route("payments")
            .header(PROOF, &proof)
            .send();
        assert_eq!(out.local_status(), Some(401), "{subject:?}: {out:?}");
    }
    assert_eq!(
        callouts_to(&gw, CLUSTER).len(),
        before,
        "no callout for a non-canonical subject"
    );
}

#[test]
fn a_subject_the_directory_does_not_know_is_forbidden() {
    let (gw, _) = setup();
    let mut dave = Client::open(&gw, "dave");
    expect_denied(&gw, dave.get(&gw, "payments", PATH), 403, "unknown_subject");
}

#[test]
fn a_subject_in_the_wrong_groups_is_forbidden() {
    let (gw, _) = setup();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    upstream(&bob.get(&gw, "reports", "/v1/reports").send());
    assert_eq!(callouts(&gw), 1, "the denial's decision was cached too");
}

#[test]
fn the_second_request_is_a_cache_hit_on_any_worker() {
    let (gw, _) = setup();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    upstream(&alice.get(&gw, "payments", PATH).worker(0).send());
    upstream(&alice.get(&gw, "reports", "/v1/reports").worker(1).send());
    assert_eq!(callouts(&gw), 1);
    assert_eq!(metric(&gw, "autoid_directory_callouts"), 1);
    assert_eq!(metric(&gw, "autoid_directory_cache_hits"), 2);
}

#[test]
fn a_positive_decision_expires_after_its_ttl() {
    let (gw, _) = setup();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    gw.clock().advance(Duration::from_secs(59));
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(callouts(&gw), 1);
    gw.clock().advance(Duration::from_secs(1));
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(callouts(&gw), 2);
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(callouts(&gw), 2, "the refreshed decision is cached again");
}

#[test]
fn a_negative_decision_is_cached_for_the_negative_ttl() {
    let (gw, agent) = setup();
    let mut dave = Client::open(&gw, "dave");
    expect_denied(&gw, dave.get(&gw, "payments", PATH), 403, "unknown_subject");
    gw.clock().advance(Duration::from_secs(9));
    agent.set("dave", Answer::Groups(vec!["payments"]));
    expect_denied(&gw, dave.get(&gw, "payments", PATH), 403, "unknown_subject");
    assert_eq!(callouts(&gw), 1);
    gw.clock().advance(Duration::from_secs(1));
    upstream(&dave.get(&gw, "payments", PATH).send());
    assert_eq!(callouts(&gw), 2);
}

#[test]
fn a_group_change_is_visible_after_the_ttl() {
    let (gw, agent) = setup();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    agent.set("bob", Answer::Groups(vec!["readers", "payments"]));
    gw.clock().advance(Duration::from_secs(30));
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    gw.clock().advance(Duration::from_secs(30));
    let out = bob.get(&gw, "payments", PATH).send();
    assert_eq!(
        values(upstream(&out), "x-autoid-groups"),
        ["readers,payments"]
    );
    // And a removal, the same way.
    agent.set("bob", Answer::Groups(vec!["readers"]));
    gw.clock().advance(Duration::from_secs(60));
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    assert_eq!(callouts(&gw), 3);
}

#[test]
fn a_bridge_timeout_fails_closed() {
    let gw = Fixture::directory(Cluster::Timeout).build();
    let mut alice = Client::open(&gw, "alice");
    let out = expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "directory");
    assert_eq!(out.header("retry-after"), Some("1"));
    assert_eq!(metric(&gw, "autoid_directory_failures"), 1);
    let calls = callouts_to(&gw, CLUSTER);
    assert_eq!(calls.len(), 1);
    assert!(matches!(
        calls[0].result,
        Some(CalloutResult::Failed { .. })
    ));
    assert_eq!(calls[0].timeout_ms, 250);
    // Failures are not cached: the next request asks again.
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "directory");
    assert_eq!(callouts(&gw), 2);
}

#[test]
fn bad_bridge_replies_fail_closed() {
    let huge = format!(
        r#"{{"subject":"alice","found":true,"groups":["payments"],"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    for answer in [
        Answer::Status(500),
        Answer::Status(401),
        Answer::Status(404),
        Answer::Body("not json".to_owned()),
        Answer::Body(String::new()),
        Answer::Body(r#"{"subject":"alice","found":true}"#.to_owned()),
        Answer::Body(r#"{"subject":"alice","found":"yes","groups":[]}"#.to_owned()),
        // Lying: not found, yet groups; or an answer about someone else.
        Answer::Body(r#"{"subject":"alice","found":false,"groups":["payments"]}"#.to_owned()),
        Answer::Body(r#"{"subject":"carol","found":true,"groups":["payments"]}"#.to_owned()),
        Answer::Body(r#"{"subject":"ALICE","found":true,"groups":["payments"]}"#.to_owned()),
        Answer::Body(huge),
    ] {
        let (gw, agent) = setup();
        agent.set("alice", answer.clone());
        let mut alice = Client::open(&gw, "alice");
        let out = alice
            .get(&gw, "payments", PATH)
            .header("x-request-id", "ignored-by-expect")
            .send();
        assert_eq!(out.local_status(), Some(503), "{answer:?}: {out:?}");
        let line = common::autoid::deny_lines(&gw).pop().unwrap().message;
        assert!(line.contains("reason=directory"), "{answer:?}: {line}");
        assert_eq!(metric(&gw, "autoid_directory_failures"), 1, "{answer:?}");
        assert_eq!(metric(&gw, "autoid_denied_directory"), 1, "{answer:?}");
        assert_eq!(metric(&gw, "autoid_requests_allowed"), 0, "{answer:?}");
    }
}

#[test]
fn a_bad_reply_goes_through_the_uniform_503() {
    let (gw, agent) = setup();
    agent.set("alice", Answer::Body("{".to_owned()));
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "directory");
    let warn = gw
        .logs()
        .into_iter()
        .find(|l| l.message.starts_with("autoid: directory bridge failed"))
        .unwrap();
    assert!(warn.message.contains("malformed_json"), "{}", warn.message);
    assert!(!warn.message.contains(TOKEN));
}

#[test]
fn stale_decisions_serve_within_the_window_when_the_bridge_fails() {
    let (gw, _) = setup();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    gw.set_cluster(CLUSTER, Cluster::Timeout);
    // Past the 60 s TTL, within the 30 s stale window: the agent is asked, fails, stale serves.
    gw.clock().advance(Duration::from_secs(60));
    let out = alice.get(&gw, "payments", PATH).send();
    assert_eq!(
        values(upstream(&out), "x-autoid-groups"),
        ["payments,readers"]
    );
    gw.clock().advance(Duration::from_secs(29));
    upstream(&alice.get(&gw, "payments", PATH).send());
    assert_eq!(metric(&gw, "autoid_directory_stale_served"), 2);
    assert_eq!(metric(&gw, "autoid_directory_failures"), 2);
    assert_eq!(callouts(&gw), 3);
    // Past the window: 503.
    gw.clock().advance(Duration::from_secs(1));
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "directory");
    assert_eq!(metric(&gw, "autoid_directory_stale_served"), 2);
}

#[test]
fn a_stale_denial_stays_a_denial() {
    let (gw, agent) = setup();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    agent.set("bob", Answer::Status(503));
    gw.clock().advance(Duration::from_secs(61));
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    assert_eq!(metric(&gw, "autoid_directory_stale_served"), 1);
}

#[test]
fn a_recovered_bridge_refreshes_a_stale_decision() {
    let (gw, agent) = setup();
    let mut bob = Client::open(&gw, "bob");
    expect_denied(&gw, bob.get(&gw, "payments", PATH), 403, "not_in_groups");
    gw.clock().advance(Duration::from_secs(61));
    agent.set("bob", Answer::Groups(vec!["payments"]));
    upstream(&bob.get(&gw, "payments", PATH).send());
    assert_eq!(metric(&gw, "autoid_directory_stale_served"), 0);
}

#[test]
fn without_a_stale_window_an_expired_decision_is_not_served() {
    let agent = ScriptedAgent::default();
    agent.set("alice", Answer::Groups(vec!["payments"]));
    let gw = Fixture::directory(agent.cluster())
        .with("/directory/stale_if_error_secs", json!(0))
        .build();
    let mut alice = Client::open(&gw, "alice");
    upstream(&alice.get(&gw, "payments", PATH).send());
    gw.set_cluster(CLUSTER, Cluster::Timeout);
    gw.clock().advance(Duration::from_secs(60));
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "directory");
}

#[test]
fn an_undeclared_cluster_fails_closed_at_dispatch() {
    let agent = ScriptedAgent::default();
    let gw = Fixture::directory(agent.cluster())
        .with("/directory/cluster", json!("no-such-cluster"))
        .build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(&gw, alice.get(&gw, "payments", PATH), 503, "dispatch");
    assert_eq!(callouts(&gw), 0);
    assert_eq!(metric(&gw, "autoid_directory_failures"), 1);
}

#[test]
fn a_proof_failure_never_reaches_the_bridge() {
    let (gw, _) = setup();
    expect_denied(
        &gw,
        gw.request("GET", common::autoid::AUTHORITY, PATH)
            .route("payments"),
        401,
        "missing",
    );
    assert_eq!(callouts(&gw), 0);
}

#[test]
fn an_entry_under_another_spelling_is_403_and_a_bad_group_name_never_reaches_a_header() {
    let agent = ScriptedAgent::default();
    // The directory matched `Alice` for `alice` (LDAP compares case-insensitively).
    agent.set(
        "alice",
        Answer::Body(
            r#"{"subject":"alice","found":true,"entry_subject":"Alice","groups":["payments"]}"#
                .into(),
        ),
    );
    // carol's entry is hers, with a group whose name would read as another in the header.
    agent.set(
        "carol",
        Answer::Body(
            r#"{"subject":"carol","found":true,"entry_subject":"carol","groups":["payments","ops,admins"]}"#
                .into(),
        ),
    );
    let gw = Fixture::directory(agent.cluster()).build();
    let mut alice = Client::open(&gw, "alice");
    expect_denied(
        &gw,
        alice.get(&gw, "payments", PATH),
        403,
        "subject_mismatch",
    );
    assert!(
        gw.logs().iter().any(|l| l
            .message
            .contains(r#"entry for subject "alice" is "Alice""#)),
        "{:#?}",
        gw.logs()
    );
    let mut carol = Client::open(&gw, "carol");
    let out = carol.get(&gw, "payments", PATH).send();
    assert_eq!(values(upstream(&out), "x-autoid-groups"), ["payments"]);
    assert!(
        gw.logs().iter().any(|l| l
            .message
            .contains("1 invalid group name(s) for subject \"carol\"")),
        "{:#?}",
        gw.logs()
    );
}
