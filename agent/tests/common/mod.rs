//! Test harness: a real slapd from the test kit (`openldap/run_ldap.sh` in a temporary state dir
//! on free ports), and the agent run in-process on 127.0.0.1:0.
// Each test binary uses a part of this module and of the kit's items it re-exports.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use autoid_agent::{AppState, Config, Directory, FleetReplay, Streams, router};
pub use autoid_testkit::eventually;
pub use autoid_testkit::paths::dev_tls;
pub use autoid_testkit::slapd::{AGENT_DN, BASE, Slapd};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// One slapd shared by the tests of a test binary (they only read the directory). Never dropped:
/// run_ldap.sh's watcher stops it and removes its state when this process exits.
pub fn shared() -> &'static Slapd {
    static SLAPD: OnceLock<Slapd> = OnceLock::new();
    SLAPD.get_or_init(|| Slapd::start_temp().unwrap())
}

/// An agent configuration for `slapd`, plain LDAP, all group sources.
pub fn config(slapd: &Slapd) -> Value {
    json!({
        "listen": "127.0.0.1:0",
        // The in-process agent serves its router on its own TCP listener; the transports have
        // their own tests (transport.rs, binary.rs).
        "insecure_plain_tcp": true,
        "request_timeout_ms": 4000,
        "ldap": {
            "url": slapd.ldap_url,
            "bind_dn": AGENT_DN,
            "bind_password_file": slapd.agent_password_file(),
            "pool_size": 2,
            "connect_timeout_ms": 1000,
            "operation_timeout_ms": 2000
        },
        "users": {"base": BASE},
        "groups": {"base": format!("ou=groups,{BASE}")}
    })
}

/// The agent, in-process, on its own runtime thread; shut down when dropped.
pub struct TestAgent {
    pub addr: SocketAddr,
    agent: ureq::Agent,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestAgent {
    pub fn start(config: Value) -> TestAgent {
        let config = Config::from_json(&config.to_string()).unwrap();
        let password =
            std::fs::read_to_string(config.ldap.bind_password_file.as_ref().unwrap()).unwrap();
        let streams = (!config.epoch_files.is_empty())
            .then(|| Arc::new(Streams::load(&config.epoch_files, config.stream_ttl_secs).unwrap()));
        let replay = config.replay.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let directory = Arc::new(Directory::new(Arc::new(config), password).unwrap());
                let _keepalive = directory.spawn_keepalive();
                let mut state = AppState::new(directory, Some(TOKEN));
                if let Some(streams) = streams {
                    state = state.with_streams(streams);
                }
                if let Some(replay) = &replay {
                    state = state.with_replay(Arc::new(FleetReplay::new(replay).unwrap()));
                }
                let app = router(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        TestAgent {
            addr,
            agent,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET with an optional `authorization` header value.
    pub fn get_with(&self, path: &str, authorization: Option<&str>) -> (u16, Value) {
        let mut req = self.agent.get(&self.url(path));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_with(path, Some(&format!("Bearer {TOKEN}")))
    }

    pub fn post_with(&self, path: &str, authorization: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .agent
            .post(&self.url(path))
            .header("content-type", "application/json");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let mut resp = req.send(body).unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// `GET /v1/groups?subject=...` with the right token.
    pub fn groups(&self, subject: &str) -> (u16, Value) {
        self.get(&format!("/v1/groups?subject={}", encode(subject)))
    }

    /// `POST /v1/authenticate` with the right token.
    pub fn authenticate(&self, username: &str, password: &str) -> (u16, Value) {
        let body = json!({"username": username, "password": password}).to_string();
        self.post_with("/v1/authenticate", Some(&format!("Bearer {TOKEN}")), &body)
    }

    /// `POST /v1/authenticate` for a client at `source` (as the gateway reports it).
    pub fn authenticate_from(&self, username: &str, password: &str, source: &str) -> (u16, Value) {
        let body = json!({"username": username, "password": password, "source": source});
        self.post_with(
            "/v1/authenticate",
            Some(&format!("Bearer {TOKEN}")),
            &body.to_string(),
        )
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The groups array of a response as strings.
pub fn groups_of(body: &Value) -> Vec<String> {
    body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups in {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The agent's real transports (`autoid_agent::transport`), in-process on their own runtime
/// thread: bound from the config's `listen`, serving the router, shut down when dropped.
pub struct Served {
    /// `unix:<path>`, `https://ip:port` or `http://ip:port`.
    pub address: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Binds and serves `config` with `token`; the bind error as text when binding fails.
    pub fn start(config: Value, token: Option<&str>) -> Result<Served, String> {
        let config = Config::from_json(&config.to_string()).map_err(|e| e.to_string())?;
        let password =
            std::fs::read_to_string(config.ldap.bind_password_file.as_ref().unwrap()).unwrap();
        let token = token.map(str::to_owned);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bound = match autoid_agent::transport::bind(&config.listen).await {
                    Ok(b) => b,
                    Err(e) => {
                        addr_tx.send(Err(e.to_string())).unwrap();
                        return;
                    }
                };
                let directory = Arc::new(Directory::new(Arc::new(config), password).unwrap());
                let app = router(AppState::new(directory, token.as_deref()));
                addr_tx.send(Ok(bound.address())).unwrap();
                bound
                    .serve(app, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        match addr_rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            Ok(address) => Ok(Served {
                address,
                shutdown: Some(stop_tx),
                thread: Some(thread),
            }),
            Err(e) => {
                thread.join().unwrap();
                Err(e)
            }
        }
    }

    /// Stops serving and waits until it has.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One request over a unix socket with the test kit's hyper client: (status, JSON body).
pub fn unix_request(
    socket: &Path,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut headers = vec![("host", "autoid-agent")];
    headers.extend(authorization.map(|a| ("authorization", a)));
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let target = autoid_testkit::http::Target::Unix(socket.to_owned());
    let body = body.unwrap_or_default().as_bytes().to_vec();
    let resp = autoid_testkit::http::send(
        &target,
        method,
        path,
        &headers,
        body,
        autoid_testkit::http::TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = resp.text();
    (
        resp.status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
