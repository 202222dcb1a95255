//! Sessions unwrapped by the agent, through real Envoy: the rendered bootstrap and Envoy's live
//! configuration name the gateway key's id but hold no private key; new sessions, body-bound
//! proofs arriving while the agent answers (HTTP/2 with trailers), junk wrapped keys, and the
//! agent down. The twin of host-tests/tests/plugin_agent_sessions.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, OnceLock};

use common::client::{Send, Wire, send};
use common::{Options, PROOF_HEADER, Stack, admin_request, request};

fn stack() -> &'static Mutex<Stack> {
    static STACK: OnceLock<Mutex<Stack>> = OnceLock::new();
    STACK.get_or_init(|| {
        Mutex::new(Stack::start(&Options {
            session_keys_at_agent: true,
            ..Options::default()
        }))
    })
}

fn lock() -> std::sync::MutexGuard<'static, Stack> {
    stack()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn envoy_holds_no_private_key_and_new_sessions_open_through_the_agent() {
    let s = lock();
    let pem = std::fs::read_to_string(s.path("keys/gw-1.key.pem")).unwrap();
    let body_line = pem.lines().nth(1).unwrap().to_owned();
    let rendered = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    let dump = admin_request(&s.admin, "GET", "/config_dump").unwrap();
    let dump = String::from_utf8_lossy(&dump.body).into_owned();
    for (what, text) in [
        ("the rendered bootstrap", &rendered),
        ("config_dump", &dump),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{what} holds a private key");
        assert!(!text.contains(&body_line), "{what} holds the key's bytes");
        assert!(text.contains("gw-1"), "{what} names the key id");
    }
    let before = s.counter("autoid_agent_session_callouts");
    for _ in 0..3 {
        let r = s.get_as("alice", "/payments/agent", &[]);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.echoed("x-autoid-subject"), ["alice"]);
    }
    common::eventually(
        "three session callouts counted",
        std::time::Duration::from_secs(5),
        || (s.counter("autoid_agent_session_callouts") >= before + 3).then_some(()),
    );
    assert!(s.counter("autoid_rsa_unwraps") >= 3);
}

#[test]
fn a_body_bound_post_with_trailers_waits_for_the_agent_and_its_body() {
    let s = lock();
    let path = "/payments/charges";
    let url = format!("http://{}{path}", s.http);
    let body = br#"{"amount":42}"#;
    for (sent, status) in [(&body[..], 200), (&br#"{"amount":4200}"#[..], 401)] {
        let proof = s.prove_body("alice", "POST", &url, Some(body));
        let req = Send::new("POST", path)
            .header(PROOF_HEADER, &proof)
            .body(sent, 3)
            .trailer("x-checksum", "1");
        let r = send(s.http, Wire::Http2, &req).unwrap();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    }
}

#[test]
fn junk_is_401_and_the_agent_down_is_503() {
    let mut s = lock();
    let url = format!("http://{}/payments/junk", s.http);
    let proof = s.prove("alice", "GET", &url);
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let c = if parts[2].as_bytes()[30] == b'A' {
        "B"
    } else {
        "A"
    };
    parts[2].replace_range(30..31, c);
    let r = request(
        s.http,
        "GET",
        "/payments/junk",
        &[(PROOF_HEADER, &parts.join("."))],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    s.envoy_log_line(&["reason=unwrap"]);

    s.kill_bridge();
    let url = format!("http://{}/payments/down", s.http);
    let proof = s.prove("alice", "GET", &url);
    let r = request(s.http, "GET", "/payments/down", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "unavailable");
    s.restart_bridge();
    let proof = s.prove("alice", "GET", &url);
    let r = request(s.http, "GET", "/payments/down", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
