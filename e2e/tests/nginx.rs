//! nginx in front of the APIs, rendered by `autoid gateway render --target nginx` and started by
//! the tests (Debian's nginx, `-p <tmpdir>`): TLS (Mozilla intermediate, HSTS, HTTP/1.1 and
//! HTTP/2), what nginx answers itself, what it answers when no agent does, and — beside the
//! e2e stack's agent with its `/v1/check` (slapd, the demo upstream) — the same decisions as the
//! wasm filter: credentials injected and the proof stripped, 401 (missing, invalid, replayed,
//! moved to another path or method, body-bound), 403, spoofed managed and contract headers
//! reaching neither the agent nor the upstream, HTTP Basic over TLS, the agent down → 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use autoid_testkit::nginx::{self, Nginx};
use autoid_testkit::process::run;
use autoid_testkit::upstream::Upstream;
use autoid_testkit::{free_port, paths};
use common::front::Front;
use common::hostile::{assert_hostile_bytes_change_no_answer, assert_non_utf8_path_is_refused};
use common::{
    Options, PAYMENTS_CREDENTIAL, PROOF_HEADER, Response, Stack, assert_hostile_paths_refused,
    assert_proof_denials, assert_uniform_denial, assert_upstream_as_alice, bin, eventually,
    key_and_epoch, normalized_before_the_check, request,
};
use serde_json::json;

const HSTS: &str = "max-age=63072000";

/// nginx rendered from a config directory, the demo upstream behind it.
struct Gateway {
    nginx: Nginx,
    _upstream: Upstream,
    dir: tempfile::TempDir,
    http: SocketAddr,
    https: SocketAddr,
}

impl Gateway {
    /// Renders and starts nginx; the agent's socket is `agent_socket` (nobody listens there
    /// unless a test starts an agent).
    fn start(agent_socket: Option<&Path>) -> Gateway {
        let autoid = bin("autoid").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("autoid-e2e-nginx-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        autoid_testkit::process::remove_after_exit(d);
        key_and_epoch(&autoid, d);
        let tls = paths::dev_tls(&d.join("tls")).unwrap();
        let upstream = Upstream::start(
            &bin("autoid-demo-upstream").unwrap(),
            &d.join("upstream.log"),
        )
        .unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let https: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let socket = agent_socket.map_or_else(|| d.join("agent.sock"), Path::to_owned);
        let config = d.join("gateway");
        std::fs::create_dir_all(config.join("apis")).unwrap();
        let gateway = json!({
            "listeners": {
                "https": {"address": "127.0.0.1", "port": https.port(),
                          "cert_file": tls.cert, "key_file": tls.key},
                "http": {"address": "127.0.0.1", "port": http.port()}
            },
            "plugin": {
                "wasm_file": "unused-by-nginx.wasm",
                "keys_dir": d.join("keys"),
                "session_keys": "agent",
                "epochs": "agent",
                "epoch_files": [d.join("ep-1.epoch.json")]
            },
            "directory": {"address": format!("unix:{}", socket.display()), "timeout_ms": 1000}
        });
        std::fs::write(config.join("gateway.json"), gateway.to_string()).unwrap();
        let up = upstream.addr;
        for api in [
            json!({
                "id": "payments", "name": "Payments", "listen_path": "/payments/",
                "strip_listen_path": true, "upstream": format!("http://{up}/v1/"),
                "auth": {
                    "require": {"any_of": ["payments"]},
                    "inject": {"authorization": {"value": "Bearer upstream-secret-for-payments"},
                               "x-tenant": {"value": "acme"}},
                    "identity": {"subject_header": "x-autoid-subject",
                                 "groups_header": "x-autoid-groups"}
                }
            }),
            json!({
                "id": "legacy", "name": "Legacy", "listen_path": "/legacy/",
                "upstream": format!("http://{up}"),
                "auth": {
                    "methods": ["ldap_basic"],
                    "basic": {"realm": "e2e legacy"},
                    "require": {"any_of": ["testgroup"]},
                    "identity": {"subject_header": "x-autoid-subject"}
                }
            }),
        ] {
            std::fs::write(
                config.join(format!("apis/{}.json", api["id"].as_str().unwrap())),
                api.to_string(),
            )
            .unwrap();
        }
        let rendered = d.join("nginx.conf");
        run(Command::new(&autoid)
            .args(["gateway", "render", "--target", "nginx", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&rendered)
            .arg("--filter-config")
            .arg(d.join("filter.json")))
        .unwrap();
        let nginx = Nginx::start(
            &nginx::binary().unwrap(),
            &rendered,
            &d.join("nginx"),
            &[http, https],
        )
        .unwrap();
        Gateway {
            nginx,
            _upstream: upstream,
            dir,
            http,
            https,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// curl over TLS to the HTTPS listener, verifying the dev CA: the response's head and body.
    fn curl_tls(&self, args: &[&str], path: &str) -> Output {
        Command::new("curl")
            .args(["-sS", "-i"])
            .args(args)
            .arg("--cacert")
            .arg(self.path("tls/ca.pem"))
            .arg(format!("https://127.0.0.1:{}{path}", self.https.port()))
            .output()
            .expect("curl (apt-get install -y curl)")
    }
}

/// One gateway with no agent behind it, shared by the tests that do not need one.
fn lone() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| Gateway::start(None))
}

/// The status line's version and code, and the headers (names lowercase) of curl's `-i` output.
fn head(out: &Output) -> (String, u16, Vec<(String, String)>, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap();
    let mut parts = status.split_whitespace();
    let version = parts.next().unwrap().trim_start_matches("HTTP/").to_owned();
    let code = parts.next().unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (version, code, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn tls_1_1_is_refused_and_tls_1_2_and_1_3_answer_with_hsts() {
    let g = lone();
    let connect = format!("127.0.0.1:{}", g.https.port());
    let old = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-tls1_1"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl (apt-get install -y openssl)");
    assert!(
        !old.status.success(),
        "TLS 1.1 was accepted: {}",
        String::from_utf8_lossy(&old.stdout)
    );
    for version in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let out = g.curl_tls(&version, "/no-api-here");
        let (_, status, headers, body) = head(&out);
        assert_eq!(status, 403, "{version:?}: {body}");
        assert_eq!(header(&headers, "strict-transport-security"), [HSTS]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
            "forbidden"
        );
    }
    // The plain listener (development) sends no HSTS.
    let plain = request(g.http, "GET", "/no-api-here", &[]).unwrap();
    assert_eq!(plain.status, 403);
    assert!(plain.header("strict-transport-security").is_none());
}

#[test]
fn the_tls_listener_speaks_http1_and_http2() {
    let g = lone();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = g.curl_tls(&[flag], "/payments/x");
        let (v, status, headers, body) = head(&out);
        assert_eq!(v, version, "{flag}");
        // No agent answers: the uniform 503, HSTS included.
        assert_eq!(status, 503, "{flag}: {body}");
        assert_eq!(
            header(&headers, "strict-transport-security"),
            [HSTS],
            "{flag}"
        );
    }
}

#[test]
fn without_an_agent_answering_every_api_is_the_uniform_503() {
    let g = lone();
    for path in ["/payments/charges", "/legacy/report"] {
        let r = request(
            g.http,
            "GET",
            path,
            &[
                ("x-request-id", "rid-nginx-1"),
                ("x-autoid-proof", "v1.gw-1.AAAA.BBBB"),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"error": "unavailable", "request_id": "rid-nginx-1"}),
            "{path}"
        );
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // A request id nginx would not pass on is replaced by its own.
    let r = request(g.http, "GET", "/payments/x", &[("x-request-id", "a\"b")]).unwrap();
    let id = r.json()["request_id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(
        g.nginx.error_log().contains("/_autoid/check/payments"),
        "{}",
        g.nginx.error_log()
    );
}

#[test]
fn the_check_locations_are_internal_and_unknown_paths_are_403() {
    let g = lone();
    let r = request(g.http, "GET", "/_autoid/check/payments", &[]).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    // A path no API serves, or an API's prefix without its slash: the filter's 403.
    for path in ["/nowhere", "/payments", "/"] {
        let r = request(g.http, "GET", path, &[]).unwrap();
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.json()["error"], "forbidden");
    }
}

#[test]
fn validate_runs_nginx_t_and_reports_its_error() {
    let g = lone();
    let autoid = bin("autoid").unwrap();
    let ok = Command::new(&autoid)
        .args(["gateway", "validate", "--target", "nginx", "--config"])
        .arg(g.path("gateway"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("nginx -t (") && stdout.contains("): ok"),
        "{stdout}"
    );

    // A certificate nginx cannot load: nginx's own message, exit 1.
    let bad = g.path("gateway-bad");
    std::fs::create_dir_all(bad.join("apis")).unwrap();
    let mut gateway: serde_json::Value =
        serde_json::from_slice(&std::fs::read(g.path("gateway/gateway.json")).unwrap()).unwrap();
    gateway["listeners"]["https"]["cert_file"] = json!(g.path("tls/missing.pem"));
    std::fs::write(bad.join("gateway.json"), gateway.to_string()).unwrap();
    for api in ["payments", "legacy"] {
        std::fs::copy(
            g.path(&format!("gateway/apis/{api}.json")),
            bad.join(format!("apis/{api}.json")),
        )
        .unwrap();
    }
    let rejected = Command::new(&autoid)
        .args(["gateway", "validate", "--target", "nginx", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&rejected.stdout);
    assert_eq!(rejected.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("rejected"), "{stdout}");
    assert!(stdout.contains("missing.pem"), "{stdout}");
}

impl Front {
    /// A proof for `subject` and `method http://<nginx>path`.
    fn prove(&self, s: &Stack, subject: &str, method: &str, path: &str) -> String {
        s.prove(subject, method, &format!("http://{}{path}", self.http))
    }

    /// `n` proofs for `subject` and `method http://<nginx>path`, all of one session.
    fn prove_many(
        &self,
        s: &Stack,
        subject: &str,
        method: &str,
        path: &str,
        n: usize,
    ) -> Vec<String> {
        let forms = vec![autoid_protocol::client::Form::V1; n];
        s.prove_forms_at(&self.http.to_string(), subject, method, path, &forms)
    }

    /// `GET path` with a fresh proof for `subject` plus `headers`, over plain HTTP.
    fn get_as(&self, s: &Stack, subject: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let proof = self.prove(s, subject, "GET", path);
        let mut all: Vec<(&str, &str)> = vec![(PROOF_HEADER, proof.as_str())];
        all.extend_from_slice(headers);
        request(self.http, "GET", path, &all).expect("nginx answers")
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The e2e stack with the agent's check on (its Envoy speaks ext_authz) and nginx in front of
/// it; proofs made from now on are past the agent's restart fence.
fn start_with_agent() -> (Stack, Front) {
    let s = Stack::start(&Options {
        ext_authz: true,
        ..Options::default()
    });
    let front = Front::start(&s);
    let started = now_secs();
    eventually(
        "the second after the stack started",
        Duration::from_secs(3),
        || (now_secs() > started).then_some(()),
    );
    (s, front)
}

fn checked() -> &'static (Stack, Front) {
    static STACK: OnceLock<(Stack, Front)> = OnceLock::new();
    STACK.get_or_init(start_with_agent)
}

/// The contract headers nginx sets for the agent, and the agent's status: none reaches the
/// upstream.
const CONTRACT: [&str; 7] = [
    "x-autoid-api",
    "x-autoid-method",
    "x-autoid-uri",
    "x-autoid-authority",
    "x-autoid-peer",
    "x-autoid-tls",
    "x-autoid-status",
];

#[test]
fn checked_an_allowed_request_reaches_the_upstream_with_credentials_and_without_the_proof() {
    let (s, f) = checked();
    let r = f.get_as(
        s,
        "alice",
        "/payments/charges?limit=2",
        &[
            ("authorization", "Bearer stolen-or-forged"),
            ("x-tenant", "evil"),
            ("x-autoid-subject", "root"),
            ("x-autoid-groups", "admins"),
            ("x_autoid_subject", "root"),
            ("x-autoid-api", "admin"),
            ("x-autoid-method", "DELETE"),
            ("x-autoid-uri", "/admin/"),
            ("x-autoid-authority", "elsewhere"),
            ("x-autoid-peer", "10.9.9.9"),
            ("x-autoid-tls", "1"),
            ("x-autoid-status", "200"),
            ("x-request-id", "rid-allowed"),
        ],
    );
    let echo = assert_upstream_as_alice(&r);
    assert_eq!(r.echoed("x-request-id"), ["rid-allowed"]);
    let headers = echo["headers"].as_object().unwrap();
    assert!(headers.keys().all(|k| !k.contains('_')), "{echo}");
    for name in CONTRACT {
        assert!(
            r.echoed(name).is_empty(),
            "{name} reached the upstream: {echo}"
        );
    }
    // The client's forged credential is logged nowhere by the agent.
    let log = std::fs::read_to_string(s.path("agent.log")).unwrap_or_default();
    assert!(!log.contains("stolen-or-forged"));
}

#[test]
fn checked_missing_invalid_moved_and_replayed_proofs_are_401() {
    let (s, f) = checked();
    assert_proof_denials(f.http, |method, path| f.prove(s, "alice", method, path));
    // A proof made for Envoy's listener is bound to its authority, not nginx's.
    let envoy = s.prove("alice", "GET", &format!("http://{}/payments/x", s.http));
    let elsewhere = request(f.http, "GET", "/payments/x", &[(PROOF_HEADER, &envoy)]).unwrap();
    assert_uniform_denial(&elsewhere, 401, "unauthorized");
}

#[test]
fn checked_a_path_upstreams_could_read_otherwise_is_the_agents_400_not_auth_requests_500() {
    let (_, f) = checked();
    // nginx merges `//` to match the location, but the agent checks the path as the client sent
    // it, before any proof (`autoid prove` refuses to bind such paths): auth_request would turn
    // the agent's 400 into 500; the render restores it.
    for path in ["/payments/a//b", "/payments/a/%2e%2e/b", "/payments/a%2Fb"] {
        let r = request(
            f.http,
            "GET",
            path,
            &[
                (PROOF_HEADER, "v1.gw-1.AAAA.BBBB"),
                ("x-request-id", "rid-path"),
            ],
        )
        .unwrap();
        assert_uniform_denial(&r, 400, "bad_request");
        assert_eq!(r.json()["request_id"], "rid-path", "{path}");
    }
}

#[test]
fn checked_no_path_variant_reaches_an_upstream_path_outside_the_apis_base() {
    // The table every gateway is tested with, each path with a valid proof: nginx's location
    // match resolves dot segments first (the 403 of paths no API serves); the agent refuses the
    // rest, `..%3b` (which nginx decodes to `..;`) included, with the uniform 400.
    let (s, f) = checked();
    assert_hostile_paths_refused(
        f.http,
        |path| s.prove_raw_at(f.http, "alice", "GET", path),
        normalized_before_the_check,
    );
}

#[test]
fn checked_the_upstream_gets_the_bytes_the_agent_judged() {
    let (s, f) = checked();
    // Escapes and parameters pass undecoded: what the agent checked is what the upstream reads.
    let path = "/payments/a%3bb/caf%C3%A9;v=1/%2e%2e%2e?q=%2e%2e";
    let proof = s.prove_raw_at(f.http, "alice", "GET", path);
    let r = request(f.http, "GET", path, &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["path"],
        "/v1/a%3bb/caf%C3%A9;v=1/%2e%2e%2e?q=%2e%2e"
    );
    // nginx matches the location after decoding; the raw target is not under the listen path,
    // so no bytes were judged for it: 400.
    for path in ["/pay%6dents/x", "/p%61yments/x"] {
        let proof = s.prove_raw_at(f.http, "alice", "GET", path);
        let r = request(f.http, "GET", path, &[(PROOF_HEADER, &proof)]).unwrap();
        assert_uniform_denial(&r, 400, "bad_request");
    }
}

#[test]
fn checked_a_body_bound_proof_is_refused_since_nginx_cannot_forward_the_body() {
    let (s, f) = checked();
    let url = format!("http://{}/payments/upload", f.http);
    let body = "{\"amount\": 12}";
    let proof = s.prove_body("alice", "POST", &url, Some(body.as_bytes()));
    let len = body.len().to_string();
    let r = request(
        f.http,
        "POST",
        "/payments/upload",
        &[
            (PROOF_HEADER, &proof),
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    )
    .unwrap();
    assert_uniform_denial(&r, 401, "unauthorized");
}

#[test]
fn checked_a_subject_outside_the_required_groups_is_403_whatever_api_the_client_names() {
    let (s, f) = checked();
    assert_uniform_denial(&f.get_as(s, "dave", "/payments/x", &[]), 403, "forbidden");
    let spoofed = f.get_as(s, "alice", "/admin/x", &[("x-autoid-api", "payments")]);
    assert_uniform_denial(&spoofed, 403, "forbidden");
    assert_uniform_denial(&f.get_as(s, "alice", "/off/x", &[]), 403, "forbidden");
    let nowhere = f.get_as(
        s,
        "alice",
        "/no-such-api/x",
        &[("x-autoid-api", "payments")],
    );
    assert_uniform_denial(&nowhere, 403, "forbidden");
}

#[test]
fn checked_tls_on_http1_and_http2_is_allowed_with_hsts_and_the_identity_injected() {
    let (s, f) = checked();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let path = format!("/payments/tls-{version}");
        let url = format!("https://127.0.0.1:{}{path}", f.https.port());
        let proof = s.prove("alice", "GET", &url);
        let out = Command::new("curl")
            .args(["-sS", "-i", flag, "-H", &format!("{PROOF_HEADER}: {proof}")])
            .args(["-H", "x-autoid-subject: root"])
            .arg("--cacert")
            .arg(s.path("tls/ca.pem"))
            .arg(&url)
            .output()
            .expect("curl (apt-get install -y curl)");
        let (v, status, headers, body) = head(&out);
        assert_eq!((v.as_str(), status), (version, 200), "{body}");
        assert_eq!(header(&headers, "strict-transport-security"), [HSTS]);
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["headers"]["x-autoid-subject"], json!(["alice"]));
        assert_eq!(
            echo["headers"]["authorization"],
            json!([PAYMENTS_CREDENTIAL])
        );
        assert_eq!(echo["headers"]["x-forwarded-proto"], json!(["https"]));
        assert!(echo["headers"].get(PROOF_HEADER).is_none(), "{echo}");
    }
}

#[test]
fn checked_http_basic_over_tls_reaches_the_upstream_without_the_password() {
    let (s, f) = checked();
    let url = format!("https://127.0.0.1:{}/legacy/report", f.https.port());
    let curl = |user: &str| {
        Command::new("curl")
            .args(["-sS", "-i", "-u", user])
            .arg("--cacert")
            .arg(s.path("tls/ca.pem"))
            .arg(&url)
            .output()
            .expect("curl (apt-get install -y curl)")
    };
    let (_, status, _, body) = head(&curl("test:test123"));
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-autoid-subject"], json!(["test"]));
    assert_eq!(
        echo["headers"]["x-legacy-key"],
        json!(["legacy-upstream-key"])
    );
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");
    let (_, status, headers, body) = head(&curl("test:wrong"));
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        header(&headers, "www-authenticate"),
        ["Basic realm=\"e2e legacy\", charset=\"UTF-8\""]
    );
    // An API that takes a proof or Basic (Basic from loopback peers without TLS): the agent
    // challenges for both, nginx 1.22 passes the first only (docs/GATEWAYS.md).
    let both = request(f.http, "GET", "/local/x", &[]).unwrap();
    assert_uniform_denial(&both, 401, "unauthorized");
    let challenges: Vec<&str> = both
        .headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        challenges,
        ["AutoID realm=\"autoid\", header=\"x-autoid-proof\""]
    );
    // Basic without TLS on an API that takes it over TLS only: the filter's 403.
    let plain = request(
        f.http,
        "GET",
        "/legacy/report",
        &[("authorization", "Basic dGVzdDp0ZXN0MTIz")],
    )
    .unwrap();
    assert_uniform_denial(&plain, 403, "forbidden");
}

#[test]
fn checked_a_throttled_password_guesser_gets_the_agents_429_and_retry_after() {
    let (s, f) = checked();
    // The agent slows a username down after a few failed binds (agent/src/throttle.rs):
    // auth_request would turn its 429 into 500; the render restores it with its Retry-After.
    let url = format!("https://127.0.0.1:{}/legacy/guess", f.https.port());
    let mut seen = Vec::new();
    for i in 0..12 {
        let out = Command::new("curl")
            .args(["-sS", "-i", "-u", &format!("bob:wrong-{i}")])
            .arg("--cacert")
            .arg(s.path("tls/ca.pem"))
            .arg(&url)
            .output()
            .expect("curl (apt-get install -y curl)");
        let (_, status, headers, body) = head(&out);
        seen.push(status);
        if status == 429 {
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(doc["error"], "too_many_requests", "{doc}");
            assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
            let retry = header(&headers, "retry-after");
            assert_eq!(retry.len(), 1, "{headers:?}");
            assert!(retry[0].parse::<u32>().is_ok_and(|s| s >= 1), "{retry:?}");
            assert_eq!(header(&headers, "strict-transport-security"), [HSTS]);
            assert_eq!(header(&headers, "cache-control"), ["no-store"]);
            return;
        }
        assert_eq!(status, 401, "{body}");
    }
    panic!("no 429 after 12 wrong passwords: {seen:?}");
}

#[test]
fn checked_with_the_agent_down_every_request_is_503_with_the_uniform_body() {
    // Its own stack: the others keep their agent.
    let (mut s, f) = start_with_agent();
    let r = f.get_as(&s, "alice", "/payments/up", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let proof = f.prove(&s, "alice", "GET", "/payments/down");
    s.kill_agent();
    let r = request(
        f.http,
        "GET",
        "/payments/down",
        &[(PROOF_HEADER, &proof), ("x-request-id", "rid-down")],
    )
    .unwrap();
    assert_uniform_denial(&r, 503, "unavailable");
    assert_eq!(r.json()["request_id"], "rid-down");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(f.nginx.error_log().contains("/_autoid/check/payments"));
}

#[test]
fn checked_hostile_header_bytes_change_no_answer() {
    let (s, front) = checked();
    let path = "/payments/x";
    // HTTP/1.1 only: the plain listener speaks no HTTP/2 (the TLS one does).
    assert_hostile_bytes_change_no_answer(front.http, path, false, |n| {
        front.prove_many(s, "alice", "GET", path, n)
    });
}

#[test]
fn checked_a_path_that_is_not_utf8_is_refused_and_the_gateway_keeps_serving() {
    let (s, front) = checked();
    let path = "/payments/x";
    assert_non_utf8_path_is_refused(front.http, path, |n| {
        front.prove_many(s, "alice", "GET", path, n)
    });
}
