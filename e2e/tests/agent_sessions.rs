//! Sessions unwrapped and subjects' entropy keyed by the agent, through real Envoy: the rendered
//! bootstrap and Envoy's live configuration name the gateway key's id and the epoch's id but hold
//! neither the private key nor the epoch secret; new sessions and new subjects' streams, body-bound
//! proofs arriving while the agent answers (HTTP/2 with trailers), junk wrapped keys, and the
//! agent down. The twin of host-tests/tests/plugin_agent_sessions.rs and
//! plugin_agent_streams.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, OnceLock};

use autoid_protocol::client::Form;
use common::client::{Send, Wire, send};
use common::{Options, PROOF_HEADER, Stack, request, unix_request};

fn stack() -> &'static Mutex<Stack> {
    static STACK: OnceLock<Mutex<Stack>> = OnceLock::new();
    STACK.get_or_init(|| Mutex::new(Stack::start(&Options::default())))
}

fn lock() -> std::sync::MutexGuard<'static, Stack> {
    stack()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The epoch secret in every encoding a leak could take: as the epoch file writes it
/// (base64url without padding), standard base64 with and without padding, and hex.
fn epoch_secret_encodings(s: &Stack) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("ep-1.epoch.json")).unwrap()).unwrap();
    let as_written = file["secret"].as_str().unwrap().to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(&as_written).unwrap();
    assert_eq!(bytes.len(), 32);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        as_written,
        STANDARD.encode(&bytes),
        STANDARD_NO_PAD.encode(&bytes),
        hex.to_uppercase(),
        hex,
    ]
}

#[test]
fn envoy_holds_no_private_key_nor_epoch_secret_and_proofs_pass_through_the_agent() {
    let s = lock();
    let pem = std::fs::read_to_string(s.path("keys/gw-1.key.pem")).unwrap();
    let key_lines: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let secrets = epoch_secret_encodings(&s);
    let rendered = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    // A real proof first, so the live configuration is the one that served it.
    let r = s.get_as("alice", "/payments/agent", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let dump = unix_request(&s.admin, "GET", "/config_dump").unwrap();
    assert_eq!(dump.status, 200);
    let dump = String::from_utf8_lossy(&dump.body).into_owned();
    // config_dump escapes the filter's JSON configuration inside a string: unescape once more.
    let dump_unescaped = dump.replace("\\\"", "\"").replace("\\n", "\n");
    for (what, text) in [
        ("the rendered bootstrap", &rendered),
        ("config_dump", &dump),
        ("config_dump, unescaped", &dump_unescaped),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{what} holds a private key");
        for line in &key_lines {
            assert!(
                !text.contains(line.as_str()),
                "{what} holds the key's bytes"
            );
        }
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} holds the epoch secret ({secret})"
            );
        }
        assert!(text.contains("gw-1"), "{what} names the key id");
        assert!(text.contains("ep-1"), "{what} names the epoch id");
    }
    let log = s.envoy_log();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "Envoy's log holds the epoch secret"
        );
    }
    common::eventually(
        "alice's stream asked of the agent",
        std::time::Duration::from_secs(5),
        || (s.counter("autoid_agent_stream_callouts") >= 1).then_some(()),
    );
    assert_eq!(s.counter("autoid_agent_stream_failures"), 0);
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
    // A v2 proof (no possession ticket) whose wrapped key changed: the agent's unwrap fails.
    let proof = s
        .prove_forms("alice", "GET", "/payments/junk", &[Form::Full])
        .remove(0);
    let junk = |proof: &str| {
        let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
        let c = if parts[2].as_bytes()[30] == b'A' {
            "B"
        } else {
            "A"
        };
        parts[2].replace_range(30..31, c);
        parts.join(".")
    };
    let r = request(
        s.http,
        "GET",
        "/payments/junk",
        &[(PROOF_HEADER, &junk(&proof))],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    s.envoy_log_line(&["reason=unwrap"]);
    // The same with a v3 proof: its possession ticket covers the wrapped key, so the agent
    // refuses it before any RSA.
    let unwraps = s.agent_counter("autoid_agent_rsa_unwraps_total");
    let url = format!("http://{}/payments/junk3", s.http);
    let proof = s.prove("alice", "GET", &url);
    let r = request(
        s.http,
        "GET",
        "/payments/junk3",
        &[(PROOF_HEADER, &junk(&proof))],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    s.envoy_log_line(&["reason=entropy"]);
    assert_eq!(s.agent_counter("autoid_agent_rsa_unwraps_total"), unwraps);

    s.kill_agent();
    let url = format!("http://{}/payments/down", s.http);
    let proof = s.prove("alice", "GET", &url);
    let r = request(s.http, "GET", "/payments/down", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "unavailable");
    s.restart_agent();
    let proof = s.prove("alice", "GET", &url);
    let r = request(s.http, "GET", "/payments/down", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
