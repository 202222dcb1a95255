//! The HTTP contract: tokens, input limits, health and readiness, and never hanging on a
//! directory that does not answer.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{TOKEN, TestAgent, config, shared};
use serde_json::json;

#[test]
fn token_is_required_and_checked() {
    let b = TestAgent::start(config(shared()));
    let path = "/v1/groups?subject=alice";
    for auth in [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer wrong-token-wrong-token".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ] {
        let (status, body) = b.get_with(path, auth.as_deref());
        assert_eq!(
            (status, &body),
            (401, &json!({"error": "unauthorized"})),
            "{auth:?}"
        );
    }
    let (status, _) = b.get_with(path, Some(&format!("bearer {TOKEN}")));
    assert_eq!(status, 200);
    // The token is checked before the input: a bad request without a token is a 401.
    let (status, _) = b.get_with("/v1/groups?subject=", None);
    assert_eq!(status, 401);
}

#[test]
fn subject_limits() {
    let b = TestAgent::start(config(shared()));
    for path in ["/v1/groups?subject=", "/v1/groups", "/v1/groups?other=1"] {
        let (status, body) = b.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    let long = "a".repeat(65);
    let (status, _) = b.groups(&long);
    assert_eq!(status, 400);
    // 64 bytes is allowed (and unknown); non-ASCII is never canonical.
    let (status, body) = b.groups(&"a".repeat(64));
    assert_eq!((status, body["found"].clone()), (200, json!(false)));
    let (status, _) = b.groups("\u{e9}");
    assert_eq!(status, 400);
}

#[test]
fn health_and_readiness_need_no_token() {
    let b = TestAgent::start(config(shared()));
    assert_eq!(b.get_with("/healthz", None), (200, json!({"status": "ok"})));
    let (status, body) = b.get_with("/readyz", None);
    assert_eq!(status, 200, "{body}");
    let (status, _) = b.get_with("/nope", None);
    assert_eq!(status, 404);
}

#[test]
fn wrong_service_password_is_not_ready() {
    let slapd = shared();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "not-the-password").unwrap();
    let mut c = config(slapd);
    c["ldap"]["bind_password_file"] = json!(pw);
    let b = TestAgent::start(c);
    assert_eq!(b.get_with("/healthz", None).0, 200);
    assert_eq!(b.get_with("/readyz", None).0, 503);
    assert_eq!(
        b.groups("alice"),
        (503, json!({"error": "directory_unavailable"}))
    );
}

#[test]
fn silent_directory_gives_503_not_a_hang() {
    // A TCP server that accepts and never answers: connect succeeds, the bind times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let mut c = config(shared());
    c["ldap"]["url"] = json!(format!("ldap://127.0.0.1:{port}"));
    c["ldap"]["operation_timeout_ms"] = json!(500);
    c["request_timeout_ms"] = json!(1500);
    let b = TestAgent::start(c);
    let started = Instant::now();
    assert_eq!(
        b.groups("alice"),
        (503, json!({"error": "directory_unavailable"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let (status, _) = b.authenticate("alice", "alice-pass");
    assert_eq!(status, 503);
    assert_eq!(b.get_with("/readyz", None).0, 503);
}

#[test]
fn nothing_listening_gives_503_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = config(shared());
    c["ldap"]["url"] = json!(format!("ldap://127.0.0.1:{port}"));
    let b = TestAgent::start(c);
    let started = Instant::now();
    assert_eq!(
        b.groups("alice"),
        (503, json!({"error": "directory_unavailable"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn replay_claims_in_a_batch_one_verdict_each_and_the_single_form_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = autoid_testkit::redis::Redis::start(&dir.path().join("redis.log")).unwrap();
    let mut c = config(shared());
    c["replay"] = json!({ "redis_url": redis.url(), "timeout_ms": 500 });
    let b = TestAgent::start(c);
    let auth = format!("Bearer {TOKEN}");
    let post = |body: serde_json::Value| b.post_with("/v1/replay", Some(&auth), &body.to_string());
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    // 21 characters and a last one whose spare bits are zero: 16 bytes of base64url.
    let claim = |n: char| json!({ "nonce": format!("{}A", n.to_string().repeat(21)), "expires_at": expires_at });
    let (status, body) = post(json!({ "claims": [claim('A'), claim('B')] }));
    assert_eq!(
        (status, body),
        (200, json!({ "verdicts": ["claimed", "claimed"] }))
    );
    let (status, body) = post(json!({ "claims": [claim('B'), claim('C'), claim('C')] }));
    assert_eq!(
        (status, body),
        (200, json!({ "verdicts": ["replay", "claimed", "replay"] }))
    );
    // A filter from before batching, during a rolling upgrade: one claim, one answer.
    let (status, body) = post(claim('C'));
    assert_eq!((status, body), (409, json!({ "error": "replay" })));
    let (status, body) = post(claim('D'));
    assert_eq!((status, body), (200, json!({ "claimed": true })));
    for bad in [
        json!({ "claims": [] }),
        json!({ "claims": [claim('E'), { "nonce": "short", "expires_at": expires_at }] }),
        json!({ "claims": vec![claim('F'); 257] }),
        json!({ "claims": [claim('G')], "extra": 1 }),
    ] {
        let (status, _) = post(bad.clone());
        assert_eq!(status, 400, "{bad}");
    }
    // Nothing of a refused batch was claimed.
    let (status, body) = post(json!({ "claims": [claim('E')] }));
    assert_eq!((status, body), (200, json!({ "verdicts": ["claimed"] })));
    // A proof already expired when its claim arrives is refused, never claimed: `stale` to a
    // filter that sends keep_until, `replay` (the refusal it knows) to one that does not.
    let past = expires_at - 120;
    let stale = |n: char, keep: Option<u64>| {
        let mut c =
            json!({ "nonce": format!("{}A", n.to_string().repeat(21)), "expires_at": past });
        if let Some(k) = keep {
            c["keep_until"] = json!(k);
        }
        c
    };
    let (status, body) = post(json!({ "claims": [stale('H', Some(past + 60)), stale('I', None)] }));
    assert_eq!(
        (status, body),
        (200, json!({ "verdicts": ["stale", "replay"] }))
    );
    let (status, body) = post(stale('H', Some(past + 60)));
    assert_eq!((status, body), (409, json!({ "error": "stale" })));
    let (status, body) = post(stale('I', None));
    assert_eq!((status, body), (409, json!({ "error": "replay" })));
    // Nothing was recorded for them: claimed in time, they are new.
    let (status, body) = post(json!({ "claims": [claim('H'), claim('I')] }));
    assert_eq!(
        (status, body),
        (200, json!({ "verdicts": ["claimed", "claimed"] }))
    );
}
