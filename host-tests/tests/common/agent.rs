//! The fixtures' agent: the real agent's key plane (`autoid_agent`'s router with its `Sessions`
//! and `Streams`) answering the filter's `POST /v1/sessions` and `POST /v1/streams` callouts
//! in-process, from the same configuration file fields a deployed agent reads
//! (`session_keys`, `epoch_files`). The filter holds no private key and no epoch secret, as
//! `make run` deploys it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test fixtures: failing loudly is the point

use std::sync::Arc;

use autoid_agent::{AppState, Config, Directory, Sessions, Streams};
use autoid_host_tests::{CalloutReply, CalloutRequest, Cluster};
use autoid_protocol::entropy::Epoch;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The key-plane routes the in-process agent answers.
pub const KEY_PLANE: [&str; 2] = ["/v1/sessions", "/v1/streams"];

/// What the agent serves: gateway keys (key id, PKCS#8 PEM, retirement time) and epochs (with
/// their retirement times).
#[derive(Debug, Clone, Default)]
pub struct AgentKeys {
    /// `session_keys`.
    pub keys: Vec<(String, String, Option<u64>)>,
    /// `epoch_files`.
    pub epochs: Vec<(Epoch, Option<u64>)>,
    /// The agent's `stream_ttl_secs` (`None`: its default).
    pub stream_ttl_secs: Option<u64>,
}

/// A running in-process agent: its router on a current-thread runtime (the RSA unwraps run on
/// the runtime's blocking pool, as in the agent), and the directory holding its key and epoch
/// files.
pub struct KeyPlane {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _files: tempfile::TempDir,
}

impl std::fmt::Debug for KeyPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPlane(..)")
    }
}

impl KeyPlane {
    /// Writes the key and epoch files, loads them as the agent does, and builds its router.
    /// No token: the agent is reached as over its unix socket. The LDAP settings are never used
    /// (the fixtures' groups come from `static_groups` or a scripted directory).
    pub fn start(served: &AgentKeys) -> KeyPlane {
        let files = tempfile::tempdir().unwrap();
        let mut session_keys = Vec::new();
        for (i, (kid, pem, not_after)) in served.keys.iter().enumerate() {
            let file = files.path().join(format!("key-{i}.pem"));
            std::fs::write(&file, pem).unwrap();
            session_keys
                .push(json!({ "kid": kid, "private_key_file": file, "not_after": not_after }));
        }
        let mut epoch_files = Vec::new();
        for (i, (epoch, not_after)) in served.epochs.iter().enumerate() {
            let file = files.path().join(format!("epoch-{i}.json"));
            std::fs::write(&file, epoch.to_json()).unwrap();
            epoch_files.push(json!({ "file": file, "not_after": not_after }));
        }
        let mut text = json!({
            "ldap": { "url": "ldap://127.0.0.1:1", "bind_dn": "cn=unused" },
            "users": { "base": "dc=example,dc=org" },
            "groups": { "base": "ou=groups,dc=example,dc=org" },
            "session_keys": session_keys,
            "epoch_files": epoch_files,
        });
        if let Some(ttl) = served.stream_ttl_secs {
            text["stream_ttl_secs"] = Value::from(ttl);
        }
        let config = Arc::new(Config::from_json(&text.to_string()).unwrap());
        let directory = Arc::new(Directory::new(config.clone(), String::new()).unwrap());
        let sessions = Arc::new(Sessions::load(&config.session_keys).unwrap());
        let streams = Arc::new(Streams::load(&config.epoch_files, config.stream_ttl_secs).unwrap());
        let router = autoid_agent::router(
            AppState::new(directory, None)
                .with_sessions(sessions)
                .with_streams(streams),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        KeyPlane {
            runtime,
            router,
            _files: files,
        }
    }

    /// The agent's answer to a callout, through its router.
    pub fn answer(&self, callout: &CalloutRequest) -> CalloutReply {
        let mut request = Request::builder()
            .method(callout.header(":method").unwrap_or("GET"))
            .uri(callout.header(":path").unwrap_or("/"));
        for (name, value) in &callout.headers {
            if name.starts_with(':') {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(authority) = callout.header(":authority") {
            request = request.header("host", authority);
        }
        let request = request.body(Body::from(callout.body.clone())).unwrap();
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut reply = CalloutReply::new(parts.status.as_u16()).body(body.to_vec());
            for (name, value) in &parts.headers {
                reply = reply.header_bytes(name.as_str().as_bytes(), value.as_bytes());
            }
            reply
        })
    }

    /// One of the agent's counters, read from its `GET /metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        let request = CalloutRequest {
            cluster: "autoid_agent".to_owned(),
            headers: vec![
                (":method".to_owned(), "GET".to_owned()),
                (":path".to_owned(), "/metrics".to_owned()),
            ],
            body: Vec::new(),
            timeout: std::time::Duration::from_secs(1),
        };
        let reply = self.answer(&request);
        assert_eq!(reply.status, 200);
        String::from_utf8(reply.body)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// The agent's cluster: a callout whose path starts with one of `routes`' prefixes is
    /// answered by that route's cluster (a test's script for a route, or a fault), the key plane
    /// by `plane`, anything else 404 (as the agent answers a route it does not serve).
    pub fn cluster(plane: Arc<KeyPlane>, routes: Vec<(String, Cluster)>) -> Cluster {
        let keys = Cluster::Scripted(Arc::new(move |req| plane.answer(req)));
        let missing = Cluster::Scripted(Arc::new(|_| {
            CalloutReply::new(404).body(r#"{"error":"not_found"}"#)
        }));
        Cluster::Routed(Arc::new(move |req| {
            let path = req.header(":path").unwrap_or("");
            if let Some((_, cluster)) = routes.iter().find(|(p, _)| path.starts_with(p.as_str())) {
                cluster.clone()
            } else if KEY_PLANE.contains(&path) {
                keys.clone()
            } else {
                missing.clone()
            }
        }))
    }
}
