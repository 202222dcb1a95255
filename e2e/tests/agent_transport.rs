//! How real Envoy reaches the agent. The default: the agent's unix socket (mode 0600), a `pipe`
//! cluster, no token anywhere in Envoy's bootstrap or live configuration. The alternative: TCP
//! with TLS verified against a CA, and the bearer token. Both carry a directory decision and an
//! agent-unwrapped session for a real proof.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use common::{AgentAt, AgentTransport, Options, Stack, TOKEN, eventually, unix_request};
use serde_json::Value;

/// The `autoid_agent` cluster in a bootstrap or in config_dump's static clusters.
fn agent_cluster(clusters: &[Value]) -> Value {
    clusters
        .iter()
        .map(|c| c.get("cluster").unwrap_or(c))
        .find(|c| c["name"] == "autoid_agent")
        .unwrap_or_else(|| panic!("no autoid_agent cluster in {clusters:?}"))
        .clone()
}

fn endpoint_address(cluster: &Value) -> Value {
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"].clone()
}

/// The filter configurations (parsed) in a JSON document: every wasm filter's `configuration`.
fn filter_configs(doc: &Value, out: &mut Vec<Value>) {
    match doc {
        Value::Object(m) => {
            if m.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.protobuf.StringValue")
                && let Some(v) = m.get("value").and_then(Value::as_str)
                && let Ok(parsed) = serde_json::from_str::<Value>(v)
            {
                out.push(parsed);
            }
            m.values().for_each(|v| filter_configs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| filter_configs(v, out)),
        _ => {}
    }
}

fn live_config(s: &Stack) -> (String, Value) {
    let r = unix_request(&s.admin, "GET", "/config_dump").unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let doc: Value = serde_json::from_str(&text).unwrap();
    (text, doc)
}

fn static_clusters(dump: &Value) -> Vec<Value> {
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c["static_clusters"].as_array().cloned())
        .expect("config_dump has static clusters")
}

/// A real proof, a session the agent unwraps and groups the agent looks up: 200 upstream.
fn allowed_through_the_agent(s: &Stack) {
    let sessions = s.counter("autoid_agent_session_callouts");
    let lookups = s.counter("autoid_directory_callouts");
    let r = s.get_as("alice", "/payments/through-the-agent", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.echoed("x-autoid-subject"), ["alice"]);
    assert_eq!(r.echoed("x-autoid-groups"), ["payments,reports"]);
    eventually("the callouts counted", Duration::from_secs(5), || {
        (s.counter("autoid_agent_session_callouts") > sessions
            && s.counter("autoid_directory_callouts") > lookups)
            .then_some(())
    });
    // A subject the directory does not put in payments: the agent's answer denies.
    let r = s.get_as("dave", "/payments/through-the-agent", &[]);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn through_the_agents_socket_with_no_token_in_envoy() {
    let s = Stack::start(&Options::default());
    let AgentAt::Socket(socket) = &s.agent else {
        panic!("the default stack uses the socket")
    };
    let meta = std::fs::symlink_metadata(socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let rendered_text = std::fs::read_to_string(s.path("envoy.json")).unwrap();
    let rendered: Value = serde_json::from_str(&rendered_text).unwrap();
    let (dump_text, dump) = live_config(&s);
    for (what, clusters) in [
        (
            "the rendered bootstrap",
            rendered["static_resources"]["clusters"]
                .as_array()
                .unwrap()
                .clone(),
        ),
        ("config_dump", static_clusters(&dump)),
    ] {
        let address = endpoint_address(&agent_cluster(&clusters));
        assert_eq!(
            address["pipe"]["path"],
            socket.to_str().unwrap(),
            "{what}: {address}"
        );
    }
    for (what, text, doc) in [
        ("the rendered bootstrap", &rendered_text, &rendered),
        ("config_dump", &dump_text, &dump),
    ] {
        let mut configs = Vec::new();
        filter_configs(doc, &mut configs);
        assert!(!configs.is_empty(), "{what}: no filter configuration found");
        for c in &configs {
            assert_eq!(c["directory"]["cluster"], "autoid_agent", "{what}");
            assert!(c["directory"].get("token").is_none(), "{what}: {c}");
            assert!(c["agent"].get("token").is_none(), "{what}: {c}");
        }
        assert!(!text.contains("\"token\""), "{what} names a token");
        assert!(!text.contains(TOKEN), "{what} holds the token");
    }
    allowed_through_the_agent(&s);
}

#[test]
fn through_tcp_with_tls_and_the_token() {
    let s = Stack::start(&Options {
        agent_transport: AgentTransport::Tls,
        ..Options::default()
    });
    let (_, dump) = live_config(&s);
    let cluster = agent_cluster(&static_clusters(&dump));
    let AgentAt::Tls { port, .. } = &s.agent else {
        panic!("a TLS stack")
    };
    assert_eq!(
        endpoint_address(&cluster)["socket_address"]["port_value"],
        *port
    );
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    allowed_through_the_agent(&s);
    // The TLS handshakes Envoy made with the agent are in its cluster stats.
    assert!(s.stat("cluster.autoid_agent.ssl.handshake") >= 1);
}
