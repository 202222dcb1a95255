//! `GET /v1/credentials/{api}` from the built binary: env and file sources, the bearer token,
//! unknown APIs, a file rotated in place, a source gone past its stale window (503), and no value
//! in the logs. Secrets Manager is exercised against moto in e2e/tests/credentials.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use autoid_testkit::agent;
use serde_json::{Value, json};

const TOKEN: &str = "credentials-test-token-0123456789";
const FROM_ENV: &str = "env-value-5c1e";
const FROM_FILE: &str = "Bearer file-value-one-8d2f";
const ROTATED: &str = "Bearer file-value-two-3b7a";

/// Polls `f` until it gives Some, for at most 20 s.
fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    autoid_testkit::eventually(what, Duration::from_secs(20), f)
}

#[test]
fn env_and_file_sources_are_served_rotated_and_expire_after_the_stale_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("upstream.token"), format!("{FROM_FILE}\n")).unwrap();
    std::fs::write(
        d.join("credentials.json"),
        json!({
            "refresh_secs": 1,
            "stale_secs": 1,
            "apis": {"payments": {
                "authorization": {"file": "upstream.token"},
                "x-api-key": {"env": "AUTOID_TEST_API_KEY"}
            }}
        })
        .to_string(),
    )
    .unwrap();
    // No directory is reachable: the agent still serves credentials.
    std::fs::write(
        d.join("agent.json"),
        json!({
            "listen": "127.0.0.1:0",
            // Plain TCP for the test's HTTP client (development opt-in; the default is a socket).
            "insecure_plain_tcp": true,
            "credentials_file": "credentials.json",
            "ldap": {"url": "ldap://127.0.0.1:1", "bind_dn": "cn=x", "connect_timeout_ms": 200},
            "users": {"base": "dc=example,dc=org"},
            "groups": {"base": "ou=groups,dc=example,dc=org"}
        })
        .to_string(),
    )
    .unwrap();
    let agent = agent::start_logged(
        Command::new(env!("CARGO_BIN_EXE_autoid-agent"))
            .args(["--log-format", "json", "--config"])
            .arg(d.join("agent.json"))
            .env("AUTOID_AGENT_TOKEN", TOKEN)
            .env("AUTOID_AGENT_BIND_PASSWORD", "unused")
            .env("AUTOID_TEST_API_KEY", FROM_ENV),
        &d.join("agent.log"),
    )
    .unwrap();
    let (addr, rx, mut lines) = (&agent.addr, &agent.lines, agent.seen.clone());
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let get = |path: &str, token: Option<&str>| -> (u16, Value) {
        // The listening line names the URL (`http://127.0.0.1:<port>` on plain TCP).
        let mut req = http.get(&format!("{addr}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    };

    assert_eq!(get("/v1/credentials/payments", None).0, 401);
    assert_eq!(
        get("/v1/credentials/payments", Some("wrong-token-0123456789")).0,
        401
    );
    assert_eq!(
        get("/v1/credentials/reports", Some(TOKEN)),
        (404, json!({"error": "unknown_api"}))
    );
    let (status, body) = get("/v1/credentials/payments", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["authorization"], FROM_FILE);
    assert_eq!(body["headers"]["x-api-key"], FROM_ENV);
    assert_eq!(body["ttl_secs"], 1);

    // Rotation: a new file (renamed over the old) is served after the next refresh.
    std::fs::write(d.join("new.token"), ROTATED).unwrap();
    std::fs::rename(d.join("new.token"), d.join("upstream.token")).unwrap();
    eventually("the rotated value", || {
        let (_, body) = get("/v1/credentials/payments", Some(TOKEN));
        (body["headers"]["authorization"] == ROTATED).then_some(())
    });

    // The source goes away: the last good value, then (refresh + stale) later, 503.
    std::fs::remove_file(d.join("upstream.token")).unwrap();
    let (status, body) = eventually("503 after the stale window", || {
        let (status, body) = get("/v1/credentials/payments", Some(TOKEN));
        if status == 200 {
            assert_eq!(body["headers"]["authorization"], ROTATED);
            return None;
        }
        Some((status, body))
    });
    assert_eq!(
        (status, body),
        (503, json!({"error": "credentials_unavailable"}))
    );

    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    let all = lines.join("\n");
    assert!(all.contains("credential source failed"), "{all}");
    for value in [FROM_ENV, FROM_FILE, ROTATED, TOKEN] {
        assert!(!all.contains(value), "{value} was logged:\n{all}");
    }
}
