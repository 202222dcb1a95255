//! `autoid gateway render|validate --target envoy-ext-authz`: Envoy with ext_authz to the agent's
//! `/v1/check` instead of the wasm filter, and the filter configuration the agent decides with —
//! the same one the wasm target embeds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{assert_code, autoid_in, example_copy, repo, stderr, stdout};
use serde_json::{Value, json};

fn http_filters(bootstrap: &Value, listener: usize) -> Vec<Value> {
    let l = &bootstrap["static_resources"]["listeners"][listener];
    l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        .as_array()
        .unwrap()
        .clone()
}

fn render_ext_authz(dir: &Path) -> (Value, Value) {
    let o = autoid_in(
        dir,
        &[
            "gateway",
            "render",
            "--config",
            ".",
            "--target",
            "envoy-ext-authz",
            "--out",
            "envoy.json",
            "--filter-config",
            "filter.json",
        ],
    );
    assert_code(&o, 0);
    let bootstrap =
        serde_json::from_slice(&std::fs::read(dir.join("envoy.json")).unwrap()).unwrap();
    let filter = serde_json::from_slice(&std::fs::read(dir.join("filter.json")).unwrap()).unwrap();
    (bootstrap, filter)
}

#[test]
fn ext_authz_asks_the_agent_and_the_agent_gets_the_wasm_targets_filter_configuration() {
    let dir = example_copy();
    let (bootstrap, filter) = render_ext_authz(dir.path());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("filter.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The same filter configuration the wasm target embeds.
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let wasm: Value = serde_json::from_slice(&o.stdout).unwrap();
    let embedded = http_filters(&wasm, 0)[0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(filter, serde_json::from_str::<Value>(&embedded).unwrap());
    let text = bootstrap.to_string();
    assert!(!text.contains("envoy.filters.http.wasm"), "{text}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("\"secret\""));

    for listener in [0, 1] {
        let filters = http_filters(&bootstrap, listener);
        let names: Vec<&str> = filters
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.header_mutation",
                "envoy.filters.http.ext_authz",
                "envoy.filters.http.router"
            ]
        );
        let mutations = filters[0]["typed_config"]["mutations"]["request_mutations"]
            .as_array()
            .unwrap();
        let set: Vec<(&str, &str)> = mutations
            .iter()
            .map(|m| {
                assert_eq!(m["append"]["append_action"], "OVERWRITE_IF_EXISTS_OR_ADD");
                (
                    m["append"]["header"]["key"].as_str().unwrap(),
                    m["append"]["header"]["value"].as_str().unwrap(),
                )
            })
            .collect();
        let tls = if listener == 0 { "1" } else { "0" };
        assert_eq!(
            set,
            [
                ("x-autoid-api", "-"),
                ("x-autoid-method", "%REQ(:METHOD)%"),
                ("x-autoid-uri", "%REQ(:PATH)%"),
                ("x-autoid-authority", "%REQ(:AUTHORITY)%"),
                ("x-autoid-peer", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                ("x-autoid-tls", tls),
            ]
        );
        let authz = &filters[1]["typed_config"];
        assert_eq!(authz["failure_mode_allow"], false);
        assert_eq!(authz["status_on_error"]["code"], "ServiceUnavailable");
        assert_eq!(
            authz["with_request_body"],
            json!({"max_request_bytes": 1048576, "allow_partial_message": false, "pack_as_bytes": true})
        );
        let service = &authz["http_service"];
        assert_eq!(service["path_prefix"], "/v1/check");
        assert_eq!(service["server_uri"]["cluster"], "autoid_agent");
        let names = |v: &Value| -> Vec<String> {
            v["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["exact"].as_str().unwrap().to_owned())
                .collect()
        };
        let upstream = names(&service["authorization_response"]["allowed_upstream_headers"]);
        for h in [
            "x-api-key",
            "x-autoid-subject",
            "x-autoid-groups",
            "authorization",
        ] {
            assert!(upstream.iter().any(|u| u == h), "{h} not in {upstream:?}");
        }
        assert!(!upstream.iter().any(|u| u == "x-autoid-status"));
        let to_agent = names(&service["authorization_request"]["allowed_headers"]);
        for h in [
            "x-autoid-proof",
            "x-autoid-api",
            "x-autoid-uri",
            "authorization",
        ] {
            assert!(to_agent.iter().any(|u| u == h), "{h} not in {to_agent:?}");
        }
    }
    // Each route names its API to the agent and removes the contract headers upstream.
    let routes = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"];
    for route in routes.as_array().unwrap() {
        let m = &route["typed_per_filter_config"]["envoy.filters.http.header_mutation"]["mutations"]
            ["request_mutations"][0]["append"]["header"];
        assert_eq!(m["key"], "x-autoid-api");
        assert_eq!(m["value"], route["name"]);
        let removed = route["request_headers_to_remove"].as_array().unwrap();
        assert!(
            removed.contains(&json!("x-autoid-api")) && removed.contains(&json!("x-autoid-peer"))
        );
    }
}

#[test]
fn ext_authz_needs_the_filter_config_file_and_the_agent_on_a_socket() {
    let dir = example_copy();
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "render",
            "--config",
            ".",
            "--target",
            "envoy-ext-authz",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(
            "--target envoy-ext-authz: name where the agent's filter configuration goes with \
             --filter-config FILE"
        ),
        "{}",
        stderr(&o)
    );

    let path = dir.path().join("gateway.json");
    let mut g: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("agent.token"),
        "0123456789abcdef-agent-token",
    )
    .unwrap();
    g["directory"] = json!({"address": "127.0.0.1:9901", "token": {"file": "agent.token"},
                            "ca_file": "demo-secrets/tls/server.cert.pem"});
    std::fs::write(&path, g.to_string()).unwrap();
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "render",
            "--config",
            ".",
            "--target",
            "envoy-ext-authz",
            "--filter-config",
            "filter.json",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(
        e.contains(
            "directory.address: \"127.0.0.1:9901\": --target envoy-ext-authz needs the agent \
             on a unix socket (unix:PATH)"
        ) && !e.contains("0123456789abcdef"),
        "{e}"
    );
    assert!(!dir.path().join("filter.json").exists());
}

#[test]
fn validate_runs_envoy_on_the_ext_authz_bootstrap() {
    let envoy = repo().join(".venv/bin/envoy");
    if !envoy.is_file() {
        // Without Envoy only the definitions are checked (gateway.rs tests that message).
        return;
    }
    let dir = example_copy();
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "validate",
            "--config",
            ".",
            "--target",
            "envoy-ext-authz",
            "--envoy",
            envoy.to_str().unwrap(),
        ],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains(": ok"), "{}", stdout(&o));
}
