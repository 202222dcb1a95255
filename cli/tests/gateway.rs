//! `autoid gateway render|validate` and `autoid config validate`: the checked-in example stays in
//! sync, the output is 0600 and holds a valid filter configuration, and errors name the file, the
//! field and the value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_code, autoid_in, example_copy, repo, stderr, stdout};
use serde_json::Value;

fn wasm_filter_config(bootstrap: &Value) -> Value {
    let listener = &bootstrap["static_resources"]["listeners"][0];
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let wasm = &hcm["http_filters"][0]["typed_config"]["config"];
    // A failed VM is reloaded (after a backoff), never left dead; requests meanwhile are denied.
    assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    assert!(wasm["reload_config"]["backoff"]["base_interval"].is_string());
    assert_eq!(wasm["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
    serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap()
}

#[test]
fn the_checked_in_example_is_what_render_produces() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("envoy.json");
    let o = autoid_in(
        &repo(),
        &[
            "gateway",
            "render",
            "--config",
            "gateway-config/examples",
            "--relative-to",
            ".",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_code(&o, 0);
    let fresh = std::fs::read_to_string(&file).unwrap();
    let checked_in =
        std::fs::read_to_string(repo().join("gateway-config/examples/envoy.json")).unwrap();
    assert!(
        fresh == checked_in,
        "gateway-config/examples/envoy.json is out of date; regenerate it from the repo root with:\n  \
         target/release/autoid gateway render --config gateway-config/examples --relative-to . \
         --out gateway-config/examples/envoy.json"
    );
}

#[test]
fn render_writes_0600_with_named_routes_and_a_valid_filter_config() {
    use std::os::unix::fs::PermissionsExt;
    let dir = example_copy();
    let file = dir.path().join("out.json");
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "render",
            "--config",
            ".",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_code(&o, 0);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bootstrap: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Admin on a unix socket beside the output, mode 0600: no TCP admin listener at all.
    let admin = &bootstrap["admin"]["address"];
    assert!(admin.get("socket_address").is_none(), "{admin}");
    assert_eq!(
        admin["pipe"]["path"],
        dir.path().join("envoy-admin.sock").to_str().unwrap(),
        "the socket the definitions name"
    );
    assert_eq!(admin["pipe"]["mode"], 0o600);
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("WARNING"),
        "no warning for the default"
    );
    // Body-bound proofs need Envoy to deliver the body to a filter that paused the headers.
    let wasm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"][0]["typed_config"]["config"]
        .clone();
    assert_eq!(wasm["allow_on_headers_stop_iteration"], true);
    // Paths and header names are normalized or refused before routing.
    for listener in bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
    {
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["normalize_path"], true);
        assert_eq!(hcm["merge_slashes"], true);
        assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
        assert_eq!(
            hcm["common_http_protocol_options"]["headers_with_underscores_action"],
            "REJECT_REQUEST"
        );
        assert_eq!(listener["per_connection_buffer_limit_bytes"], 2 << 20);
    }
    let config = wasm_filter_config(&bootstrap);
    assert_eq!(config["directory"]["cluster"], "autoid_agent");
    // The payments credential is the agent's to resolve: the filter knows the header's name only.
    assert_eq!(
        config["apis"]["payments"]["agent_headers"],
        serde_json::json!(["authorization"])
    );
    assert!(
        config["apis"]["payments"]["inject"]
            .get("authorization")
            .is_none()
    );
    assert_eq!(
        config["apis"]["payments"]["inject"]["x-api-tenant"],
        "demo-tenant"
    );
    assert_eq!(config["agent"]["cluster"], "autoid_agent");
    assert_eq!(config["apis"]["admin"]["enabled"], false);
    // Route names are the API ids: the filter keys its definitions on `xds.route_name`.
    let https = &bootstrap["static_resources"]["listeners"][0];
    assert_eq!(https["name"], "autoid_https");
    let hcm = &https["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
    let names: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "payments", "reports"]);
    assert_eq!(routes[1]["route"]["prefix_rewrite"], "/v1/");
    let tls = &https["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"];
    assert_eq!(tls["tls_params"]["tls_minimum_protocol_version"], "TLSv1_2");
    assert_eq!(
        tls["tls_params"]["ecdh_curves"],
        serde_json::json!(["X25519", "P-256", "P-384"])
    );
    assert_eq!(
        hcm["route_config"]["response_headers_to_add"][0]["header"]["key"],
        "strict-transport-security"
    );

    // The same file, written through stdout.
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), std::fs::read_to_string(&file).unwrap());
}

#[test]
fn with_resolve_render_env_and_file_values_are_baked_in() {
    let dir = example_copy();
    let gateway = dir.path().join("gateway.json");
    let text = std::fs::read_to_string(&gateway).unwrap().replace(
        r#""credentials": {"#,
        r#""credentials": { "resolve": "render","#,
    );
    std::fs::write(&gateway, text).unwrap();
    let api = dir.path().join("apis/reports.json");
    let text = std::fs::read_to_string(&api).unwrap().replace(
        r#"{ "value": "demo-reports-key-NOT-A-SECRET" }"#,
        r#"{ "env": "AUTOID_TEST_REPORTS_KEY" }"#,
    );
    std::fs::write(&api, text).unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains(
            "apis/reports.json: auth.inject.x-api-key: environment variable \"AUTOID_TEST_REPORTS_KEY\" is not set"
        ),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_autoid"))
        .args(["gateway", "render", "--config", "."])
        .env("AUTOID_TEST_REPORTS_KEY", "from-the-environment")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_code(&o, 0);
    let config = wasm_filter_config(&serde_json::from_slice(&o.stdout).unwrap());
    assert_eq!(
        config["apis"]["reports"]["inject"]["x-api-key"],
        "from-the-environment"
    );
}

#[test]
fn errors_name_the_file_the_field_and_the_value() {
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "apis/payments.json",
            r#""any_of": ["payments"]"#,
            r#""any_of": [""]"#,
            "apis/payments.json: auth.require.any_of[0]: empty group name",
        ),
        (
            "apis/payments.json",
            r#""listen_path": "/payments/""#,
            r#""listen_path": "/payments/", "listen": 1"#,
            "apis/payments.json: listen: unknown field `listen`",
        ),
        (
            "apis/reports.json",
            r#""listen_path": "/reports/""#,
            r#""listen_path": "/payments/""#,
            "apis/reports.json: listen_path: \"/payments/\" is also the listen_path of \"payments\"",
        ),
        (
            "gateway.json",
            r#""max_skew_secs": 60"#,
            r#""max_skew_secs": 6000"#,
            "gateway.json: plugin.limits.max_skew_secs: 6000 is out of range (1 to 600)",
        ),
        (
            "gateway.json",
            r#""admin": { "socket": "envoy-admin.sock" }"#,
            r#""admin": { "address": "0.0.0.0", "port": 9901 }"#,
            "gateway.json: listeners.admin.address: the admin interface must bind a loopback address",
        ),
        (
            "gateway.json",
            r#""admin": { "socket": "envoy-admin.sock" }"#,
            r#""admin": { "socket": "a.sock", "port": 9901 }"#,
            "gateway.json: listeners.admin: give either `socket` or `address` and `port`, not both",
        ),
    ];
    for (file, from, to, expected) in cases {
        let dir = example_copy();
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
        assert_code(&o, 3);
        assert!(
            stderr(&o).contains(&format!("autoid: error: ./{expected}")),
            "expected {expected:?} in:\n{}",
            stderr(&o)
        );
    }
}

#[test]
fn config_validate_checks_a_filter_config_offline() {
    let dir = example_copy();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let config = wasm_filter_config(&serde_json::from_slice(&o.stdout).unwrap());
    let good = dir.path().join("filter.json");
    std::fs::write(&good, config.to_string()).unwrap();
    let o = autoid_in(dir.path(), &["config", "validate", "filter.json"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "ok: 3 api(s), directory\n");

    let mut bad = config.clone();
    bad["apis"]["payments"]["require"]["any_of"] = serde_json::json!([""]);
    std::fs::write(&good, bad.to_string()).unwrap();
    let o = autoid_in(dir.path(), &["config", "validate", "filter.json"]);
    assert_code(&o, 1);
    assert_eq!(
        stdout(&o),
        "invalid: filter.json: apis.payments.require.any_of[0]: empty group name\n"
    );
}

#[test]
fn validate_runs_envoy_when_it_is_there() {
    let envoy = repo().join(".venv/bin/envoy");
    let dir = example_copy();
    let wasm = repo().join("target/wasm32-wasip1/wasm/autoid_plugin.wasm");
    let gw = dir.path().join("gateway.json");
    let text = std::fs::read_to_string(&gw).unwrap().replace(
        "../../target/wasm32-wasip1/wasm/autoid_plugin.wasm",
        wasm.to_str().unwrap(),
    );
    std::fs::write(&gw, text).unwrap();
    if !envoy.is_file() || !wasm.is_file() {
        // The e2e tests fail loudly without Envoy; this one checks the fallback message.
        let o = Command::new(env!("CARGO_BIN_EXE_autoid"))
            .args(["gateway", "validate", "--config", "."])
            .env("PATH", "/nonexistent")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_code(&o, 0);
        assert!(stderr(&o).contains("make deps-envoy"), "{}", stderr(&o));
        return;
    }
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "validate",
            "--config",
            ".",
            "--envoy",
            envoy.to_str().unwrap(),
        ],
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("envoy --mode validate"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(": ok"), "{}", stdout(&o));
}

#[test]
fn a_tcp_admin_is_rendered_only_when_asked_for_and_with_a_warning() {
    let dir = example_copy();
    let path = dir.path().join("gateway.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = r#""admin": { "socket": "envoy-admin.sock" }"#;
    assert!(text.contains(from));
    std::fs::write(
        &path,
        text.replace(from, r#""admin": { "address": "127.0.0.1", "port": 9901 }"#),
    )
    .unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let bootstrap: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        bootstrap["admin"]["address"]["socket_address"]["port_value"],
        9901
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("WARNING") && stderr.contains("/config_dump"),
        "{stderr}"
    );
}

#[test]
fn with_session_keys_at_the_agent_the_bootstrap_names_key_ids_only() {
    let dir = example_copy();
    let path = dir.path().join("gateway.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = r#""keys_dir":"#;
    assert!(text.contains(from));
    std::fs::write(
        &path,
        text.replacen(from, r#""session_keys": "agent", "keys_dir":"#, 1),
    )
    .unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key in the bootstrap"
    );
    let bootstrap: Value = serde_json::from_str(&text).unwrap();
    let config = wasm_filter_config(&bootstrap);
    assert_eq!(config["keys"], serde_json::json!([{ "kid": "demo-1" }]));
    assert_eq!(config["agent"]["cluster"], "autoid_agent");
    // The agent is on a unix socket: no token for either callout.
    assert_eq!(config["agent"]["authority"], "autoid-agent");
    assert!(config["agent"].get("token").is_none(), "{config}");
    assert!(config["directory"].get("token").is_none(), "{config}");
    assert_eq!(config["agent"]["any_key"], true);
}

#[test]
fn with_epochs_at_the_agent_the_bootstrap_holds_no_epoch_secret() {
    use base64::Engine;
    let dir = example_copy();
    let path = dir.path().join("gateway.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = r#""keys_dir":"#;
    std::fs::write(
        &path,
        text.replacen(
            from,
            r#""session_keys": "agent", "epochs": "agent", "keys_dir":"#,
            1,
        ),
    )
    .unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let epoch: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo-secrets/demo-ep-1.epoch.json")).unwrap(),
    )
    .unwrap();
    let secret_b64url = epoch["secret"].as_str().unwrap();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret_b64url)
        .unwrap();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for encoding in [
        secret_b64url.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(&secret),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&secret),
        hex.clone(),
        hex.to_uppercase(),
    ] {
        assert!(
            !text.contains(&encoding),
            "the epoch secret ({encoding}) is in the bootstrap"
        );
    }
    assert!(!text.contains("PRIVATE KEY"));
    let bootstrap: Value = serde_json::from_str(&text).unwrap();
    let config = wasm_filter_config(&bootstrap);
    assert_eq!(
        config["epochs"],
        serde_json::json!([{
            "id": epoch["id"],
            "file_size": epoch["file_size"],
            "interval_count": epoch["interval_count"],
        }])
    );
    assert_eq!(config["agent"]["cluster"], "autoid_agent");
    // Epochs the agent adds later (autoid rotate epoch) need no new render.
    assert_eq!(config["agent"]["any_epoch"], true);
    assert!(config["agent"].get("max_stream_ttl_secs").is_none());

    // directory.max_stream_ttl_secs passes through to the filter.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut g: Value = serde_json::from_str(&text).unwrap();
    g["directory"]["max_stream_ttl_secs"] = 7.into();
    std::fs::write(&path, g.to_string()).unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let bootstrap: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        wasm_filter_config(&bootstrap)["agent"]["max_stream_ttl_secs"],
        7
    );

    // Without the agent's address there is nobody to ask.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut g: Value = serde_json::from_str(&text).unwrap();
    g.as_object_mut().unwrap().remove("directory");
    g["static_groups"] = serde_json::json!({ "alice": ["payments"] });
    std::fs::write(&path, g.to_string()).unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_ne!(o.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("has no `directory`"), "{stderr}");
}

#[test]
fn the_filter_holding_keys_or_epochs_is_refused_and_the_default_is_the_agent() {
    for field in ["session_keys", "epochs"] {
        let dir = example_copy();
        let path = dir.path().join("gateway.json");
        let mut g: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        g["plugin"][field] = "filter".into();
        std::fs::write(&path, g.to_string()).unwrap();
        let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
        assert_ne!(o.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!(
                "plugin.{field}: \"filter\" is no longer supported: the filter holds no long-term secret"
            )),
            "{stderr}"
        );
        assert!(o.stdout.is_empty());
    }
    // Without either field (the examples set neither), the agent holds both.
    let dir = example_copy();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key in the bootstrap"
    );
    let config = wasm_filter_config(&serde_json::from_str(&text).unwrap());
    assert!(
        config["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("private_key_pem").is_none())
    );
    assert!(
        config["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("secret").is_none())
    );
    assert_eq!(config["agent"]["any_key"], true);
    assert_eq!(config["agent"]["any_epoch"], true);
}

fn agent_cluster(bootstrap: &Value) -> Value {
    bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "autoid_agent")
        .unwrap_or_else(|| panic!("no autoid_agent cluster: {bootstrap}"))
        .clone()
}

/// Replaces the example's `directory` object.
fn with_directory(dir: &Path, directory: Value) {
    let path = dir.join("gateway.json");
    let mut g: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    g["directory"] = directory;
    std::fs::write(&path, g.to_string()).unwrap();
}

#[test]
fn a_socket_agent_is_a_pipe_cluster_and_no_token_is_rendered() {
    let dir = example_copy();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let bootstrap: Value = serde_json::from_str(&text).unwrap();
    let c = agent_cluster(&bootstrap);
    assert_eq!(c["type"], "STATIC");
    let address = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(
        address["pipe"]["path"],
        dir.path().join("agent.sock").to_str().unwrap(),
        "relative to the config directory"
    );
    assert!(c.get("transport_socket").is_none(), "{c}");
    let config = wasm_filter_config(&bootstrap);
    assert_eq!(config["directory"]["authority"], "autoid-agent");
    assert!(config["directory"].get("token").is_none(), "{config}");

    // A token with a socket address is refused: it would only sit in config_dump.
    std::fs::write(
        dir.path().join("agent.token"),
        "0123456789abcdef-agent-token",
    )
    .unwrap();
    with_directory(
        dir.path(),
        serde_json::json!({"address": "unix:agent.sock", "token": {"file": "agent.token"}}),
    );
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 3);
    let e = stderr(&o);
    assert!(
        e.contains("gateway.json: directory.token: not used with a unix socket address"),
        "{e}"
    );
    assert!(
        !e.contains("0123456789abcdef"),
        "the token in an error: {e}"
    );
}

#[test]
fn agent_resolved_sources_go_to_the_agent_credentials_file_and_nowhere_in_the_bootstrap() {
    let dir = example_copy();
    let api = dir.path().join("apis/reports.json");
    let text = std::fs::read_to_string(&api).unwrap().replace(
        r#"{ "value": "demo-reports-key-NOT-A-SECRET" }"#,
        r#"{ "file": "reports.key" }"#,
    );
    std::fs::write(&api, text).unwrap();
    std::fs::write(
        dir.path().join("reports.key"),
        "file-secret-NEVER-IN-ENVOY\n",
    )
    .unwrap();
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "render",
            "--config",
            ".",
            "--out",
            "envoy.json",
            "--agent-credentials",
            "agent-credentials.json",
        ],
    );
    assert_code(&o, 0);
    let bootstrap = std::fs::read_to_string(dir.path().join("envoy.json")).unwrap();
    assert!(!bootstrap.contains("file-secret-NEVER-IN-ENVOY"));
    let config = wasm_filter_config(&serde_json::from_str(&bootstrap).unwrap());
    assert_eq!(
        config["apis"]["reports"]["agent_headers"],
        serde_json::json!(["x-api-key"])
    );
    assert_eq!(config["credentials"]["refresh_ahead_secs"], 10);
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("agent-credentials.json")).unwrap())
            .unwrap();
    assert_eq!(creds["refresh_secs"], 30);
    assert_eq!(creds["stale_secs"], 300);
    assert_eq!(
        creds["apis"]["payments"]["authorization"]["aws_secretsmanager"]["secret_id"],
        "autoid/demo/payments-upstream"
    );
    let file = creds["apis"]["reports"]["x-api-key"]["file"]
        .as_str()
        .unwrap();
    assert!(
        Path::new(file).is_absolute() && file.ends_with("reports.key"),
        "{file}"
    );
    assert!(
        creds["apis"]["payments"].get("x-api-tenant").is_none(),
        "values stay inline"
    );
    assert!(
        !std::fs::read_to_string(dir.path().join("agent-credentials.json"))
            .unwrap()
            .contains("NEVER-IN-ENVOY"),
        "the credentials file names sources, not values"
    );

    // Without an agent (no `directory`), an agent-resolved source is an error naming the file.
    let gateway = dir.path().join("gateway.json");
    let mut g: Value = serde_json::from_slice(&std::fs::read(&gateway).unwrap()).unwrap();
    g.as_object_mut().unwrap().remove("directory");
    g["static_groups"] = serde_json::json!({ "alice": ["payments"] });
    std::fs::write(&gateway, g.to_string()).unwrap();
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("apis/payments.json: auth.inject: the agent resolves"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_tcp_agent_gets_tls_and_the_token() {
    let dir = example_copy();
    let token = "0123456789abcdef-agent-token";
    std::fs::write(dir.path().join("agent.token"), token).unwrap();
    with_directory(
        dir.path(),
        serde_json::json!({"address": "127.0.0.1:8389", "token": {"file": "agent.token"},
                           "ca_file": "demo-secrets/tls/server.cert.pem"}),
    );
    let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
    assert_code(&o, 0);
    let bootstrap: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = agent_cluster(&bootstrap);
    let address = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(address["socket_address"]["port_value"], 8389);
    let tls = &c["transport_socket"]["typed_config"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    let validation = &tls["common_tls_context"]["validation_context"];
    assert_eq!(
        validation["trusted_ca"]["filename"],
        dir.path()
            .join("demo-secrets/tls/server.cert.pem")
            .to_str()
            .unwrap()
    );
    assert_eq!(
        validation["match_typed_subject_alt_names"][0],
        serde_json::json!({"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}})
    );
    assert!(tls.get("sni").is_none(), "no IP address as SNI: {tls}");
    let config = wasm_filter_config(&bootstrap);
    assert_eq!(config["directory"]["token"], token);
    assert_eq!(config["directory"]["authority"], "127.0.0.1:8389");

    for (directory, expected) in [
        (
            serde_json::json!({"address": "127.0.0.1:8389", "ca_file": "demo-secrets/tls/server.cert.pem"}),
            "gateway.json: directory.token: required for a TCP agent address",
        ),
        (
            serde_json::json!({"address": "127.0.0.1:8389", "token": {"file": "agent.token"}}),
            "gateway.json: directory.ca_file: required for a TCP agent address",
        ),
        (
            serde_json::json!({"address": "unix:", "token": {"file": "agent.token"}}),
            "gateway.json: directory.address: expected unix:<socket path> or host:port (value: \"unix:\")",
        ),
    ] {
        with_directory(dir.path(), directory);
        let o = autoid_in(dir.path(), &["gateway", "render", "--config", "."]);
        assert_code(&o, 3);
        let e = stderr(&o);
        assert!(e.contains(expected), "{e}");
    }
}

/// The example with an API that vends `role_arn` (`apis/aws.json`) and payments' injected
/// credential from Secrets Manager `secret_id`: validate's stderr (definitions only).
fn validate_with_role_and_secret(role_arn: &str, secret_id: &str) -> String {
    let dir = example_copy();
    let aws = serde_json::json!({
        "id": "aws", "name": "AWS credentials", "listen_path": "/aws/",
        "aws_role": {"role_arn": role_arn},
        "auth": {"require": {"any_of": ["payments"]},
                 "identity": {"subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups"}}
    });
    std::fs::write(dir.path().join("apis/aws.json"), aws.to_string()).unwrap();
    let payments = dir.path().join("apis/payments.json");
    let text = std::fs::read_to_string(&payments).unwrap();
    let from = r#""secret_id": "autoid/demo/payments-upstream""#;
    assert!(text.contains(from));
    std::fs::write(
        &payments,
        text.replace(from, &format!(r#""secret_id": "{secret_id}""#)),
    )
    .unwrap();
    // The definitions are the point here, not Envoy: a stand-in that accepts any bootstrap.
    let envoy = dir.path().join("envoy-accepts-all");
    std::fs::write(&envoy, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&envoy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = autoid_in(
        dir.path(),
        &[
            "gateway",
            "validate",
            "--config",
            ".",
            "--envoy",
            "./envoy-accepts-all",
        ],
    );
    assert_code(&o, 0);
    stderr(&o)
}

#[test]
fn validate_warns_when_a_role_lent_to_workloads_may_read_an_injected_secret() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/autoid-demo";
    // A secret given by name lives in the agent's account, unknown offline: it may be the role's.
    let named = validate_with_role_and_secret(ROLE, "autoid/demo/payments-upstream");
    for part in [
        "WARNING",
        "apis/aws.json: aws_role.role_arn \"arn:aws:iam::123456789012:role/autoid-demo\"",
        "apis/payments.json: auth.inject.authorization.aws_secretsmanager.secret_id \
         \"autoid/demo/payments-upstream\"",
        "not known offline",
        "secretsmanager:GetSecretValue",
    ] {
        assert!(named.contains(part), "no {part:?} in:\n{named}");
    }
    // The same account, by ARN.
    let same = validate_with_role_and_secret(
        ROLE,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:payments-upstream",
    );
    assert!(
        same.contains("aws_role.role_arn") && same.contains("both in account 123456789012"),
        "{same}"
    );
    // The gateway's secrets in an account of their own: nothing to warn about.
    let apart = validate_with_role_and_secret(
        ROLE,
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:payments-upstream",
    );
    assert!(!apart.contains("aws_role.role_arn"), "{apart}");
}
