//! The filter configuration: a full example parses; each kind of bad value is named by path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use autoid_protocol::config::{Config, Groups};
use serde_json::{Value, json};

fn good() -> Value {
    let e = common::epoch();
    json!({
        "keys": [{ "kid": common::KID }],
        "epochs": [{ "id": e.id(), "file_size": e.file_size(), "interval_count": e.interval_count() }],
        "agent": { "cluster": "autoid_agent" },
        "static_groups": { "alice": ["payments", "reports"], "bob": [] },
        "apis": {
            "payments": {
                "require": { "any_of": ["payments"] },
                "inject": { "authorization": "Bearer sk_live_123" },
                "identity": { "subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups" }
            },
            "reports": { "require": { "all_of": ["reports", "payments"] } }
        }
    })
}

fn error_of(v: Value) -> String {
    Config::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).unwrap() = value;
    v
}

#[test]
fn a_full_config_parses_with_defaults() {
    let c = Config::from_json(good().to_string().as_bytes()).unwrap();
    assert_eq!(c.proof_header, "x-autoid-proof");
    assert_eq!(c.limits.max_skew_secs, 60);
    assert!(matches!(c.groups, Groups::Static(_)));
    assert_eq!(c.apis.len(), 2);
    assert!(c.apis["payments"].enabled);
    assert_eq!(
        c.all_managed_headers(),
        vec!["authorization", "x-autoid-groups", "x-autoid-subject"]
    );
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("sk_live_123"),
        "Debug must not print injected secrets"
    );
    assert!(!dbg.contains("PRIVATE KEY"), "Debug must not print keys");
}

#[test]
fn requirements_combine_any_of_and_all_of() {
    let c = Config::from_json(good().to_string().as_bytes()).unwrap();
    let g = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(c.apis["payments"].require.allows(&g(&["payments"])));
    assert!(!c.apis["payments"].require.allows(&g(&["reports"])));
    assert!(!c.apis["payments"].require.allows(&[]));
    assert!(
        c.apis["reports"]
            .require
            .allows(&g(&["reports", "payments"]))
    );
    assert!(!c.apis["reports"].require.allows(&g(&["reports"])));
}

#[test]
fn bad_values_are_named_by_path_and_value() {
    let cases = [
        (
            with(good(), "/apis/payments/require/any_of", json!([""])),
            "apis.payments.require.any_of[0]: empty group name",
        ),
        (
            with(
                good(),
                "/apis/payments/inject",
                json!({"Authorization": "x"}),
            ),
            "apis.payments.inject.Authorization: invalid header name \"Authorization\"",
        ),
        (
            with(good(), "/apis/payments/inject", json!({"host": "x"})),
            "apis.payments.inject.host: header \"host\" is reserved",
        ),
        (
            with(
                good(),
                "/apis/payments/inject",
                json!({"x-a": "a\r\nx-b: b"}),
            ),
            "apis.payments.inject.x-a: value contains CR, LF or NUL",
        ),
        (
            with(
                good(),
                "/apis/payments/inject",
                json!({"x-autoid-proof": "x"}),
            ),
            "apis.payments.inject.x-autoid-proof: the proof header cannot be injected",
        ),
        (
            with(
                good(),
                "/apis/payments/identity/groups_header",
                json!("x-autoid-subject"),
            ),
            "apis.payments: header \"x-autoid-subject\" is set twice",
        ),
        (
            with(good(), "/keys/0/kid", json!("bad kid")),
            "keys[0].kid: invalid key id \"bad kid\"",
        ),
        (
            with(
                good(),
                "/keys/0",
                json!({ "kid": common::KID, "private_key_pem": common::KEY_PEM }),
            ),
            "keys[0].private_key_pem: not accepted: the agent holds the gateway's private keys",
        ),
        (
            with(
                good(),
                "/epochs/0",
                serde_json::from_str(&common::epoch().to_json()).unwrap(),
            ),
            "epochs[0].secret: not accepted: the agent holds the epochs' secrets",
        ),
        (
            with(good(), "/epochs/0/interval_count", json!(8)),
            "epochs[0]: invalid interval count (32 to 256): \"8\"",
        ),
        (
            with(good(), "/apis", json!({})),
            "apis: at least one API is required",
        ),
        (
            with(good(), "/keys", json!([])),
            "keys: at least one key is required",
        ),
        (
            with(good(), "/static_groups/alice", json!(["ok", "a,b"])),
            "static_groups.alice[1]: invalid group name \"a,b\"",
        ),
        (
            with(good(), "/static_groups/alice", json!(["payments "])),
            "static_groups.alice[0]: invalid group name \"payments \"",
        ),
        (
            with(
                good(),
                "/apis/payments/require/any_of",
                json!(["ops,admins"]),
            ),
            "apis.payments.require.any_of[0]: invalid group name \"ops,admins\"",
        ),
        (
            with(good(), "/static_groups", json!({"Alice": ["payments"]})),
            "static_groups: invalid subject \"Alice\"",
        ),
    ];
    for (config, expected) in cases {
        let e = error_of(config);
        assert!(e.starts_with(expected), "got {e:?}, expected {expected:?}");
    }
}

#[test]
fn unknown_fields_and_json_errors_are_reported() {
    let mut v = good();
    v["apis"]["payments"]["requires"] = json!({});
    let e = error_of(v);
    assert!(e.contains("unknown field `requires`"), "{e}");
    let e = Config::from_json(b"{\"keys\": [").unwrap_err().to_string();
    assert!(e.starts_with("(json line 1 column"), "{e}");
}

#[test]
fn limits_and_directory_are_checked() {
    let mut v = good();
    v["limits"] = json!({"max_skew_secs": 0});
    let e = error_of(v);
    assert_eq!(e, "limits.max_skew_secs: 0 is out of range (1 to 600)");
    let mut v = good();
    v["directory"] = json!({"cluster": "bridge", "token": "short"});
    v.as_object_mut().unwrap().remove("static_groups");
    assert_eq!(
        error_of(v.clone()),
        "directory.token: too short (at least 16 characters)"
    );
    v["directory"]["token"] = json!("0123456789abcdef-secret");
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    let Groups::Directory(d) = &c.groups else {
        panic!("directory expected")
    };
    assert_eq!(d.callout.authority, "bridge");
    assert!(
        !format!("{d:?}").contains("0123456789abcdef"),
        "Debug must not print the token"
    );
    assert_eq!(d.callout.token.as_deref(), Some("0123456789abcdef-secret"));
    // An agent on a unix socket: no token (the socket's permissions authenticate Envoy).
    let mut no_token = v.clone();
    no_token["directory"]
        .as_object_mut()
        .unwrap()
        .remove("token");
    no_token["agent"] = json!({"cluster": "bridge"});
    let c = Config::from_json(no_token.to_string().as_bytes()).unwrap();
    let Groups::Directory(d) = &c.groups else {
        panic!("directory expected")
    };
    assert_eq!(d.callout.token, None);
    assert_eq!(c.agent.as_ref().unwrap().callout.token, None);
    no_token["agent"]["token"] = json!("x y");
    assert_eq!(
        error_of(no_token),
        "agent.token: too short (at least 16 characters)"
    );
    v["static_groups"] = json!({});
    assert!(error_of(v).starts_with("static_groups: use either directory or static_groups"));
}

#[test]
fn secrets_never_appear_in_errors() {
    let mut v = good();
    v["epochs"][0]["secret"] = json!("AAAAsecretsecretsecret");
    v["keys"][0]["private_key_pem"] = json!(common::KEY_PEM);
    let e = error_of(v);
    assert!(
        !e.contains("AAAAsecret") && !e.contains("PRIVATE KEY"),
        "{e}"
    );
}

#[test]
fn the_agent_holds_every_key_and_epoch_and_the_filter_lists_their_ids() {
    use autoid_protocol::verify::KnownEpoch;
    let id_only = json!({ "id": "e-agent", "file_size": 65536, "interval_count": 64 });
    let mut v = good();
    v["epochs"].as_array_mut().unwrap().push(id_only.clone());
    let mut no_agent = v.clone();
    no_agent.as_object_mut().unwrap().remove("agent");
    assert!(
        error_of(no_agent)
            .starts_with("agent: required: the agent holds the gateway's private keys"),
    );
    v["agent"] = json!({ "cluster": "autoid_agent", "token": "0123456789abcdef0123" });
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    assert!(matches!(
        c.keyring.known_epoch("e-agent"),
        Some(KnownEpoch::Agent(p)) if p.file_size() == 65536 && p.interval_count() == 64
    ));
    let test = common::epoch();
    assert!(matches!(
        c.keyring.known_epoch(test.id()),
        Some(KnownEpoch::Agent(_))
    ));
    assert!(c.keyring.known_epoch("e-none").is_none());
    for id in ["e-agent", test.id()] {
        assert!(c.keyring.epoch(id).is_none(), "no secret in the filter");
    }
    assert!(
        c.keyring.key(common::KID).is_none(),
        "no private key in the filter"
    );
    assert!(c.keyring.held_by_agent(common::KID));
    assert_eq!(c.agent.as_ref().unwrap().max_stream_ttl_secs, 300);
    assert_eq!(c.entropy_cache.max_streams, 1024);

    let mut dup = v.clone();
    dup["epochs"].as_array_mut().unwrap().push(id_only);
    assert_eq!(
        error_of(dup),
        "epochs[2].id: duplicate epoch id \"e-agent\""
    );
    let mut dup_first = v.clone();
    dup_first["epochs"][1]["id"] = json!(test.id());
    assert_eq!(
        error_of(dup_first),
        format!("epochs[1].id: duplicate epoch id {:?}", test.id())
    );
    let mut bad_size = v.clone();
    bad_size["epochs"][1]["file_size"] = json!(100);
    assert!(error_of(bad_size).starts_with("epochs[1]: "));
    let mut ttl = v.clone();
    ttl["agent"]["max_stream_ttl_secs"] = json!(0);
    assert_eq!(
        error_of(ttl),
        "agent.max_stream_ttl_secs: 0 is out of range (1 to 86400)"
    );
    let mut streams = v.clone();
    streams["entropy_cache"] = json!({ "max_streams": 0 });
    assert_eq!(
        error_of(streams),
        "entropy_cache.max_streams: 0 is out of range (1 to 65536)"
    );
}

#[test]
fn any_epoch_sends_unlisted_epochs_to_the_agent_and_allows_an_empty_list() {
    let mut v = good();
    v["agent"] = json!({ "cluster": "autoid_agent", "token": "0123456789abcdef0123" });
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    assert!(!c.agent.as_ref().unwrap().any_epoch, "off by default");
    assert!(!c.keyring.unlisted_epoch_at_agent("e-new"));
    v["agent"]["any_epoch"] = json!(true);
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    assert!(c.agent.as_ref().unwrap().any_epoch);
    assert!(c.keyring.unlisted_epoch_at_agent("e-new"));
    assert!(
        !c.keyring.unlisted_epoch_at_agent("e-test"),
        "a listed epoch keeps its configuration"
    );
    v["epochs"] = json!([]);
    assert!(Config::from_json(v.to_string().as_bytes()).is_ok());
    v["agent"]["any_epoch"] = json!(false);
    assert_eq!(
        error_of(v),
        "epochs: at least one epoch is required (or `agent.any_epoch: true`)"
    );
}

/// `v` with `apis.reports.auth` set to `auth`.
fn with_auth(mut v: Value, auth: Value) -> Value {
    v["apis"]["reports"]["auth"] = auth;
    v
}

#[test]
fn auth_methods_default_to_proof_and_ldap_basic_is_checked_by_path() {
    use autoid_protocol::config::PlainHttp;
    let c = Config::from_json(good().to_string().as_bytes()).unwrap();
    assert!(c.apis["payments"].proof && c.apis["payments"].basic.is_none());

    let mut v = good();
    v["agent"] = json!({ "cluster": "autoid_agent" });
    let basic = with_auth(
        v.clone(),
        json!({ "methods": ["ldap_basic"], "basic": { "realm": "Legacy tools", "plain_http": "loopback" } }),
    );
    let c = Config::from_json(basic.to_string().as_bytes()).unwrap();
    let api = &c.apis["reports"];
    assert!(!api.proof);
    let b = api.basic.as_ref().unwrap();
    assert_eq!(
        (b.realm.as_str(), b.plain_http, b.cache_ttl_secs),
        ("Legacy tools", PlainHttp::Loopback, 30)
    );

    let auth = |a: Value| error_of(with_auth(v.clone(), a));
    assert_eq!(
        auth(json!({ "methods": [] })),
        "apis.reports.auth.methods: at least one of \"proof\", \"ldap_basic\""
    );
    assert!(
        auth(json!({ "methods": ["proof", "kerberos"] }))
            .starts_with("apis.reports.auth.methods[1]: unknown method \"kerberos\"")
    );
    assert!(
        auth(json!({ "methods": ["proof", "proof"] })).starts_with("apis.reports.auth.methods[1]:")
    );
    assert!(
        auth(json!({ "basic": { "realm": "x" } })).starts_with("apis.reports.auth.basic: set, but")
    );
    assert!(
        auth(json!({ "methods": ["ldap_basic"], "basic": { "realm": "a\"b" } }))
            .starts_with("apis.reports.auth.basic.realm: \"a\\\"b\"")
    );
    assert!(
        auth(json!({ "methods": ["ldap_basic"], "basic": { "plain_http": "yes" } }))
            .starts_with("apis.reports.auth.basic.plain_http: \"yes\"")
    );
    assert!(
        auth(json!({ "methods": ["ldap_basic"], "basic": { "cache_ttl_secs": 301 } }))
            .starts_with("apis.reports.auth.basic.cache_ttl_secs: 301 is out of range")
    );
    // Without an agent no one can check a password (nor hold the keys, which is refused first).
    let mut without = with_auth(good(), json!({ "methods": ["ldap_basic"] }));
    without.as_object_mut().unwrap().remove("agent");
    let no_agent = error_of(without);
    assert!(no_agent.starts_with("agent: required"), "{no_agent}");
}
