//! `POST /v1/authenticate`: password checks by binding as the user.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TOKEN, TestAgent, config, groups_of, shared};
use serde_json::json;

const ALICE_DN: &str = "uid=alice,ou=people,dc=example,dc=org";

#[test]
fn right_password_authenticates_with_groups() {
    let b = TestAgent::start(config(shared()));
    let (status, body) = b.authenticate("alice", "alice-pass");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"subject": "alice", "authenticated": true, "groups": ["payments", "reports"],
            "entry_subject": "alice"})
    );
    let (_, body) = b.authenticate("test", "test123");
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(groups_of(&body), ["testgroup"]);
    let (_, body) = b.authenticate("dave", "dave-pass");
    assert_eq!(
        body,
        json!({"subject": "dave", "authenticated": true, "groups": [], "entry_subject": "dave"})
    );
    // The entry stored as uid=Erin answers `erin` and says so; its invalid group is dropped.
    let (_, body) = b.authenticate("erin", "erin-pass");
    assert_eq!(
        body,
        json!({"subject": "erin", "authenticated": true, "groups": ["support"],
            "entry_subject": "Erin"})
    );
}

#[test]
fn non_canonical_usernames_are_refused_before_ldap() {
    let b = TestAgent::start(config(shared()));
    for user in [
        "ALICE",
        "Alice",
        " alice",
        "alice ",
        "al\u{130}ce",
        "evil*)(uid=*))(|(uid=*",
    ] {
        let (status, body) = b.authenticate(user, "alice-pass");
        assert_eq!(status, 400, "{user:?}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("not canonical"),
            "{body}"
        );
    }
}

#[test]
fn wrong_password_is_refused() {
    let b = TestAgent::start(config(shared()));
    for (user, pw) in [
        ("alice", "wrong"),
        ("alice", "bob-pass"),
        ("alice", "alice-pass "),
        ("bob", "alice-pass"),
    ] {
        let (status, body) = b.authenticate(user, pw);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"subject": user, "authenticated": false, "groups": []})
        );
    }
    // Repeated use of the bind connections keeps working after failures.
    let (_, body) = b.authenticate("bob", "bob-pass");
    assert_eq!(body["authenticated"], true, "{body}");
}

#[test]
fn empty_password_is_refused_without_a_bind() {
    let slapd = shared();
    let b = TestAgent::start(config(slapd));
    // Warm up so the service-account connection exists, then count alice's binds.
    assert_eq!(b.groups("alice").0, 200);
    let before = slapd.binds_logged(ALICE_DN);
    let (status, body) = b.authenticate("alice", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"subject": "alice", "authenticated": false, "groups": []})
    );
    assert_eq!(
        slapd.binds_logged(ALICE_DN),
        before,
        "an empty password must not reach the directory"
    );
    // A real attempt is logged, so the counter above does see binds.
    b.authenticate("alice", "wrong");
    common::eventually(
        "the failed bind in slapd's log",
        std::time::Duration::from_secs(5),
        || (slapd.binds_logged(ALICE_DN) > before).then_some(()),
    );
}

#[test]
fn unknown_wildcard_and_ambiguous_users_are_refused() {
    let b = TestAgent::start(config(shared()));
    for user in ["nobody", "dup"] {
        let (status, body) = b.authenticate(user, "alice-pass");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["authenticated"], false, "{user}: {body}");
    }
    // Wildcards and injections are not canonical usernames: refused before any search.
    for user in ["*", "alice)(uid=*"] {
        let (status, body) = b.authenticate(user, "alice-pass");
        assert_eq!(status, 400, "{user}: {body}");
    }
    // dup's password is right for both entries, but an ambiguous subject never authenticates.
    let (_, body) = b.authenticate("dup", "dup-pass");
    assert_eq!(body["authenticated"], false, "{body}");
}

#[test]
fn bad_requests_and_tokens() {
    let b = TestAgent::start(config(shared()));
    let ok = json!({"username": "alice", "password": "alice-pass"}).to_string();
    let (status, body) = b.post_with("/v1/authenticate", None, &ok);
    assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
    let (status, _) = b.post_with("/v1/authenticate", Some("Bearer nope-nope-nope-nope"), &ok);
    assert_eq!(status, 401);
    let auth = format!("Bearer {TOKEN}");
    for bad in [
        "not json".to_string(),
        json!({"username": "alice"}).to_string(),
        json!({"username": "", "password": "x"}).to_string(),
        json!({"username": "a".repeat(257), "password": "x"}).to_string(),
        json!({"username": "alice", "password": "x".repeat(1025)}).to_string(),
    ] {
        let (status, body) = b.post_with("/v1/authenticate", Some(&auth), &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}

#[test]
fn a_burst_of_wrong_passwords_is_throttled_without_locking_out_others_or_the_owner() {
    let b = TestAgent::start(config(shared()));
    // dave logs in once from his usual address: it becomes known for him. (Not alice: another
    // test counts her binds in the shared slapd.)
    let (_, body) = b.authenticate_from("dave", "dave-pass", "10.0.0.7");
    assert_eq!(body["authenticated"], true, "{body}");
    // An attacker guesses dave's password from elsewhere: five free failures, then held back.
    for i in 0..5 {
        let (status, body) = b.authenticate_from("dave", &format!("guess-{i}"), "198.51.100.9");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["authenticated"], false);
    }
    let (status, body) = b.authenticate_from("dave", "guess-5", "198.51.100.9");
    assert_eq!(
        status, 200,
        "the sixth failure is answered, then the delay starts"
    );
    assert_eq!(body["authenticated"], false);
    let (status, body) = b.authenticate_from("dave", "dave-pass", "198.51.100.9");
    assert_eq!(
        status, 429,
        "held back even with the right password: {body}"
    );
    assert_eq!(body["error"], "throttled");
    assert!(body["retry_after_secs"].as_u64().unwrap() >= 1);
    // The username is held (six failures from this source are under its own limit): a gateway
    // holds the source itself only when the agent says so.
    assert_eq!(body["held"], "username");
    // Another address guessing dave is held back too: the username's counter.
    let (status, _) = b.authenticate_from("dave", "guess-6", "198.51.100.10");
    assert_eq!(status, 429);
    // Another user logs in meanwhile, and dave from his known address still does.
    let (status, body) = b.authenticate_from("test", "test123", "192.0.2.4");
    assert_eq!(
        (status, &body["authenticated"]),
        (200, &json!(true)),
        "{body}"
    );
    let (status, body) = b.authenticate_from("dave", "dave-pass", "10.0.0.7");
    assert_eq!(
        (status, &body["authenticated"]),
        (200, &json!(true)),
        "{body}"
    );
    // The agent's metrics count what happened (behind the token), and name no user.
    assert_eq!(b.get_with("/metrics", None).0, 401);
    let (status, text) = b.get("/metrics");
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    let count = |outcome: &str| -> u64 {
        let key = format!("route=\"/v1/authenticate\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.split_once(&key).map(|(_, n)| n.parse().unwrap()))
            .unwrap_or(0)
    };
    assert_eq!(count("throttled"), 2, "{text}");
    assert_eq!(count("not_authenticated"), 6, "{text}");
    assert_eq!(count("authenticated"), 3, "{text}");
    assert!(!text.contains("dave"), "{text}");
}
