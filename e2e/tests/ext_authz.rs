//! Envoy with `ext_authz` to the agent's `/v1/check` (`autoid gateway render --target
//! envoy-ext-authz`), no wasm: the same API definitions and clients, the same decisions as the
//! wasm filter — credentials injected and the proof stripped, 401/403 as the filter answers them,
//! client copies of managed and contract headers believed by neither the agent nor the upstream,
//! HTTP/1.1 and HTTP/2 over TLS, bodies bound by the proof, and 503 when the agent is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::client::{Send, Wire, send};
use common::hostile::{assert_hostile_bytes_change_no_answer, assert_non_utf8_path_is_refused};
use common::{
    Options, PAYMENTS_CREDENTIAL, PROOF_HEADER, Response, Stack, assert_hostile_paths_refused,
    assert_proof_denials, assert_uniform_denial, assert_upstream_as_alice, eventually, request,
    unix_request,
};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A stack with Envoy ext_authz; proofs made from now on are past the agent's restart fence (the
/// filter refuses proofs made in the second its replay table was created, as after a restart).
fn start() -> Stack {
    let s = Stack::start(&Options {
        ext_authz: true,
        ..Options::default()
    });
    let started = now_secs();
    eventually(
        "the second after the stack started",
        Duration::from_secs(3),
        || (now_secs() > started).then_some(()),
    );
    s
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(start)
}

/// The contract headers the gateway sets for the agent; none may reach the upstream.
const CONTRACT: [&str; 6] = [
    "x-autoid-api",
    "x-autoid-method",
    "x-autoid-uri",
    "x-autoid-authority",
    "x-autoid-peer",
    "x-autoid-tls",
];

#[test]
fn an_allowed_request_reaches_the_upstream_with_credentials_and_without_the_proof() {
    let s = stack();
    // The client also sends its own copies of every header the gateway or the agent sets.
    let r = s.get_as(
        "alice",
        "/payments/charges?limit=2",
        &[
            ("authorization", "Bearer stolen-or-forged"),
            ("x-tenant", "evil"),
            ("x-autoid-subject", "root"),
            ("x-autoid-groups", "admins"),
            ("x-autoid-api", "admin"),
            ("x-autoid-method", "DELETE"),
            ("x-autoid-uri", "/admin/"),
            ("x-autoid-peer", "10.9.9.9"),
            ("x-autoid-tls", "1"),
            ("x-autoid-status", "200"),
        ],
    );
    let echo = assert_upstream_as_alice(&r);
    for name in CONTRACT.iter().chain(&["x-autoid-status"]) {
        assert!(
            r.echoed(name).is_empty(),
            "{name} reached the upstream: {echo}"
        );
    }
}

#[test]
fn missing_invalid_moved_and_replayed_proofs_are_401() {
    let s = stack();
    assert_proof_denials(s.http, |method, path| s.prove_raw("alice", method, path));
}

#[test]
fn no_path_variant_reaches_an_upstream_path_outside_the_apis_base() {
    // The table every gateway is tested with: Envoy resolves or refuses some before ext_authz,
    // the agent refuses the rest with the uniform 400.
    let s = stack();
    assert_hostile_paths_refused(
        s.http,
        |path| s.prove_raw("alice", "GET", path),
        // Envoy's normalization answers some entries before any check (`..;` included: a
        // uniform 403); every one is refused and none reaches the upstream.
        |_| true,
    );
}

#[test]
fn a_subject_outside_the_required_groups_is_403_whatever_api_the_client_names() {
    let s = stack();
    assert_uniform_denial(&s.get_as("dave", "/payments/x", &[]), 403, "forbidden");
    // alice is not in admins; naming payments as the API changes nothing.
    let spoofed = s.get_as("alice", "/admin/x", &[("x-autoid-api", "payments")]);
    assert_uniform_denial(&spoofed, 403, "forbidden");
    assert_uniform_denial(&s.get_as("alice", "/off/x", &[]), 403, "forbidden");
    // No route: Envoy's ext_authz does not ask, and its router answers 404 (the wasm filter
    // answers 403 there); nothing goes upstream either way.
    let nowhere = s.get_as("alice", "/no-such-api/x", &[("x-autoid-api", "payments")]);
    assert_eq!(nowhere.status, 404);
    assert!(!String::from_utf8_lossy(&nowhere.body).contains("autoid-demo-upstream"));
}

#[test]
fn a_body_bound_proof_is_checked_against_the_body_envoy_forwards() {
    let s = stack();
    let url = format!("http://{}/payments/upload", s.http);
    let body = b"{\"amount\": 12}";
    let proof = s.prove_body("alice", "POST", &url, Some(body));
    for (sent, status) in [(&b"{\"amount\": 99}"[..], 401), (&body[..], 200)] {
        let req = Send::new("POST", "/payments/upload")
            .header(PROOF_HEADER, &proof)
            .header("content-type", "application/json")
            .body(sent, 5);
        let r = send(s.http, Wire::Http1Length, &req).unwrap();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        if status == 200 {
            assert_eq!(r.json()["body_bytes"], body.len());
        }
    }
}

#[test]
fn a_body_at_the_limit_reaches_the_agent_and_one_byte_over_is_413() {
    let s = stack();
    let max = autoid_protocol::policy::MAX_BODY_BYTES;
    let url = format!("http://{}/payments/big", s.http);
    for (size, status) in [(max, 200), (max + 1, 413)] {
        let body = vec![b'a'; size];
        let proof = s.prove_body("alice", "POST", &url, Some(&body));
        for wire in [Wire::Http1Length, Wire::Http2] {
            let req = Send::new("POST", "/payments/big")
                .header(PROOF_HEADER, &proof)
                .body(&body, 16 * 1024);
            let r = send(s.http, wire, &req).unwrap();
            if status == 200 {
                // The same proof twice (HTTP/1.1, then HTTP/2): the second is a replay.
                let expected = if wire == Wire::Http1Length { 200 } else { 401 };
                assert_eq!(
                    r.status,
                    expected,
                    "{wire:?} {}",
                    String::from_utf8_lossy(&r.body)
                );
                if expected == 200 {
                    assert_eq!(r.json()["body_bytes"], size);
                }
            } else {
                // Envoy's ext_authz refuses a body over `max_request_bytes` with a
                // `content-length` itself; without one (HTTP/2 here) it sends the agent the body
                // cut at the limit, marked partial, and the agent answers the filter's 413.
                assert_eq!(
                    r.status,
                    413,
                    "{wire:?} {}",
                    String::from_utf8_lossy(&r.body)
                );
                if wire == Wire::Http2 {
                    assert_eq!(r.json()["error"], "payload_too_large");
                }
            }
        }
    }
}

/// `curl` over TLS with a fresh proof: the HTTP version, the status and the body.
fn curl(s: &Stack, http: &str, path: &str) -> (String, u16, String) {
    let url = format!("https://127.0.0.1:{}{path}", s.https.port());
    let proof = s.prove("alice", "GET", &url);
    let out = Command::new("curl")
        .args(["-sS", http, "-H", &format!("{PROOF_HEADER}: {proof}")])
        .args(["-H", "x-autoid-subject: root"])
        .arg("--cacert")
        .arg(s.path("tls/ca.pem"))
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(&url)
        .output()
        .expect("curl (apt-get install -y curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, last) = stdout.rsplit_once('\n').unwrap();
    let (version, status) = last.split_once(' ').unwrap();
    (version.to_owned(), status.parse().unwrap(), body.to_owned())
}

#[test]
fn tls_on_http1_and_http2_is_allowed_with_the_identity_injected() {
    let s = stack();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (v, status, body) = curl(s, flag, &format!("/payments/tls-{version}"));
        assert_eq!((v.as_str(), status), (version, 200), "{body}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            echo["headers"]["x-autoid-subject"],
            serde_json::json!(["alice"])
        );
        assert_eq!(
            echo["headers"]["authorization"],
            serde_json::json!([PAYMENTS_CREDENTIAL])
        );
        assert!(echo["headers"].get(PROOF_HEADER).is_none(), "{echo}");
    }
}

#[test]
fn http_basic_needs_tls_where_the_api_says_so_and_loopback_peers_are_told_apart() {
    let s = stack();
    let basic = format!("Basic {}", base64_of("test:test123"));
    // `legacy` takes passwords over TLS only: `x-autoid-tls` says which listener it came in on.
    let r = request(s.http, "GET", "/legacy/x", &[("authorization", &basic)]).unwrap();
    assert_uniform_denial(&r, 403, "forbidden");
    let out = Command::new("curl")
        .args(["-sS", "--http2", "-u", "test:test123", "--cacert"])
        .arg(s.path("tls/ca.pem"))
        .args(["-w", "\n%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{}/legacy/report",
            s.https.port()
        ))
        .output()
        .expect("curl (apt-get install -y curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{body}");
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        echo["headers"]["x-autoid-subject"],
        serde_json::json!(["test"])
    );
    assert_eq!(
        echo["headers"]["x-legacy-key"],
        serde_json::json!(["legacy-upstream-key"])
    );
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");
    // `local` takes Basic without TLS from a loopback peer (`x-autoid-peer`).
    let r = request(s.http, "GET", "/local/x", &[("authorization", &basic)]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("x-autoid-subject"), ["test"]);
    assert!(r.echoed("authorization").is_empty());
    let wrong = format!("Basic {}", base64_of("test:wrong"));
    let r = request(s.http, "GET", "/local/x", &[("authorization", &wrong)]).unwrap();
    assert_denied_basic(&r);
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A refused password: 401 with both challenges of `local` (a proof's first).
fn assert_denied_basic(r: &Response) {
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "unauthorized");
    let challenges: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with("AutoID ") && challenges[1].starts_with("Basic "));
}

#[test]
fn with_the_agent_down_every_request_is_503_with_the_uniform_body() {
    // Its own stack: the others keep their agent.
    let mut s = start();
    let proof = s.prove_raw("alice", "GET", "/payments/down");
    s.kill_agent();
    let r = request(s.http, "GET", "/payments/down", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    // The uniform body; the request id is Envoy's (it replaces an external client's).
    let body = r.json();
    assert_eq!(body["error"], "unavailable");
    assert!(
        body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty() && id != "-"),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert!(r.json().get("upstream").is_none());
}

#[test]
fn the_bootstrap_config_dump_and_log_hold_no_filter_configuration_and_no_secret() {
    let s = stack();
    let bootstrap = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    // A real request first, so the live configuration and the log are the ones that served it.
    let r = s.get_as("alice", "/payments/dump", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let dump = unix_request(&s.admin, "GET", "/config_dump").unwrap();
    assert_eq!(dump.status, 200);
    let dump = String::from_utf8_lossy(&dump.body).into_owned();
    let log = s.envoy_log();
    let filter = std::fs::read_to_string(s.path("filter.json")).unwrap();
    let epoch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("ep-1.epoch.json")).unwrap()).unwrap();
    let secret = epoch["secret"].as_str().unwrap();
    // The agent's filter configuration has the inline credential but neither the key nor the
    // epoch secret (the agent holds those in its own files); Envoy's bootstrap has none.
    for (what, value, in_filter) in [
        ("a private key", "PRIVATE KEY", false),
        ("the epoch secret", secret, false),
        ("the inline credential", PAYMENTS_CREDENTIAL, true),
    ] {
        assert_eq!(
            filter.contains(value),
            in_filter,
            "{what} in the filter configuration: {in_filter} expected"
        );
        for (place, text) in [
            ("Envoy's bootstrap", &bootstrap),
            ("Envoy's config_dump", &dump),
            ("Envoy's log", &log),
        ] {
            assert!(!text.contains(value), "{what} in {place}");
        }
    }
    assert!(!bootstrap.contains("envoy.filters.http.wasm"));
    // No wasm filter is configured (the node's extension list names it, as every Envoy's does).
    assert!(!dump.contains("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"));
    assert!(
        dump.contains("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.path("filter.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the filter configuration holds secrets"
    );
}

#[test]
fn hostile_header_bytes_change_no_answer_on_http1_and_http2() {
    let s = stack();
    let path = "/payments/x";
    assert_hostile_bytes_change_no_answer(s.http, path, true, |n| {
        s.prove_many("alice", "GET", path, n)
    });
}

#[test]
fn a_path_that_is_not_utf8_is_refused_and_the_gateway_keeps_serving() {
    let s = stack();
    let path = "/payments/x";
    assert_non_utf8_path_is_refused(s.http, path, |n| s.prove_many("alice", "GET", path, n));
}
