//! nginx in front of the APIs, rendered by `autoid gateway render --target nginx` and started by
//! the tests (Debian's nginx, `-p <tmpdir>`): TLS (Mozilla intermediate, HSTS, HTTP/1.1 and
//! HTTP/2), what nginx answers itself, and what it answers when no agent does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use autoid_testkit::nginx::{self, Nginx};
use autoid_testkit::process::run;
use autoid_testkit::upstream::Upstream;
use autoid_testkit::{free_port, paths};
use common::{bin, request};
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
        run(Command::new(&autoid)
            .args(["keygen", "--kid", "gw-1", "--bits", "2048", "--out"])
            .arg(d.join("keys")))
        .unwrap();
        run(Command::new(&autoid)
            .args(["epoch", "new", "--id", "ep-1", "--out"])
            .arg(d.join("ep-1.epoch.json")))
        .unwrap();
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
