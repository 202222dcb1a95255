//! Every kind of bad configuration is refused at configure time (`build()` fails) with one log
//! line, `autoid: invalid configuration: <field path>: <message>`, that never quotes a secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_host_tests::{HostError, LogLevel};
use common::autoid::{Fixture, KEY_PEM, TOKEN, remove, set};
use serde_json::{Value, json};

/// Builds `config` (raw bytes) and returns the rejection's log lines.
fn rejection(config: Vec<u8>) -> Vec<String> {
    let result = common::plugin()
        .gateway()
        .plugin_config(config)
        .workers(1)
        .build();
    match result {
        Err(HostError::ConfigureRejected { logs, .. }) => logs
            .into_iter()
            .filter(|l| l.level == LogLevel::Error)
            .map(|l| l.message)
            .collect(),
        Err(other) => panic!("expected a configure rejection, got {other}"),
        Ok(_) => panic!("the configuration was accepted"),
    }
}

/// Expects `config` to be refused with exactly `autoid: invalid configuration: {path}: {message}…`.
fn refused(config: &Value, path: &str, message: &str) {
    let lines = rejection(config.to_string().into_bytes());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let prefix = format!("autoid: invalid configuration: {path}: {message}");
    assert!(
        lines[0].starts_with(&prefix),
        "expected {prefix:?}, got {:?}",
        lines[0]
    );
    for secret in [TOKEN, "PRIVATE KEY", &KEY_PEM[40..80], "QkJCQkJCQkJCQkJC"] {
        assert!(!lines[0].contains(secret), "a secret in {:?}", lines[0]);
    }
}

fn base() -> Value {
    Fixture::static_groups().config
}

fn with(path: &str, value: Value) -> Value {
    let mut c = base();
    set(&mut c, path, value);
    c
}

fn without(path: &str) -> Value {
    let mut c = base();
    remove(&mut c, path);
    c
}

fn directory(field: &str, value: Value) -> Value {
    let mut c = Fixture::directory(autoid_host_tests::Cluster::Timeout).config;
    set(&mut c, &format!("/directory/{field}"), value);
    c
}

#[test]
fn the_fixture_configurations_are_accepted() {
    Fixture::static_groups().workers(1).build();
    Fixture::directory(autoid_host_tests::Cluster::Timeout)
        .workers(1)
        .build();
}

#[test]
fn not_json_at_all() {
    let lines = rejection(b"{ not json".to_vec());
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("autoid: invalid configuration: (json line 1 column "),
        "{lines:?}"
    );
    let lines = rejection(Vec::new());
    assert!(
        lines[0].starts_with("autoid: invalid configuration: (json line 1 column 0): EOF"),
        "{lines:?}"
    );
}

#[test]
fn unknown_and_mistyped_fields() {
    let lines = rejection(with("/keyz", json!([])).to_string().into_bytes());
    assert!(lines[0].contains("unknown field `keyz`"), "{lines:?}");
    let lines = rejection(
        with("/apis/payments/require/one_of", json!(["x"]))
            .to_string()
            .into_bytes(),
    );
    assert!(lines[0].contains("unknown field `one_of`"), "{lines:?}");
    let lines = rejection(
        with("/limits/max_skew_secs", json!("60"))
            .to_string()
            .into_bytes(),
    );
    assert!(lines[0].contains("invalid type"), "{lines:?}");
}

#[test]
fn keys() {
    refused(
        &with("/keys", json!([])),
        "keys",
        "at least one key is required",
    );
    refused(&without("/keys"), "keys", "at least one key is required");
    // The filter holds no private key: the agent does (its `session_keys`).
    refused(
        &with(
            "/keys",
            json!([{ "kid": "k1", "private_key_pem": KEY_PEM }]),
        ),
        "keys[0].private_key_pem",
        "not accepted: the agent holds the gateway's private keys",
    );
    refused(
        &with(
            "/keys",
            json!([{ "kid": "k1", "private_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }]),
        ),
        "keys[0].private_key_pem",
        "not accepted",
    );
    refused(
        &with("/keys", json!([{ "kid": "bad kid" }])),
        "keys[0].kid",
        "invalid key id \"bad kid\"",
    );
    refused(
        &with("/keys", json!([{ "kid": "k1" }, { "kid": "k1" }])),
        "keys[1].kid",
        "duplicate key id \"k1\"",
    );
    refused(&without("/agent"), "agent", "required: the agent holds");
}

#[test]
fn epochs() {
    refused(
        &with("/epochs", json!([])),
        "epochs",
        "at least one epoch is required",
    );
    let epoch = |patch: Value| {
        let mut e = base()["epochs"][0].clone();
        for (k, v) in patch.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    // The filter holds no epoch secret: the agent does (its `epoch_files`).
    refused(
        &with(
            "/epochs",
            json!([epoch(json!({ "secret": "QkJCQkJCQkJCQkJC" }))]),
        ),
        "epochs[0].secret",
        "not accepted: the agent holds the epochs' secrets",
    );
    refused(
        &with(
            "/epochs",
            json!([serde_json::from_str::<Value>(&common::autoid::epoch().to_json()).unwrap()]),
        ),
        "epochs[0].secret",
        "not accepted",
    );
    refused(
        &with("/epochs", json!([epoch(json!({ "autoid_epoch": 2 }))])),
        "epochs[0].autoid_epoch",
        "unsupported version",
    );
    refused(
        &with("/epochs", json!([epoch(json!({ "file_size": 100 }))])),
        "epochs[0]",
        "invalid entropy file size",
    );
    refused(
        &with("/epochs", json!([epoch(json!({ "interval_count": 8 }))])),
        "epochs[0]",
        "invalid interval count",
    );
    refused(
        &with("/epochs", json!([epoch(json!({ "id": "" }))])),
        "epochs[0]",
        "invalid epoch id",
    );
    refused(
        &with("/epochs", json!([epoch(json!({})), epoch(json!({}))])),
        "epochs[1].id",
        "duplicate epoch id \"e1\"",
    );
}

#[test]
fn limits_and_cache_sizes() {
    for (path, value, message) in [
        ("limits.max_skew_secs", 0, "0 is out of range (1 to 600)"),
        (
            "limits.max_skew_secs",
            601,
            "601 is out of range (1 to 600)",
        ),
        (
            "limits.session_lifetime_secs",
            59,
            "59 is out of range (60 to 604800)",
        ),
        ("session_cache.max_entries", 0, "0 is out of range (1 to "),
        (
            "session_cache.local_max_entries",
            10_000_000,
            "10000000 is out of range (1 to ",
        ),
        (
            "cold_path.unwraps_per_second",
            0,
            "0 is out of range (1 to ",
        ),
        ("cold_path.burst", 0, "0 is out of range (1 to "),
        (
            "cold_path.per_source_burst",
            101,
            "101 is out of range (1 to 100)",
        ),
        (
            "cold_path.per_source_unwraps_per_second",
            51,
            "51 is out of range (1 to 50)",
        ),
        ("replay.buckets", 0, "0 is out of range (1 to "),
        ("replay.slots_per_bucket", 0, "0 is out of range (1 to "),
        (
            "replay.slots_per_bucket",
            100_000,
            "100000 is out of range (1 to ",
        ),
    ] {
        let pointer = format!("/{}", path.replace('.', "/"));
        refused(&with(&pointer, json!(value)), path, message);
    }
}

#[test]
fn groups_source() {
    refused(
        &without("/static_groups"),
        "directory",
        "required (or static_groups, for tests and demos)",
    );
    let mut both = Fixture::directory(autoid_host_tests::Cluster::Timeout).config;
    set(&mut both, "/static_groups", json!({}));
    refused(
        &both,
        "static_groups",
        "use either directory or static_groups, not both",
    );
    refused(
        &with("/static_groups", json!({ "al\u{1}ice": ["x"] })),
        "static_groups",
        "invalid subject \"al\\u{1}ice\"",
    );
    refused(
        &with("/static_groups", json!({ "alice": ["payments", " "] })),
        "static_groups.alice[1]",
        "empty group name",
    );
    refused(
        &with("/static_groups", json!({ "alice": ["a,b"] })),
        "static_groups.alice[0]",
        "invalid group name \"a,b\"",
    );
}

#[test]
fn directory_fields() {
    refused(
        &directory("cluster", json!(" ")),
        "directory.cluster",
        "empty cluster name",
    );
    refused(
        &directory("token", json!("short")),
        "directory.token",
        "too short (at least 16 characters)",
    );
    refused(
        &directory("token", json!("a token with spaces in it")),
        "directory.token",
        "must not contain spaces or control characters",
    );
    refused(
        &directory("timeout_ms", json!(0)),
        "directory.timeout_ms",
        "0 is out of range (1 to 60000)",
    );
    refused(
        &directory("max_entries", json!(0)),
        "directory.max_entries",
        "0 is out of range (1 to 4194304)",
    );
    // No token is not an error: an agent on a unix socket (Envoy's `pipe` cluster) needs none,
    // and the callout then carries no `authorization` header (plugin_directory.rs).
    let mut c = Fixture::directory(autoid_host_tests::Cluster::Timeout).config;
    remove(&mut c, "/directory/token");
    let built = common::plugin()
        .gateway()
        .plugin_config(c.to_string())
        .workers(1)
        .build();
    assert!(built.is_ok(), "a directory without a token was refused");
}

#[test]
fn apis() {
    refused(
        &with("/apis", json!({})),
        "apis",
        "at least one API is required",
    );
    refused(
        &with("/apis/payments/require/any_of", json!(["payments", ""])),
        "apis.payments.require.any_of[1]",
        "empty group name",
    );
    refused(
        &with("/apis/admin/require/all_of", json!(["a\nb"])),
        "apis.admin.require.all_of[0]",
        "invalid group name",
    );
    refused(
        &with("/apis/payments/inject/X-Api-Key", json!("v")),
        "apis.payments.inject.X-Api-Key",
        "invalid header name \"X-Api-Key\" (lowercase token expected)",
    );
    refused(
        &with("/apis/payments/inject/host", json!("evil")),
        "apis.payments.inject.host",
        "header \"host\" is reserved",
    );
    refused(
        &with("/apis/payments/inject/x-autoid-proof", json!("v")),
        "apis.payments.inject.x-autoid-proof",
        "the proof header cannot be injected",
    );
    refused(
        &with("/apis/payments/inject/x-api-key", json!("v\r\nx-admin: 1")),
        "apis.payments.inject.x-api-key",
        "value contains CR, LF or NUL",
    );
    refused(
        &with("/apis/payments/identity/subject_header", json!("x subject")),
        "apis.payments.identity.subject_header",
        "invalid header name",
    );
    refused(
        &with("/apis/payments/identity/groups_header", json!(":path")),
        "apis.payments.identity.groups_header",
        "invalid header name",
    );
    refused(
        &with("/apis/payments/identity/subject_header", json!("x-api-key")),
        "apis.payments",
        "header \"x-api-key\" is set twice",
    );
    refused(
        &with(
            "/apis/reports/identity/groups_header",
            json!("x-autoid-proof"),
        ),
        "apis.reports",
        "the proof header cannot be an identity header",
    );
    // Type errors come from serde: they give a line and column, not a field path.
    let lines = rejection(
        with("/apis/reports/enabled", json!("yes"))
            .to_string()
            .into_bytes(),
    );
    assert!(
        lines[0].starts_with("autoid: invalid configuration: (json line 1 column ")
            && lines[0].contains("invalid type: string \"yes\", expected a boolean"),
        "{lines:?}"
    );
}

#[test]
fn proof_header_name() {
    refused(
        &with("/proof_header", json!("X-Proof")),
        "proof_header",
        "invalid header name \"X-Proof\"",
    );
    refused(
        &with("/proof_header", json!("content-length")),
        "proof_header",
        "header \"content-length\" is reserved",
    );
}

#[test]
fn every_worker_refuses_and_the_first_stops_the_build() {
    let result = Fixture::static_groups()
        .with("/keys", json!([]))
        .workers(3)
        .try_build();
    let Err(HostError::ConfigureRejected { worker, .. }) = result else {
        panic!("expected a configure rejection");
    };
    assert_eq!(worker, 0);
}

#[test]
fn fleet_replay_settings() {
    for (path, value, message) in [
        (
            "replay.scope",
            json!("global"),
            "\"global\": expected \"local\" or \"fleet\"",
        ),
        (
            "replay.on_fleet_failure",
            json!("allow"),
            "\"allow\": expected \"deny\" or \"local\"",
        ),
        (
            "replay.fleet_timeout_ms",
            json!(0),
            "0 is out of range (1 to 10000)",
        ),
    ] {
        let pointer = format!("/{}", path.replace('.', "/"));
        refused(&with(&pointer, value), path, message);
    }
    // The fleet claim goes through the agent: without one, nothing could claim (nor hold the
    // gateway's key, which is refused first).
    let mut c = with("/replay/scope", json!("fleet"));
    remove(&mut c, "/agent");
    refused(&c, "agent", "required");
}
