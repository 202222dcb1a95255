//! Envoy + autoid against a real directory: what is allowed, what is refused and how, across
//! workers, over TLS. One stack shared by the tests of this file (they do not change it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};

use common::client::{Send, Wire, send};
use common::{
    Options, PAYMENTS_CREDENTIAL, PROOF_HEADER, Stack, assert_hostile_paths_refused,
    assert_proof_denials, assert_upstream_as_alice, bin, request, unix_request,
};

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start(&Options::default()))
}

#[test]
fn an_allowed_request_reaches_the_upstream_with_credentials_and_without_the_proof() {
    let s = stack();
    // The client also sends its own copies of every header the gateway sets.
    let r = s.get_as(
        "alice",
        "/payments/charges?limit=2",
        &[
            ("authorization", "Bearer stolen-or-forged"),
            ("x-tenant", "evil"),
            ("x-autoid-subject", "root"),
            ("x-autoid-groups", "admins"),
        ],
    );
    let echo = assert_upstream_as_alice(&r);
    assert!(
        r.echoed(PROOF_HEADER).is_empty(),
        "the proof reached the upstream: {echo}"
    );
}

#[test]
fn missing_invalid_and_replayed_proofs_are_401() {
    let s = stack();
    let (missing, replays) = (
        s.counter("autoid_denied_missing"),
        s.counter("autoid_denied_replay"),
    );
    // The same cases and the same uniform 401 as behind ext_authz and nginx.
    assert_proof_denials(s.http, |method, path| {
        s.prove("alice", method, &format!("http://{}{path}", s.http))
    });
    assert!(s.counter("autoid_denied_missing") > missing);
    assert!(s.counter("autoid_denied_replay") > replays);
}

#[test]
fn a_subject_outside_the_required_groups_is_403() {
    let s = stack();
    let dave = s.get_as("dave", "/payments/x", &[]);
    assert_eq!(dave.status, 403);
    assert_eq!(dave.json()["error"], "forbidden");
    let alice = s.get_as("alice", "/admin/x", &[]);
    assert_eq!(alice.status, 403, "alice is not in admins");
    let off = s.get_as("alice", "/off/x", &[]);
    assert_eq!(off.status, 403, "a disabled API refuses everyone");
    let nowhere = s.get_as("alice", "/no-such-api/x", &[]);
    assert_eq!(nowhere.status, 403, "an unknown route is denied");
}

#[test]
fn a_replay_sent_to_the_other_worker_is_rejected() {
    let s = stack();
    let path = "/payments/replay-across-workers";
    let url = format!("http://{}{path}", s.http);
    let proof = Arc::new(s.prove("bob", "GET", &url));
    // Warm bob's groups so that every copy reaches the replay check at about the same time.
    assert_eq!(s.get_as("bob", "/payments/warm", &[]).status, 200);
    let replays_before = s.counter("autoid_replays_rejected");
    let worker = |i: u32| {
        s.stat(&format!(
            "listener.autoid_http.worker_{i}.downstream_cx_total"
        ))
    };
    let per_worker_before = (worker(0), worker(1));
    // 24 fresh connections at once: Envoy spreads connections over its two workers.
    let n = 24;
    let barrier = Arc::new(Barrier::new(n));
    let addr = s.http;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let proof = proof.clone();
            std::thread::spawn(move || {
                barrier.wait();
                request(addr, "GET", path, &[(PROOF_HEADER, proof.as_str())])
                    .unwrap()
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!((ok, unauthorized), (1, n - 1), "statuses: {statuses:?}");
    // Both workers took some of the connections: the replays crossed workers.
    let per_worker = (
        worker(0) - per_worker_before.0,
        worker(1) - per_worker_before.1,
    );
    assert!(
        per_worker.0 > 0 && per_worker.1 > 0,
        "connections per worker: {per_worker:?}"
    );
    assert!(s.counter("autoid_replays_rejected") >= replays_before + (n as u64 - 1));
}

#[test]
fn v2_compact_proofs_ride_a_held_session_and_clients_resend_in_full_on_the_hint() {
    use autoid_protocol::client::Form::{Compact, Full};
    let s = stack();
    let path = "/payments/v2-compact";
    let hinted_before = s.counter("autoid_denied_unknown_session");
    let proofs = s.prove_forms("alice", "GET", path, &[Compact, Full, Compact, Compact]);
    assert!(proofs[2].len() <= 256, "{} bytes", proofs[2].len());

    // Before the gateway holds the session: the uniform 401, plus the documented hint.
    let early = request(s.http, "GET", path, &[(PROOF_HEADER, proofs[0].as_str())]).unwrap();
    assert_eq!(early.status, 401);
    assert_eq!(early.json()["error"], "unauthorized");
    assert_eq!(
        early.header("www-authenticate"),
        Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\", error=\"unknown_session\"")
    );
    // The full form opens the session; compact proofs then pass on either HTTP version.
    let full = request(s.http, "GET", path, &[(PROOF_HEADER, proofs[1].as_str())]).unwrap();
    assert_eq!(full.status, 200, "{}", String::from_utf8_lossy(&full.body));
    let h1 = request(s.http, "GET", path, &[(PROOF_HEADER, proofs[2].as_str())]).unwrap();
    assert_eq!(h1.status, 200, "{}", String::from_utf8_lossy(&h1.body));
    assert_eq!(h1.echoed("authorization"), [PAYMENTS_CREDENTIAL]);
    assert_eq!(h1.echoed("x-autoid-subject"), ["alice"]);
    assert!(h1.echoed(PROOF_HEADER).is_empty());
    let h2 = send(
        s.http,
        Wire::Http2,
        &Send::new("GET", path).header(PROOF_HEADER, &proofs[3]),
    )
    .unwrap();
    assert_eq!(h2.status, 200, "{}", String::from_utf8_lossy(&h2.body));
    // Each compact proof is single-use, and a replay gets no hint.
    let replay = request(s.http, "GET", path, &[(PROOF_HEADER, proofs[2].as_str())]).unwrap();
    assert_eq!(replay.status, 401);
    assert_eq!(
        replay.header("www-authenticate"),
        Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\"")
    );
    assert_eq!(
        s.counter("autoid_denied_unknown_session"),
        hinted_before + 1
    );

    // `autoid request` with a stored session (one test: the counter is the stack's).
    let url = format!("http://{}/payments/v2-resend", s.http);
    let session = s.path(&format!("v2-session-{}", std::process::id()));
    let client = |command: &str| {
        let mut cmd = Command::new(bin("autoid").unwrap());
        cmd.args([command, "--kid", "gw-1", "--subject", "alice"])
            .arg("--public-key")
            .arg(s.path("keys/gw-1.pub.pem"))
            .arg("--entropy")
            .arg(s.path("alice.entropy"))
            .arg("--session")
            .arg(&session);
        cmd
    };
    // A stored session the gateway has never seen (this header is never sent).
    let made = client("prove").args(["--url", &url]).output().unwrap();
    assert!(made.status.success());
    let hinted_before = s.counter("autoid_denied_unknown_session");
    let out = client("request")
        .args(["--repeat", "2", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("HTTP 200\n").count(), 2, "{stdout}");
    // The first request went compact, got the hint and was sent again in full; the second
    // went compact and passed.
    assert_eq!(
        s.counter("autoid_denied_unknown_session"),
        hinted_before + 1
    );
}

#[test]
fn the_tls_listener_serves_with_the_dev_ca_tls12_or_later_and_hsts() {
    let s = stack();
    let url = format!("https://127.0.0.1:{}/payments/over-tls", s.https.port());
    let out = Command::new(bin("autoid").unwrap())
        .args(["request", "--kid", "gw-1", "--subject", "alice"])
        .arg("--public-key")
        .arg(s.path("keys/gw-1.pub.pem"))
        .arg("--entropy")
        .arg(s.path("alice.entropy"))
        .arg("--cacert")
        .arg(s.path("tls/ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("HTTP 200\n"), "{stdout}");
    assert!(
        stdout.contains("\"x-forwarded-proto\":[\"https\"]"),
        "{stdout}"
    );

    // TLS 1.1 is refused; TLS 1.2 works and responses (even a local 401) carry HSTS.
    let connect = format!("127.0.0.1:{}", s.https.port());
    let old = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-tls1_1"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl (apt-get install -y openssl)");
    assert!(!old.status.success(), "TLS 1.1 was accepted");
    let mut child = Command::new("openssl")
        .args([
            "s_client", "-connect", &connect, "-tls1_2", "-quiet", "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(s.path("tls/ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!("GET /payments/x HTTP/1.1\r\nhost: {connect}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=63072000"),
        "{text}"
    );
}

#[test]
fn the_admin_interface_is_a_private_unix_socket_and_not_on_tcp() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let s = stack();
    let meta = std::fs::metadata(&s.admin).unwrap();
    assert!(meta.file_type().is_socket(), "{}", s.admin.display());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner only");
    assert_eq!(meta.uid(), std::fs::metadata(s.dir.path()).unwrap().uid());
    let ready = unix_request(&s.admin, "GET", "/ready").unwrap();
    assert_eq!(ready.status, 200);
    // Envoy listens on TCP for the two gateway listeners only.
    let listeners: serde_json::Value = unix_request(&s.admin, "GET", "/listeners?format=json")
        .unwrap()
        .json();
    let names: Vec<&str> = listeners["listener_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["autoid_https", "autoid_http"]);
    let rendered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("envoy.json")).unwrap()).unwrap();
    assert!(rendered["admin"]["address"].get("socket_address").is_none());
    // No route for the admin API on the gateway listeners.
    for path in ["/config_dump", "/quitquitquit", "/runtime_modify"] {
        let via_gateway = request(s.http, "POST", path, &[]).unwrap();
        assert_ne!(via_gateway.status, 200, "{path}");
    }
}

#[test]
fn no_underscore_spelling_of_a_managed_header_reaches_the_upstream() {
    // Envoy allows `_` in header names by default, and CGI, WSGI, PHP and many frameworks fold
    // `_` into `-`: the rendered gateway refuses such requests before the filter runs.
    let s = stack();
    let path = "/payments/charges";
    for name in [
        "x_autoid_subject",
        "x_autoid_groups",
        "x_tenant",
        "x_autoid_proof",
        "X_Autoid-Subject",
    ] {
        let r = s.get_as("alice", path, &[(name, "admin")]);
        assert_eq!(
            r.status,
            400,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        // HTTP/2: the stream is refused too; nothing reaches the echo.
        let url = format!("http://{}{path}", s.http);
        let proof = s.prove("alice", "GET", &url);
        let req = Send::new("GET", path)
            .header(PROOF_HEADER, &proof)
            .header(&name.to_ascii_lowercase(), "admin");
        match send(s.http, Wire::Http2, &req) {
            Ok(r) => assert_ne!(r.status, 200, "{name} over HTTP/2: {r:?}"),
            Err(e) => assert!(e.contains("exchange"), "{name} over HTTP/2: {e}"),
        }
    }
    // The same request without the underscored header passes.
    assert_eq!(s.get_as("alice", path, &[]).status, 200);
}

#[test]
fn no_path_variant_reaches_an_upstream_path_outside_the_apis_base() {
    // The table every gateway is tested with: Envoy resolves or refuses some first (dot
    // segments, `//`, escaped slashes), the filter refuses the rest with the uniform 400.
    let s = stack();
    assert_hostile_paths_refused(
        s.http,
        |path| s.prove_raw("alice", "GET", path),
        // Envoy's normalization answers some entries before any check (`..;` included: a
        // uniform 403); every one is refused and none reaches the upstream.
        |_| true,
    );
    for path in ["/payments/..%2F..%2Fadmin%2Fx", "/payments/..%5C..%5Cadmin"] {
        let proof = s.prove_raw("alice", "GET", path);
        let r = request(s.http, "GET", path, &[(PROOF_HEADER, &proof)]).unwrap();
        assert_eq!(r.status, 400, "{path}: escaped slashes are refused");
    }
}

#[test]
fn a_directory_entry_under_another_spelling_is_403() {
    // The seeded directory stores erin as `uid=Erin`; LDAP matches `erin` to it, autoid does not.
    let s = stack();
    let r = s.get_as("erin", "/payments/x", &[]);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "forbidden");
    s.envoy_log_line(&["directory entry for subject", "erin", "Erin"]);
    s.envoy_log_line(&["reason=subject_mismatch", "erin"]);
}
