//! Fixtures for the autoid filter's scenario tests: a configuration built around the fixed test
//! key and a fixed epoch, clients that make real proofs at the gateway's virtual now, and the
//! assertions every denial shares (uniform body, `www-authenticate`, log line, metric).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test fixtures: failing loudly is the point

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, KeyInit};
use autoid_host_tests::{
    CalloutRecord, CalloutReply, CalloutRequest, Cluster, Gateway, GatewayBuilder, HostError,
    LogLine, Outcome, RequestBuilder,
};
use autoid_protocol::Request;
use autoid_protocol::client::{Form, Session};
use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::header::{Payload, Proof, Version, associated_data};
use autoid_protocol::keys::GatewayKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::rand_core::TryRng;
use serde_json::{Value, json};

pub use super::agent::{AgentKeys, KeyPlane};

/// The fixed RSA-2048 test key of the protocol's vectors (never use it for anything else).
pub const KEY_PEM: &str = include_str!("../../../protocol/tests/vectors/gateway-2048.pem");
/// The key id the configuration gives it.
pub const KID: &str = "gw-2048";
/// The epoch id.
pub const EPOCH: &str = "e1";
/// The proof header.
pub const PROOF: &str = "x-autoid-proof";
/// The authority clients call.
pub const AUTHORITY: &str = "api.example.com";
/// The virtual clock's start (Unix seconds), and so the time of the first proofs.
pub const START_SECS: u64 = 1_800_000_000;
/// The agent's cluster (it holds the key and the epoch: `Fixture`'s in-process agent).
pub const AGENT: &str = "autoid_agent";
/// The directory's cluster (the agent's directory answers), authority and token.
pub const CLUSTER: &str = "autoid-directory";
pub const AGENT_AUTHORITY: &str = "autoid-directory.internal";
pub const TOKEN: &str = "agent-token-0123456789abcdef";
/// What the `payments` API injects.
pub const PAYMENTS_AUTH: &str = "Bearer upstream-payments-secret";
pub const PAYMENTS_KEY: &str = "pk-live-123";
/// What the `reports` API injects.
pub const REPORTS_TOKEN: &str = "rt-456";
/// Every header some API injects or sets (the filter strips client copies of all of them).
pub const MANAGED: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-autoid-subject",
    "x-autoid-groups",
    "x-reports-token",
    "x-reports-subject",
];
/// The `www-authenticate` value of every 401.
pub const WWW_AUTHENTICATE: &str = "AutoID realm=\"autoid\", header=\"x-autoid-proof\"";

/// The epoch every test shares: secret 0x42.., 64 KiB files, 64 intervals.
pub fn epoch() -> Epoch {
    Epoch::new(EPOCH, [0x42; 32], 65536, 64).unwrap()
}

/// An epoch the gateway does not know.
pub fn other_epoch() -> Epoch {
    Epoch::new("e-other", [0x17; 32], 65536, 64).unwrap()
}

/// The gateway's key, as a client holding its public key sees it.
pub fn gateway_key() -> GatewayKey {
    GatewayKey::from_pem(KID, KEY_PEM).unwrap()
}

/// The virtual start time.
pub fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_SECS)
}

/// The gateway's virtual now, in Unix seconds (what the filter compares proofs with).
pub fn now(gw: &Gateway) -> u64 {
    gw.clock()
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sets `value` at a `/`-separated path of object keys, creating objects on the way.
pub fn set(config: &mut Value, path: &str, value: Value) {
    let mut at = config;
    let mut keys = path.trim_start_matches('/').split('/').peekable();
    while let Some(key) = keys.next() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().unwrap();
        if keys.peek().is_none() {
            map.insert(key.to_owned(), value);
            return;
        }
        at = map.entry(key.to_owned()).or_insert_with(|| json!({}));
    }
}

/// Removes the value at a `/`-separated path.
pub fn remove(config: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        config
    } else {
        config.pointer_mut(parent).unwrap()
    };
    parent.as_object_mut().unwrap().remove(key);
}

/// A filter configuration and the gateway it runs in.
///
/// APIs: `payments` (any of `payments`; injects `authorization` and `x-api-key`, identity in
/// `x-autoid-subject` / `x-autoid-groups`), `reports` (any of `readers`; injects
/// `x-reports-token`, subject in `x-reports-subject`), `admin` (all of `admins` and `payments`),
/// `legacy` (disabled). Static groups: alice is in payments and readers, bob in readers,
/// carol in admins and payments.
///
/// The filter's configuration lists the key id and the epoch's public parameters only: the
/// agent at [`AGENT`] holds the private key and the epoch secret, and the real agent's code
/// answers its key-plane callouts in-process ([`KeyPlane`]), as `make run` deploys it.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The JSON configuration, free to edit before [`Fixture::build`].
    pub config: Value,
    /// What the in-process agent serves (default: the fixture's key and epoch).
    pub agent: AgentKeys,
    agent_routes: Vec<(String, Cluster)>,
    workers: usize,
    clusters: Vec<(String, Cluster)>,
    metered: bool,
}

impl Fixture {
    /// Groups from `static_groups`.
    pub fn static_groups() -> Self {
        let e = epoch();
        let config = json!({
            "keys": [{ "kid": KID }],
            "epochs": [{ "id": e.id(), "file_size": e.file_size(), "interval_count": e.interval_count() }],
            "agent": { "cluster": AGENT, "timeout_ms": 500 },
            "static_groups": {
                "alice": ["payments", "readers"],
                "bob": ["readers"],
                "carol": ["admins", "payments"],
            },
            "apis": {
                "payments": {
                    "require": { "any_of": ["payments"] },
                    "inject": { "authorization": PAYMENTS_AUTH, "x-api-key": PAYMENTS_KEY },
                    "identity": {
                        "subject_header": "x-autoid-subject",
                        "groups_header": "x-autoid-groups",
                    },
                },
                "reports": {
                    "require": { "any_of": ["readers"] },
                    "inject": { "x-reports-token": REPORTS_TOKEN },
                    "identity": { "subject_header": "x-reports-subject" },
                },
                "admin": {
                    "require": { "all_of": ["admins", "payments"] },
                },
                "legacy": {
                    "enabled": false,
                    "require": { "any_of": ["readers"] },
                },
            },
        });
        Fixture {
            config,
            agent: AgentKeys {
                keys: vec![(KID.to_owned(), KEY_PEM.to_owned(), None)],
                epochs: vec![(e, None)],
                stream_ttl_secs: None,
            },
            agent_routes: Vec::new(),
            workers: 2,
            clusters: Vec::new(),
            metered: false,
        }
    }

    /// Groups from the agent at [`CLUSTER`], answered by `agent`.
    pub fn directory(agent: Cluster) -> Self {
        let mut fx = Fixture::static_groups();
        remove(&mut fx.config, "/static_groups");
        set(
            &mut fx.config,
            "/directory",
            json!({
                "cluster": CLUSTER,
                "authority": AGENT_AUTHORITY,
                "token": TOKEN,
                "timeout_ms": 250,
                "positive_ttl_secs": 60,
                "negative_ttl_secs": 10,
                "stale_if_error_secs": 30,
            }),
        );
        fx.clusters.push((CLUSTER.to_owned(), agent));
        fx
    }

    /// Sets a configuration value (see [`set`]).
    pub fn with(mut self, path: &str, value: Value) -> Self {
        set(&mut self.config, path, value);
        self
    }

    /// The agent's callouts whose path starts with `prefix` (credentials, fleet claims, or one
    /// key-plane route a test scripts) are answered by `cluster`; the rest of the key plane stays
    /// with the in-process agent.
    pub fn agent_route(mut self, prefix: &str, cluster: Cluster) -> Self {
        self.agent_routes.push((prefix.to_owned(), cluster));
        self
    }

    /// Callouts to cluster `name` are answered by `cluster` (for [`AGENT`]: every route,
    /// replacing the in-process agent).
    pub fn cluster(mut self, name: &str, cluster: Cluster) -> Self {
        self.clusters.push((name.to_owned(), cluster));
        self
    }

    /// Counts the wasm instructions the workers run (`Gateway::wasm_instructions`).
    pub fn metered(mut self) -> Self {
        self.metered = true;
        self
    }

    /// How many worker VMs (default 2).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The builder, before `build`: Envoy as `autoid gateway render` configures it
    /// (`allow_on_headers_stop_iteration`, twice the filter's body limit per connection).
    pub fn builder(&self) -> GatewayBuilder {
        self.builder_with_agent().0
    }

    /// The builder and its in-process agent (for the agent's own counters).
    pub fn builder_with_agent(&self) -> (GatewayBuilder, Arc<KeyPlane>) {
        let module = if self.metered {
            super::plugin_metered()
        } else {
            super::plugin()
        };
        let mut b = module
            .gateway()
            .plugin_config(self.config.to_string())
            .workers(self.workers)
            .start_time(start())
            .allow_on_headers_stop_iteration(true)
            .buffer_limit(2 * autoid_protocol::policy::MAX_BODY_BYTES);
        let plane = Arc::new(KeyPlane::start(&self.agent));
        b = b.cluster(
            AGENT,
            KeyPlane::cluster(plane.clone(), self.agent_routes.clone()),
        );
        for (name, cluster) in &self.clusters {
            b = b.cluster(name, cluster.clone());
        }
        (b, plane)
    }

    /// Builds the gateway, or the error (a rejected configuration).
    pub fn try_build(&self) -> Result<Gateway, HostError> {
        let gw = self.builder().build()?;
        // Traffic reaches a gateway after it started: the restart fence refuses proofs made in
        // the second the filter was configured (docs/CONFIG.md, `replay.restart_fence`).
        gw.clock().advance(std::time::Duration::from_secs(1));
        Ok(gw)
    }

    /// Builds the gateway, and returns its in-process agent with it.
    pub fn build_with_agent(&self) -> (Gateway, Arc<KeyPlane>) {
        let (builder, plane) = self.builder_with_agent();
        let gw = builder
            .build()
            .unwrap_or_else(|e| panic!("the gateway builds: {e}: {e:?}"));
        gw.clock().advance(std::time::Duration::from_secs(1));
        (gw, plane)
    }

    /// Builds the gateway.
    pub fn build(&self) -> Gateway {
        self.try_build()
            .unwrap_or_else(|e| panic!("the gateway builds: {e}: {e:?}"))
    }
}

/// The real agent in-process, serving the fixture's key and epoch (its `stream_ttl_secs` as
/// given): for tests that wrap it in a script of their own (counting, recording).
pub fn real_agent(stream_ttl_secs: Option<u64>) -> Arc<KeyPlane> {
    let mut served = Fixture::static_groups().agent;
    served.stream_ttl_secs = stream_ttl_secs;
    Arc::new(KeyPlane::start(&served))
}

/// The seeded RNG of the protocol's test vectors (one copy, in the protocol's tests).
#[path = "../../../protocol/tests/common/rng.rs"]
mod rng;
pub use rng::TestRng;

/// A caller: its entropy file and one session with the gateway.
#[derive(Debug, Clone)]
pub struct Client {
    file: EntropyFile,
    session: Session,
    rng: TestRng,
}

impl Client {
    /// `subject`'s file of the shared epoch, with a session opened at the gateway's now.
    pub fn open(gw: &Gateway, subject: &str) -> Client {
        Client::with_file(epoch().issue(subject).unwrap(), now(gw))
    }

    /// A client holding `file`, with a session opened at `issued_at`.
    pub fn with_file(file: EntropyFile, issued_at: u64) -> Client {
        let mut rng = TestRng::unique(file.subject());
        let session = Session::open(&gateway_key().public(), issued_at, &mut rng).unwrap();
        Client { file, session, rng }
    }

    /// The same file with a new session opened at the gateway's now (a new RSA unwrap).
    pub fn reopen(&self, gw: &Gateway) -> Client {
        Client::with_file(self.file.clone(), now(gw))
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        self.file.subject()
    }

    /// A proof for `method authority path` made at `at`, optionally binding `body`.
    pub fn proof_for(
        &mut self,
        method: &str,
        authority: &str,
        path: &str,
        at: u64,
        body: Option<&[u8]>,
    ) -> String {
        let request = Request {
            method,
            authority,
            path,
        };
        self.session
            .prove(&self.file, &request, at, body, &mut self.rng)
            .unwrap()
    }

    /// A proof for `GET AUTHORITY path` at the gateway's now, in `form`.
    pub fn proof_as(&mut self, gw: &Gateway, path: &str, form: Form) -> String {
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        self.session
            .prove_as(form, &self.file, &request, now(gw), None, &mut self.rng)
            .unwrap()
    }

    /// A proof for `GET AUTHORITY path` at the gateway's now, in `version` and `form`.
    pub fn proof_in(&mut self, gw: &Gateway, path: &str, version: Version, form: Form) -> String {
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        self.session
            .prove_in(
                version,
                form,
                &self.file,
                &request,
                now(gw),
                None,
                &mut self.rng,
            )
            .unwrap()
    }

    /// A proof for `GET AUTHORITY path` at the gateway's now.
    pub fn proof(&mut self, gw: &Gateway, path: &str) -> String {
        self.proof_for("GET", AUTHORITY, path, now(gw), None)
    }

    /// `GET AUTHORITY path` on `route`, with a fresh proof at the gateway's now.
    pub fn get<'g>(&mut self, gw: &'g Gateway, route: &str, path: &str) -> RequestBuilder<'g> {
        let proof = self.proof(gw, path);
        gw.request("GET", AUTHORITY, path)
            .route(route)
            .header(PROOF, &proof)
    }

    /// Seals `payload` by hand under this session's key, for `method AUTHORITY path`: for
    /// payloads the client library would never make.
    pub fn seal_raw(&mut self, path: &str, payload: &[u8]) -> String {
        let session: Value = serde_json::from_str(&self.session.to_json()).unwrap();
        let key = URL_SAFE_NO_PAD
            .decode(session["key"].as_str().unwrap())
            .unwrap();
        let wrapped = URL_SAFE_NO_PAD
            .decode(session["wrapped"].as_str().unwrap())
            .unwrap();
        let request = Request {
            method: "GET",
            authority: AUTHORITY,
            path,
        };
        let aad = associated_data(KID, &request).unwrap();
        let mut iv = [0u8; 12];
        self.rng.try_fill_bytes(&mut iv).unwrap();
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let ciphertext = cipher
            .encrypt(
                &iv.into(),
                AeadPayload {
                    msg: payload,
                    aad: &aad,
                },
            )
            .unwrap();
        let mut sealed = iv.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Proof::encode(KID, &wrapped, &sealed)
    }

    /// A well-formed payload for this client at `at`, with a zero digest.
    pub fn payload(&self, at: u64, subject: &str) -> Payload {
        Payload {
            timestamp: at,
            nonce: [9; 16],
            body_digest: None,
            epoch: EPOCH.to_owned(),
            subject: subject.to_owned(),
            digest: [0; 32],
        }
    }
}

/// The proof's four dot-separated parts.
pub fn parts(proof: &str) -> Vec<String> {
    proof.split('.').map(str::to_owned).collect()
}

/// The proof with one byte of part `index` (2: wrapped key, 3: sealed) flipped at `at`.
pub fn tamper(proof: &str, index: usize, at: usize) -> String {
    let mut p = parts(proof);
    let mut bytes = URL_SAFE_NO_PAD.decode(&p[index]).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    p[index] = URL_SAFE_NO_PAD.encode(bytes);
    p.join(".")
}

/// The request headers upstream received, or a panic showing what happened instead.
pub fn upstream(out: &Outcome) -> &[(String, String)] {
    match out {
        Outcome::Upstream { headers, .. } => headers,
        other => panic!("expected the request to go upstream, got {other:?}"),
    }
}

/// Every value of header `name` in `headers`.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A counter's value (0 when undefined).
pub fn metric(gw: &Gateway, name: &str) -> i64 {
    // The filter adds its per-request counters on its tick: deliver one first.
    gw.tick();
    gw.metric(name).unwrap_or(0)
}

/// The callouts made to `cluster` (the agent's key-plane callouts are to [`AGENT`]).
pub fn callouts_to(gw: &Gateway, cluster: &str) -> Vec<CalloutRecord> {
    gw.callouts()
        .into_iter()
        .filter(|c| c.cluster == cluster)
        .collect()
}

/// The filter's deny log lines.
pub fn deny_lines(gw: &Gateway) -> Vec<LogLine> {
    gw.logs()
        .into_iter()
        .filter(|l| l.message.starts_with("autoid: deny "))
        .collect()
}

/// Sends `request` and checks the denial is exactly the uniform one: `status`, the JSON body
/// `{"error":..,"request_id":..}` byte for byte, `www-authenticate` on 401 only, one log line
/// naming `reason` with the request id, and `autoid_denied_<reason>` up by one.
pub fn expect_denied(
    gw: &Gateway,
    request: RequestBuilder<'_>,
    status: u32,
    reason: &str,
) -> Outcome {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let rid = format!("rid-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let counter = format!("autoid_denied_{reason}");
    let before = metric(gw, &counter);
    let denied_before = metric(gw, "autoid_requests_denied");
    let allowed_before = metric(gw, "autoid_requests_allowed");
    let out = request.header("x-request-id", &rid).send();
    let Outcome::LocalReply {
        status: got,
        headers,
        body,
        ..
    } = &out
    else {
        panic!("expected a {status} ({reason}), got {out:?}");
    };
    assert_eq!(*got, status, "status for {reason}: {out:?}");
    let error = match status {
        401 => "unauthorized",
        403 => "forbidden",
        400 => "bad_request",
        413 => "payload_too_large",
        503 => "unavailable",
        other => panic!("no uniform body for {other}"),
    };
    assert_eq!(
        String::from_utf8_lossy(body),
        format!(r#"{{"error":"{error}","request_id":"{rid}"}}"#),
        "the uniform body for {reason}"
    );
    assert_eq!(values(headers, "content-type"), ["application/json"]);
    if status == 401 {
        assert_eq!(
            values(headers, "www-authenticate"),
            [WWW_AUTHENTICATE],
            "{reason}"
        );
    } else {
        assert!(values(headers, "www-authenticate").is_empty(), "{reason}");
    }
    let lines: Vec<String> = deny_lines(gw)
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.ends_with(&format!(" request_id={rid}")))
        .collect();
    assert_eq!(lines.len(), 1, "one deny line for {rid}: {:?}", gw.logs());
    assert!(
        lines[0].starts_with(&format!(
            "autoid: deny status={status} reason={reason} route="
        )),
        "log line for {reason}: {}",
        lines[0]
    );
    assert_eq!(metric(gw, &counter), before + 1, "{counter}");
    assert_eq!(metric(gw, "autoid_requests_denied"), denied_before + 1);
    assert_eq!(metric(gw, "autoid_requests_allowed"), allowed_before);
    out
}

/// Percent-decodes a query value (for the scripted agent).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The subject an agent callout asks about.
pub fn callout_subject(req: &CalloutRequest) -> String {
    let path = req.header(":path").unwrap();
    let query = path.strip_prefix("/v1/groups?subject=").unwrap();
    percent_decode(query)
}

/// The agent's answer for a subject: found with `groups`, or not found.
pub fn directory_reply(subject: &str, groups: Option<&[&str]>) -> CalloutReply {
    let body = match groups {
        Some(groups) => {
            json!({ "subject": subject, "found": true, "entry_subject": subject, "groups": groups })
        }
        None => json!({ "subject": subject, "found": false, "groups": [] }),
    };
    CalloutReply::new(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// The hostile paths every gateway's tests send (protocol/tests/vectors/hostile-paths.txt), each
/// under `base` (a listen path ending with `/`).
pub fn hostile_paths(base: &str) -> Vec<String> {
    include_str!("../../../protocol/tests/vectors/hostile-paths.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .map(|l| format!("{base}{l}"))
        .collect()
}
