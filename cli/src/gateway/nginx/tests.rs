//! The nginx render's tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::Path;

use anyhow::Result;
use autoid_protocol::config::Config;
use serde_json::{Value, json};

use super::location::regex_literal;
use super::text::ms;
use super::{RESTORED, Rendered, cleared_contract_headers, render};
use crate::gateway::defs::Definitions;
use crate::gateway::envoy::INTERMEDIATE_CIPHERS;

/// A config directory: the agent holds keys and epochs, so the key file is never read.
fn fixture(gateway: impl FnOnce(&mut Value), apis: &[Value]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::write(d.join("keys/gw-1.key.pem"), "not read").unwrap();
    let epoch = autoid_protocol::entropy::Epoch::new(
        "ep-1",
        [7; 32],
        autoid_protocol::policy::DEFAULT_FILE_SIZE,
        autoid_protocol::policy::DEFAULT_INTERVAL_COUNT,
    )
    .unwrap();
    std::fs::write(d.join("ep-1.epoch.json"), epoch.to_json()).unwrap();
    std::fs::set_permissions(
        d.join("ep-1.epoch.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut g = json!({
        "listeners": {
            "https": {"address": "127.0.0.1", "port": 8443,
                      "cert_file": "tls/server.pem", "key_file": "tls/server.key"},
            "http": {"address": "127.0.0.1", "port": 8080}
        },
        "plugin": {"wasm_file": "x.wasm", "keys_dir": "keys", "session_keys": "agent",
                   "epochs": "agent", "epoch_files": ["ep-1.epoch.json"]},
        "directory": {"address": "unix:agent.sock", "timeout_ms": 500}
    });
    gateway(&mut g);
    std::fs::write(d.join("gateway.json"), g.to_string()).unwrap();
    std::fs::create_dir_all(d.join("apis")).unwrap();
    for api in apis {
        let id = api["id"].as_str().unwrap();
        std::fs::write(d.join(format!("apis/{id}.json")), api.to_string()).unwrap();
    }
    dir
}

fn demo_apis() -> Vec<Value> {
    vec![
        json!({"id": "payments", "name": "Payments", "listen_path": "/payments/",
               "strip_listen_path": true, "upstream": "http://127.0.0.1:9000/v1/payments/",
               "auth": {"require": {"any_of": ["payments"]},
                        "inject": {"authorization": {"env": "PAY"}, "x-tenant": {"value": "t"}},
                        "identity": {"subject_header": "x-autoid-subject",
                                     "groups_header": "x-autoid-groups"}}}),
        json!({"id": "legacy", "name": "Legacy", "listen_path": "/legacy/",
               "upstream": "http://127.0.0.1:9000",
               "auth": {"methods": ["ldap_basic"], "basic": {"plain_http": "loopback"},
                        "require": {"any_of": ["g"]},
                        "inject": {"x-api-key": {"env": "LEGACY"}}}}),
        json!({"id": "secrets", "name": "Signed", "listen_path": "/secrets/",
               "upstream": "http://127.0.0.1:4566",
               "aws_service": {"service": "secretsmanager", "region": "us-east-1",
                               "role_arn": "arn:aws:iam::1:role/r"},
               "auth": {"require": {"any_of": ["g"]}}}),
    ]
}

fn render_dir(dir: &Path) -> Result<Rendered> {
    let defs = Definitions::load(dir)?;
    let value = super::super::filter::build(&defs)?;
    let config = Config::from_json(&serde_json::to_vec(&value)?).unwrap();
    render(&defs, &config)
}

fn rendered() -> Rendered {
    let dir = fixture(|_| {}, &demo_apis());
    render_dir(dir.path()).unwrap()
}

/// The variable `proxy_pass <upstream>$var;` in `block` sends.
fn target_of(block: &str, upstream: &str) -> String {
    let at = block
        .find(&format!("proxy_pass {upstream}$"))
        .unwrap_or_else(|| panic!("no proxy_pass {upstream}$… in\n{block}"));
    let rest = &block[at + "proxy_pass ".len() + upstream.len()..];
    rest[..rest.find(';').unwrap()].to_owned()
}

/// The blocks `location <name> {…}`, one per server that has it.
fn blocks<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("        location {name} {{\n");
    text.match_indices(&open)
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest.find("\n        }\n").unwrap();
            &rest[..end]
        })
        .collect()
}

fn error_of(dir: &Path) -> String {
    format!("{:#}", render_dir(dir).unwrap_err())
}

#[test]
fn times() {
    assert_eq!(ms(1500), "1500ms");
    assert_eq!(ms(2000), "2s");
}

#[test]
fn tls_is_mozilla_intermediate_with_hsts_and_http2() {
    let r = rendered();
    let https = &r.text[r.text.find("listen 127.0.0.1:8443").unwrap()..];
    let https = &https[..https.find("listen 127.0.0.1:8080").unwrap()];
    for line in [
        "listen 127.0.0.1:8443 ssl http2;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_tickets off;",
        "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
        "add_header Strict-Transport-Security \"max-age=63072000\" always;",
        "proxy_hide_header Strict-Transport-Security;",
    ] {
        assert!(https.contains(line), "{line} missing in\n{https}");
    }
    assert!(https.contains(&format!("ssl_ciphers {};", INTERMEDIATE_CIPHERS.join(":"))));
    assert!(!r.text.contains("TLSv1.1") && !r.text.contains("TLSv1 "));
    // The plain listener has no TLS and no HSTS.
    let plain = &r.text[r.text.find("listen 127.0.0.1:8080").unwrap()..];
    assert!(!plain.contains("Strict-Transport-Security"), "{plain}");
    assert!(plain.starts_with("listen 127.0.0.1:8080;\n"));
    // Every uniform reply on the TLS listener carries HSTS too (locations with their own
    // add_header do not inherit the server's).
    for name in ["@autoid_401", "@autoid_403", "@autoid_denied", "/"] {
        let b = blocks(https, name);
        assert_eq!(b.len(), 1, "{name}");
        assert!(b[0].contains("Strict-Transport-Security"), "{}", b[0]);
    }
}

#[test]
fn the_agent_gets_the_contract_headers_from_nginx_never_from_the_client() {
    let r = rendered();
    for (id, tls) in [("payments", "1"), ("legacy", "1")] {
        let b = blocks(&r.text, &format!("= /_autoid/check/{id}"));
        assert_eq!(b.len(), 2, "one per server");
        for (i, block) in b.iter().enumerate() {
            let tls = if i == 0 { tls } else { "0" };
            for line in [
                "internal;".to_owned(),
                "proxy_pass http://autoid_agent/v1/check;".to_owned(),
                "proxy_pass_request_body off;".to_owned(),
                "proxy_set_header Content-Length \"\";".to_owned(),
                format!("proxy_set_header x-autoid-api {id};"),
                "proxy_set_header x-autoid-method $request_method;".to_owned(),
                "proxy_set_header x-autoid-uri $request_uri;".to_owned(),
                "proxy_set_header x-autoid-authority $http_host;".to_owned(),
                "proxy_set_header x-autoid-peer $remote_addr;".to_owned(),
                format!("proxy_set_header x-autoid-tls {tls};"),
                "proxy_read_timeout 2s;".to_owned(),
            ] {
                assert!(block.contains(&line), "{line} missing in\n{block}");
            }
        }
    }
    // Each of the contract's headers is set in every check location: none is left to the
    // client's copy.
    for h in ["api", "method", "uri", "authority", "peer", "tls"] {
        let set = r
            .text
            .matches(&format!("proxy_set_header x-autoid-{h} "))
            .count();
        let cleared = r
            .text
            .matches(&format!("proxy_set_header x-autoid-{h} \"\";"))
            .count();
        assert_eq!(set - cleared, 4, "x-autoid-{h}: 2 APIs × 2 servers");
        assert_eq!(cleared, 4, "x-autoid-{h}: cleared upstream");
    }
    assert!(r.text.contains("server unix:"), "{}", r.text);
    assert!(r.text.contains("/agent.sock;"));
}

#[test]
fn upstream_requests_get_the_agents_values_and_lose_every_client_copy() {
    let r = rendered();
    let managed = [
        "authorization",
        "x-api-key",
        "x-autoid-groups",
        "x-autoid-subject",
        "x-tenant",
    ];
    for block in blocks(&r.text, "/payments/") {
        for (name, value) in [
            ("x-autoid-proof", "\"\""),
            ("authorization", "$autoid_h_authorization"),
            ("x-tenant", "$autoid_h_x_tenant"),
            ("x-autoid-subject", "$autoid_h_x_autoid_subject"),
            ("x-autoid-groups", "$autoid_h_x_autoid_groups"),
            ("x-api-key", "\"\""),
        ] {
            assert!(
                block.contains(&format!("proxy_set_header {name} {value};")),
                "{name} in\n{block}"
            );
        }
        for name in [
            "authorization",
            "x-tenant",
            "x-autoid-subject",
            "x-autoid-groups",
        ] {
            let v = name.replace('-', "_");
            assert!(block.contains(&format!(
                "auth_request_set $autoid_h_{v} $upstream_http_{v};"
            )));
        }
        assert!(block.contains("auth_request /_autoid/check/payments;"));
        for name in cleared_contract_headers() {
            assert!(
                block.contains(&format!("proxy_set_header {name} \"\";")),
                "{name}"
            );
        }
        // The raw bytes after the listen path, or 400 (the map says which).
        let target = target_of(block, "http://autoid_api_payments");
        assert!(r.text.contains(&format!(
            "    map $request_uri {target} {{\n        \"~^/payments/(.*)$\" \"/v1/payments/$1\";\n        default \"\";\n    }}"
        )), "{}", r.text);
        assert!(block.contains(&format!(
            "if ({target} = \"\") {{\n                set $autoid_status 400;\n                return 500;\n            }}"
        )), "{block}");
        assert!(block.contains("proxy_set_header Host \"127.0.0.1:9000\";"));
    }
    for block in blocks(&r.text, "/legacy/") {
        // Basic: the password never goes upstream; the other API's headers are cleared.
        assert!(
            block.contains("proxy_set_header authorization \"\";"),
            "{block}"
        );
        assert!(block.contains("proxy_set_header x-api-key $autoid_h_x_api_key;"));
        assert!(block.contains("proxy_set_header x-autoid-subject \"\";"));
        // Not stripped, upstream base `/`: the listen path stays.
        let target = target_of(block, "http://autoid_api_legacy");
        assert!(r.text.contains(&format!(
            "    map $request_uri {target} {{\n        \"~^/legacy/(.*)$\" \"/legacy/$1\";"
        )));
    }
    // No API location leaves a managed header or the proof to the client.
    for api in ["/payments/", "/legacy/"] {
        for block in blocks(&r.text, api) {
            for name in managed.iter().chain(&["x-autoid-proof"]) {
                assert_eq!(
                    block.matches(&format!("proxy_set_header {name} ")).count(),
                    1,
                    "{name} in\n{block}"
                );
            }
        }
    }
}

#[test]
fn denials_restore_the_agents_status_and_body() {
    let r = rendered();
    for block in blocks(&r.text, "@autoid_denied") {
        for (status, error) in RESTORED {
            assert!(block.contains(&format!(
                "return {status} '{{\"error\":\"{error}\",\"request_id\":\"$autoid_request_id\"}}';"
            )));
        }
        assert!(block.contains("if ($autoid_status = 429) {"));
        assert!(block.contains("add_header Retry-After $autoid_retry_after always;"));
        // Anything else (no answer: the agent down) is the last line: 503.
        assert!(block.trim_end().ends_with(
            "return 503 '{\"error\":\"unavailable\",\"request_id\":\"$autoid_request_id\"}';"
        ));
    }
    assert_eq!(
        r.text.matches("error_page 500 = @autoid_denied;").count(),
        4
    );
    assert_eq!(r.text.matches("error_page 401 = @autoid_401;").count(), 4);
    // nginx's own 400 (a request line it refuses) answers the uniform body, in both servers.
    assert_eq!(
        r.text
            .matches("error_page 400 /_autoid/bad_request;")
            .count(),
        2
    );
    let bad = blocks(&r.text, "= /_autoid/bad_request");
    assert_eq!(bad.len(), 2);
    for block in bad {
        assert!(block.contains("internal;"), "{block}");
        assert!(block.contains(
            "return 400 '{\"error\":\"bad_request\",\"request_id\":\"$autoid_request_id\"}';"
        ));
    }
    assert_eq!(r.text.matches("error_page 403 = @autoid_403;").count(), 4);
}

#[test]
fn a_listen_path_is_matched_byte_for_byte_on_the_raw_target() {
    assert_eq!(regex_literal("/payments/"), "/payments/");
    assert_eq!(regex_literal("/a.b+c/"), "/a\\x2eb\\x2bc/");
    assert_eq!(regex_literal("/\"$x/"), "/\\x22\\x24x/");
    assert_eq!(regex_literal("/é/"), "/\\xc3\\xa9/");
}

#[test]
fn an_api_nginx_cannot_serve_is_left_out_with_a_warning() {
    let r = rendered();
    assert!(!r.text.contains("/secrets/"));
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("apis/secrets.json: aws_service: nginx cannot sign"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn an_https_upstream_is_verified_against_its_ca_and_name() {
    let mut api = demo_apis().remove(0);
    api["upstream"] = json!("https://api.example:8443/v1/payments/");
    api["upstream_ca_file"] = json!("upstream-ca.pem");
    api["strip_listen_path"] = json!(false);
    let dir = fixture(|_| {}, &[api]);
    let r = render_dir(dir.path()).unwrap();
    let ca = std::path::absolute(dir.path().join("upstream-ca.pem")).unwrap();
    for block in blocks(&r.text, "/payments/") {
        for line in [
            "proxy_ssl_verify on;".to_owned(),
            format!("proxy_ssl_trusted_certificate {};", ca.display()),
            "proxy_ssl_name api.example;".to_owned(),
            "proxy_ssl_server_name on;".to_owned(),
            "proxy_ssl_protocols TLSv1.2 TLSv1.3;".to_owned(),
            "proxy_set_header Host \"api.example:8443\";".to_owned(),
            // Not stripped: the base path, then the listen path (the Envoy route's rewrite).
        ] {
            assert!(block.contains(&line), "{line} missing in\n{block}");
        }
        assert_eq!(
            target_of(block, "https://autoid_api_payments"),
            "$autoid_target_0"
        );
    }
    // Not stripped: the base path, then the listen path (the Envoy route's rewrite).
    assert!(
        r.text.contains(
            "    map $request_uri $autoid_target_0 {\n        \"~^/payments/(.*)$\" \"/v1/payments/payments/$1\";\n        default \"\";\n    }"
        ),
        "{}",
        r.text
    );
    assert!(r.text.contains("server api.example:8443;"));
}

#[test]
fn errors_name_the_field_and_the_value() {
    let tcp = fixture(
        |g| {
            g["directory"] = json!({"address": "127.0.0.1:9443", "token": {"value": "0123456789abcdef0123"},
                                    "ca_file": "ca.pem"});
        },
        &demo_apis()[..1],
    );
    let e = error_of(tcp.path());
    assert!(
        e.contains("gateway.json: directory.address: nginx reaches the agent's check on its unix socket only")
            && e.contains("\"127.0.0.1:9443\""),
        "{e}"
    );
    let port0 = fixture(
        |g| g["listeners"]["http"]["port"] = json!(0),
        &demo_apis()[..1],
    );
    let e = error_of(port0.path());
    assert!(
        e.contains("gateway.json: listeners.http.port: nginx cannot listen on port 0"),
        "{e}"
    );
    let mut api = demo_apis().remove(0);
    api["upstream"] = json!("https://10.1.2.3/v1/");
    let ip = fixture(|_| {}, &[api]);
    let e = error_of(ip.path());
    assert!(
        e.contains("apis/payments.json: upstream: nginx verifies an https upstream by host name")
            && e.contains("\"https://10.1.2.3/v1/\""),
        "{e}"
    );
    let mut api = demo_apis().remove(0);
    api["auth"]["inject"]["x.odd"] = json!({"value": "v"});
    let odd = fixture(|_| {}, &[api]);
    let e = error_of(odd.path());
    assert!(
        e.contains("apis/payments.json: auth.inject.x.odd: nginx can copy only")
            && e.contains("\"x.odd\""),
        "{e}"
    );
}
