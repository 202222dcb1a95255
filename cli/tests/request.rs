//! `autoid request` against a real (tiny) HTTP server: proofs, sessions, Host, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn request(f: &Fixture, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "request".to_owned(),
        "--public-key".to_owned(),
        s(&f.public_key),
        "--entropy".to_owned(),
        s(&f.alice),
        "--subject".to_owned(),
        "alice".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    autoid(&args)
}

#[test]
fn repeat_3_in_v3_sends_the_full_form_once_then_the_sessions_reference() {
    let f = Fixture::new();
    let (addr, seen) = serve(200);
    let url = format!("http://{addr}/v1/payments?limit=10");
    let o = request(&f, &["--repeat", "3", &url]);
    assert_code(&o, 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let proofs: Vec<&str> = seen.iter().map(|r| r.header("x-autoid-proof")[0]).collect();
    assert!(
        proofs.iter().all(|p| p.starts_with("v3.gw-1.")),
        "{proofs:?}"
    );
    // The full form carries its possession ticket; the compact ones do not.
    assert_eq!(parts(proofs[0]).len(), 5);
    assert!(proofs[1..].iter().all(|p| parts(p).len() == 4));
    // The first carries the wrapped key and verifies offline; the others name its session.
    let v = f.verify(proofs[0], "GET", &url, &["-v"]);
    assert_code(&v, 0);
    let out = stdout(&v);
    let session = out
        .lines()
        .find_map(|l| l.strip_prefix("session="))
        .unwrap()
        .to_owned();
    assert!(parts(proofs[0])[2].len() > 300);
    for p in &proofs[1..] {
        assert!(p.len() <= 256, "{} bytes", p.len());
        let reference = parts(p)[2];
        assert_eq!(reference.len(), 22);
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(reference)
            .unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, session,
            "the compact proofs name the first proof's session"
        );
    }
    // Offline, without the session, a compact proof is unknown_session (exit 1).
    let v = f.verify(proofs[1], "GET", &url, &[]);
    assert_code(&v, 1);
    assert_eq!(stdout(&v), "rejected: unknown_session\n");
}

#[test]
fn repeat_3_sends_three_verifiable_proofs_in_one_session() {
    let f = Fixture::new();
    let (addr, seen) = serve(200);
    let url = format!("http://{addr}/v1/payments?limit=10");
    let o = request(&f, &["--proof-version", "1", "--repeat", "3", &url]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "HTTP 200\nhello 1\nHTTP 200\nhello 2\nHTTP 200\nhello 3\n"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let mut wrapped = Vec::new();
    let mut nonces = Vec::new();
    let mut sessions = Vec::new();
    for req in &seen {
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/v1/payments?limit=10");
        let host = req.header("host");
        assert_eq!(
            host,
            vec![addr.to_string().as_str()],
            "Host is the bound authority"
        );
        let proof = req.header("x-autoid-proof");
        assert_eq!(proof.len(), 1, "one proof header: {:?}", req.headers);
        // Verify against what the server received: its Host and request target.
        let received = format!("http://{}{}", host[0], req.target);
        let v = f.verify(proof[0], &req.method, &received, &["-v"]);
        assert_code(&v, 0);
        let out = stdout(&v);
        assert!(
            out.starts_with("ok subject=alice epoch=ep-1 kid=gw-1\n"),
            "{out}"
        );
        let field = |k: &str| out.lines().find(|l| l.starts_with(k)).unwrap().to_owned();
        sessions.push(field("session="));
        nonces.push(field("nonce="));
        wrapped.push(parts(proof[0])[2].to_owned());
    }
    assert!(wrapped.iter().all(|w| *w == wrapped[0]), "one session");
    assert!(sessions.iter().all(|x| *x == sessions[0]), "one session id");
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a fresh nonce per request");
}

#[test]
fn post_with_headers_and_bound_body() {
    let f = Fixture::new();
    let (addr, seen) = serve(201);
    let url = format!("http://{addr}/v1/payments");
    let o = request(
        &f,
        &[
            "-X",
            "post",
            "-H",
            "content-type: application/json",
            "-H",
            "X-Trace: 7",
            "-d",
            "{\"amount\":5}",
            "--bind-body",
            "--header-name",
            "x-proof",
            &url,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "HTTP 201\nhello 1\n");
    let seen = seen.lock().unwrap().clone();
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, b"{\"amount\":5}");
    assert_eq!(req.header("content-type"), vec!["application/json"]);
    assert_eq!(req.header("x-trace"), vec!["7"]);
    assert!(req.header("x-autoid-proof").is_empty());
    let proof = req.header("x-proof")[0];
    let body = f.path("body");
    std::fs::write(&body, &req.body).unwrap();
    let received = format!("http://{}{}", req.header("host")[0], req.target);
    let v = f.verify(proof, "POST", &received, &["--body-file", &s(&body), "-v"]);
    assert_code(&v, 0);
    assert!(stdout(&v).contains("body=checked"));
}

#[test]
fn non_2xx_exits_1_and_prints_the_status_and_body() {
    let f = Fixture::new();
    let (addr, seen) = serve(403);
    let o = request(&f, &["--repeat", "2", &format!("http://{addr}/admin")]);
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "HTTP 403\ndenied\nHTTP 403\ndenied\n");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn network_failure_exits_3() {
    let f = Fixture::new();
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = request(&f, &[&format!("http://127.0.0.1:{port}/")]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new();
    assert_code(
        &request(&f, &["-H", "Host: evil.example", "http://127.0.0.1:1/"]),
        2,
    );
    assert_code(
        &request(&f, &["-H", "x-autoid-proof: v1.x", "http://127.0.0.1:1/"]),
        2,
    );
    assert_code(&request(&f, &["-H", "no colon", "http://127.0.0.1:1/"]), 2);
    assert_code(&request(&f, &["--bind-body", "http://127.0.0.1:1/"]), 2);
    assert_code(&request(&f, &["--repeat", "0", "http://127.0.0.1:1/"]), 2);
    assert_code(&request(&f, &["file:///etc/passwd"]), 2);
    let bad_ca = f.path("ca.pem");
    std::fs::write(&bad_ca, "not a pem").unwrap();
    let o = request(&f, &["--cacert", &s(&bad_ca), "https://127.0.0.1:1/"]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("ca.pem"), "{}", stderr(&o));
}
