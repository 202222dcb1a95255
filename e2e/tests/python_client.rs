//! The Python client (clients/python, protocol v3) against the real stack: `requests`, `httpx` and
//! `httpx.AsyncClient` over HTTP/1.1 and TLS, driven by clients/python/tests/e2e_driver.py with
//! the venv `make deps-python` creates; then `python -m autoid_client request`. A missing venv is
//! a failure with the command to create it, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Options, PAYMENTS_CREDENTIAL, Stack, repo};
use serde_json::Value;

const VENV_INSTALL: &str = "make deps-python   (or: python3 -m venv .venv-python && \
     .venv-python/bin/pip install cryptography requests httpx pytest && \
     .venv-python/bin/pip install ./clients/python)";

/// The venv's python, with autoid_client, requests and httpx importable; else a failure that
/// says how to create it.
fn python() -> PathBuf {
    let py = repo().join(".venv-python/bin/python");
    if !py.is_file() {
        panic!(
            "{} is missing; the Python client's e2e test needs it. Create it with:\n    {VENV_INSTALL}",
            py.display()
        );
    }
    let out = Command::new(&py)
        .args(["-c", "import autoid_client, requests, httpx"])
        .output()
        .unwrap();
    if !out.status.success() {
        panic!(
            "{} cannot import autoid_client, requests and httpx ({}); install them with:\n    {VENV_INSTALL}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    py
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

#[test]
fn requests_and_httpx_over_http_and_tls_through_the_real_gateway() {
    let py = python();
    let s = Stack::start(&Options::default());
    let out = Command::new(&py)
        .arg(repo().join("clients/python/tests/e2e_driver.py"))
        .arg("--http")
        .arg(s.http.to_string())
        .arg("--https")
        .arg(s.https.to_string())
        .arg("--ca")
        .arg(s.path("tls/ca.pem"))
        .arg("--public-key")
        .arg(s.path("keys/gw-1.pub.pem"))
        .arg("--entropy-dir")
        .arg(s.path(""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let body_sha256 = lines.next().unwrap()["body_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let results: Vec<Value> = lines.collect();
    let find = |client: &str, scheme: &str, case: &str| -> &Value {
        results
            .iter()
            .find(|r| r["client"] == client && r["scheme"] == scheme && r["case"] == case)
            .unwrap_or_else(|| panic!("no result for {client} {scheme} {case}:\n{stdout}"))
    };

    for scheme in ["http", "https"] {
        for client in ["requests", "httpx", "httpx-async"] {
            let what = format!("{client} over {scheme}");
            let allowed = find(client, scheme, "allowed");
            assert_eq!(allowed["status"], 200, "{what}: {allowed}");
            let echo = &allowed["echo"];
            assert_eq!(echo["path"], "/v1/charges?limit=2", "{what}");
            assert_eq!(header(echo, "x-autoid-subject"), Some("alice"), "{what}");
            let groups = header(echo, "x-autoid-groups").unwrap_or_default();
            assert!(
                groups.split(',').any(|g| g == "payments"),
                "{what}: groups {groups:?}"
            );
            assert_eq!(
                header(echo, "authorization"),
                Some(PAYMENTS_CREDENTIAL),
                "{what}"
            );
            assert_eq!(
                header(echo, "x-autoid-proof"),
                None,
                "{what}: the proof reached the upstream"
            );

            let denied = find(client, scheme, "denied");
            assert_eq!(
                denied["status"], 403,
                "{what}: dave is in no group: {denied}"
            );

            let body = find(client, scheme, "body");
            assert_eq!(body["status"], 200, "{what}: {body}");
            assert_eq!(body["echo"]["method"], "POST", "{what}");
            assert_eq!(body["echo"]["body_sha256"], body_sha256.as_str(), "{what}");
            assert_eq!(header(&body["echo"], "x-autoid-subject"), Some("alice"));
        }
        for client in ["requests", "httpx"] {
            let what = format!("{client} over {scheme}");
            assert_eq!(
                find(client, scheme, "replay-first")["status"],
                200,
                "{what}"
            );
            assert_eq!(
                find(client, scheme, "replay-again")["status"],
                401,
                "{what}: a replay"
            );
        }
        for client in ["requests", "httpx"] {
            let percent = find(client, scheme, "percent");
            assert_eq!(percent["status"], 200, "{client} over {scheme}: {percent}");
            assert_eq!(
                percent["echo"]["path"],
                "/v1/caf%C3%A9/~user/a%20b%7C;v=1,2@x?q=%E2%9C%93&r=a+b%26c%5E",
                "{client} over {scheme}: escapes reach the upstream as sent"
            );
        }
        let empty = find("httpx", scheme, "empty-query");
        assert_eq!(empty["status"], 200, "{empty}");
        assert_eq!(empty["echo"]["path"], "/v1/charges?");
        let tampered = find("requests", scheme, "body-tampered");
        assert_eq!(
            tampered["status"], 401,
            "another body than the one bound: {tampered}"
        );
    }

    // Protocol v3, the client's default: every proof was v3; alice's session went out first in
    // the full form with its possession ticket (the gateway checks it before any RSA), then
    // compact; and both forms were allowed.
    let proofs: Vec<&str> = results.iter().filter_map(|r| r["proof"].as_str()).collect();
    assert!(
        !proofs.is_empty() && proofs.iter().all(|p| p.starts_with("v3.")),
        "{proofs:?}"
    );
    let first = find("requests", "http", "allowed");
    assert_eq!(
        first["proof"], "v3.full+ticket",
        "the session's first proof: {first}"
    );
    for form in ["v3.full+ticket", "v3.compact"] {
        assert!(
            results
                .iter()
                .any(|r| r["proof"] == form && r["status"] == 200 && r["echo"]["path"].is_string()),
            "no allowed request with a {form} proof:\n{stdout}"
        );
    }

    // The command line, over TLS with the dev CA: the same output as `autoid request`.
    let cli = |subject: &str| {
        Command::new(&py)
            .args(["-m", "autoid_client", "request", "--subject", subject])
            .arg("--public-key")
            .arg(s.path("keys/gw-1.pub.pem"))
            .arg("--entropy")
            .arg(s.path(&format!("{subject}.entropy")))
            .arg("--cacert")
            .arg(s.path("tls/ca.pem"))
            .args(["--repeat", "2"])
            .arg(format!("https://{}/payments/cli?x=1", s.https))
            .output()
            .unwrap()
    };
    let alice = cli("alice");
    let text = String::from_utf8_lossy(&alice.stdout);
    assert_eq!(
        alice.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let statuses: Vec<&str> = text.lines().filter(|l| l.starts_with("HTTP ")).collect();
    assert_eq!(statuses, ["HTTP 200", "HTTP 200"], "{text}");
    assert!(text.contains("\"path\":\"/v1/cli?x=1\""), "{text}");
    let dave = cli("dave");
    assert_eq!(dave.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dave.stdout).starts_with("HTTP 403\n"));
}
