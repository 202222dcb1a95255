//! Upstream credentials from AWS Secrets Manager (moto in server mode), resolved by the real agent
//! and injected by the filter in real Envoy: the secret's value and a JSON key of another are
//! injected; a new AWSCURRENT version reaches the upstream within the refresh interval while a
//! client keeps sending, with no failed request; with moto stopped the last good value is served
//! for the stale windows, then 503; neither the rendered bootstrap nor a live config_dump holds a
//! credential value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Credentials, Options, Stack, eventually, unix_request};

const SECRET: &str = "autoid/e2e/payments-upstream";
const JSON_SECRET: &str = "autoid/e2e/payments-keys";
const V1: &str = "Bearer moto-served-v1-0f3a";
const V2: &str = "Bearer moto-served-v2-77c1";
const JSON_V1: &str = "pk-json-key-v1-91b2";

fn options() -> Options {
    Options {
        credentials: Some(Credentials {
            secret_id: SECRET.into(),
            value: V1.into(),
            json_secret_id: JSON_SECRET.into(),
            json_value: format!(r#"{{"api_key":"{JSON_V1}","other":"unused-7d"}}"#),
            json_key: "api_key".into(),
            refresh_secs: 1,
            stale_secs: 3,
        }),
        ..Options::default()
    }
}

#[test]
fn secrets_manager_values_are_injected_rotated_without_failures_and_expire_after_the_stale_window()
{
    let mut s = Stack::start(&options());

    // 1. Injected: the secret's value, and one key of a JSON secret; the client's copy replaced.
    let r = s.get_as(
        "alice",
        "/payments/charges",
        &[("authorization", "Bearer forged")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("authorization"), [V1]);
    assert_eq!(r.echoed("x-payments-key"), [JSON_V1]);
    assert_eq!(r.echoed("x-tenant"), ["acme"]);

    // 2. Envoy's configuration holds no credential: not the bootstrap, not a live config_dump.
    let bootstrap = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    let dump = unix_request(&s.admin, "GET", "/config_dump?include_eds").unwrap();
    assert_eq!(dump.status, 200);
    let dump = String::from_utf8_lossy(&dump.body).into_owned();
    assert!(
        dump.contains("agent_headers"),
        "the dump has the filter config"
    );
    for value in [V1, V2, JSON_V1, "unused-7d", "moto-served"] {
        assert!(!bootstrap.contains(value), "{value} in the bootstrap");
        assert!(!dump.contains(value), "{value} in config_dump");
    }

    // 3. Rotation: a new AWSCURRENT version while a client keeps sending; every request is a
    //    200, and the new value arrives (within the refresh interval plus the cache's ttl).
    s.moto
        .as_ref()
        .unwrap()
        .put_secret_value(SECRET, V2)
        .unwrap();
    let mut sent = 0;
    eventually(
        "the new secret version injected",
        Duration::from_secs(30),
        || {
            let r = s.get_as("alice", "/payments/charges", &[]);
            sent += 1;
            assert_eq!(
                r.status,
                200,
                "request {sent} during the rotation failed: {}",
                String::from_utf8_lossy(&r.body)
            );
            let auth = r.echoed("authorization");
            assert!(auth == [V1] || auth == [V2], "{auth:?}");
            (auth == [V2]).then_some(())
        },
    );
    assert!(s.counter("autoid_credentials_refreshes") >= 1);

    // 4. moto goes away: the last good value is served for the stale windows, then 503.
    s.moto.as_mut().unwrap().stop();
    let r = s.get_as("alice", "/payments/charges", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("authorization"), [V2]);
    let denied = eventually(
        "503 once the stale windows are over",
        Duration::from_secs(60),
        || {
            let r = s.get_as("alice", "/payments/charges", &[]);
            match r.status {
                200 => {
                    assert_eq!(r.echoed("authorization"), [V2], "only the last good value");
                    None
                }
                503 => Some(r),
                other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&r.body)),
            }
        },
    );
    assert_eq!(denied.json()["error"], "unavailable");
    let line = s.envoy_log_line(&["autoid: deny status=503 reason=credentials"]);
    assert!(!line.contains("moto-served"), "{line}");
    assert!(s.counter("autoid_credentials_failures") >= 1);
    let agent_log = s.agent_proc.as_ref().unwrap().log_text();
    assert!(
        agent_log.contains("credential source failed"),
        "{agent_log}"
    );
    for value in [V1, V2, JSON_V1] {
        assert!(!agent_log.contains(value), "a value in the agent's log");
        assert!(!s.envoy_log().contains(value), "a value in Envoy's log");
    }
    // An API without agent headers is unaffected: alice is refused admin for her groups (403),
    // not for credentials.
    let r = s.get_as("alice", "/admin/x", &[]);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
}
