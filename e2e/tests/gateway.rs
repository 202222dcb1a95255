//! Envoy + autoid against a real directory: what is allowed, what is refused and how, across
//! workers, over TLS. One stack shared by the tests of this file (they do not change it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use common::{Options, PAYMENTS_CREDENTIAL, PROOF_HEADER, Stack, bin, request};

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
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = r.json();
    assert_eq!(echo["path"], "/v1/charges?limit=2");
    assert_eq!(r.echoed("authorization"), [PAYMENTS_CREDENTIAL]);
    assert_eq!(r.echoed("x-tenant"), ["acme"]);
    assert_eq!(r.echoed("x-autoid-subject"), ["alice"]);
    assert_eq!(r.echoed("x-autoid-groups"), ["payments,reports"]);
    assert!(
        r.echoed(PROOF_HEADER).is_empty(),
        "the proof reached the upstream: {echo}"
    );
    // The proof header never travels further, whatever case the client used.
    let headers = echo["headers"].as_object().unwrap();
    assert!(
        headers.keys().all(|k| !k.contains("autoid-proof")),
        "{echo}"
    );
}

#[test]
fn missing_invalid_and_replayed_proofs_are_401() {
    let s = stack();
    let missing = request(s.http, "GET", "/payments/x", &[]).unwrap();
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"], "unauthorized");
    assert!(missing.header("www-authenticate").is_some());

    let invalid = request(
        s.http,
        "GET",
        "/payments/x",
        &[(PROOF_HEADER, "v1.gw-1.AAAA.BBBB")],
    )
    .unwrap();
    assert_eq!(invalid.status, 401);

    // A proof for another path does not open here.
    let url = format!("http://{}/payments/other", s.http);
    let proof = s.prove("alice", "GET", &url);
    let moved = request(s.http, "GET", "/payments/x", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(moved.status, 401);

    // The same proof twice: the second is a replay.
    let url = format!("http://{}/payments/once", s.http);
    let proof = s.prove("alice", "GET", &url);
    let first = request(s.http, "GET", "/payments/once", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(first.status, 200);
    let again = request(s.http, "GET", "/payments/once", &[(PROOF_HEADER, &proof)]).unwrap();
    assert_eq!(again.status, 401);
    // Every 401 has the same body shape: nothing tells the client why.
    for r in [&missing, &invalid, &moved, &again] {
        let doc = r.json();
        assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
        assert_eq!(doc["error"], "unauthorized");
    }
    assert!(s.counter("autoid_denied_missing") >= 1);
    assert!(s.counter("autoid_denied_replay") >= 1);
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
fn the_tls_listener_serves_with_the_dev_ca_tls12_or_later_and_hsts() {
    let s = stack();
    let url = format!("https://127.0.0.1:{}/payments/over-tls", s.https.port());
    let out = Command::new(bin("autoid"))
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
fn the_admin_interface_answers_only_on_loopback() {
    let s = stack();
    assert_eq!(s.admin.ip().to_string(), "127.0.0.1");
    let ready = request(s.admin, "GET", "/ready", &[]).unwrap();
    assert_eq!(ready.status, 200);
    // Bound to 127.0.0.1 only: another loopback address on the same port is refused.
    let other = format!("127.0.0.2:{}", s.admin.port()).parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "the admin port answers on 127.0.0.2"
    );
    // No route for the admin API on the gateway listeners.
    let via_gateway = request(s.http, "GET", "/config_dump", &[]).unwrap();
    assert_ne!(via_gateway.status, 200);
}
