//! `/v1/check` on the built agent binary, on its unix socket: the gateway's description of a
//! request (the contract's `x-autoid-*` headers) decided as the wasm filter would decide it —
//! sessions unwrapped, groups asked of the real slapd, nonces claimed once across check workers.
// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use autoid_protocol::client::Session;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::keys::GatewayKey;
use autoid_testkit::agent;
use autoid_testkit::process::Proc;
use common::{AGENT_DN, BASE, shared};
use serde_json::{Value, json};

const AUTHORITY: &str = "api.example.com";
const API_KEY: &str = "payments-upstream-key";

/// One gateway key for every test of this binary (RSA key generation takes a while).
fn gateway_key() -> &'static GatewayKey {
    static KEY: OnceLock<GatewayKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        GatewayKey::generate("gw-1", 2048, &mut rng).unwrap()
    })
}

/// An agent with `check` on its unix socket in a temporary directory, stopped when dropped.
struct Checked {
    socket: PathBuf,
    epoch: Epoch,
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Checked {
    fn start() -> Checked {
        Checked::start_with(None, None, |_| {})
    }

    /// With `redis`: fleet replay scope, the agent claiming nonces in that Redis. With `shared`:
    /// the gateway key and epoch of another agent (a second replica of the same gateway). `edit`
    /// changes the filter configuration before it is written.
    fn start_with(
        redis: Option<&str>,
        shared_with: Option<&Checked>,
        edit: fn(&mut Value),
    ) -> Checked {
        let slapd = shared();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key_file = d.join("gw-1.key.pem");
        std::fs::write(&key_file, gateway_key().to_pem().unwrap()).unwrap();
        let epoch = match shared_with {
            Some(other) => Epoch::from_json(&other.epoch.to_json()).unwrap(),
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).unwrap();
                Epoch::new("ep-1", secret, 65536, 64).unwrap()
            }
        };
        // The epoch's secret is the agent's (`epoch_files`); the filter lists its parameters.
        let epoch_file = d.join("ep-1.epoch.json");
        std::fs::write(&epoch_file, epoch.to_json()).unwrap();
        let epoch_json = json!({"id": epoch.id(), "file_size": epoch.file_size(),
                                "interval_count": epoch.interval_count()});
        let agent_at =
            json!({"cluster": "autoid_agent", "authority": "autoid-agent", "timeout_ms": 3000});
        let mut filter = json!({
            "agent": agent_at,
            "directory": {"cluster": "autoid_agent", "authority": "autoid-agent", "timeout_ms": 3000,
                          "positive_ttl_secs": 60, "negative_ttl_secs": 10},
            "keys": [{"kid": "gw-1"}],
            "epochs": [epoch_json],
            "apis": {
                "payments": {
                    "require": {"any_of": ["payments"]},
                    "inject": {"x-api-key": API_KEY},
                    "identity": {"subject_header": "x-autoid-subject", "groups_header": "x-autoid-groups"}
                }
            }
        });
        if redis.is_some() {
            filter["replay"] = json!({"scope": "fleet", "fleet_timeout_ms": 1000});
        }
        edit(&mut filter);
        std::fs::write(d.join("filter.json"), filter.to_string()).unwrap();
        let socket = d.join("agent.sock");
        // The directory part of every agent test, on a unix socket (the check needs one).
        let mut config = common::config(slapd);
        config["listen"] = json!(format!("unix:{}", socket.display()));
        if let Some(c) = config.as_object_mut() {
            c.remove("insecure_plain_tcp");
        }
        config["session_keys"] = json!([{"kid": "gw-1", "private_key_file": key_file}]);
        config["epoch_files"] = json!([epoch_file]);
        // Relative: to this file.
        config["check"] = json!({"filter_config": "filter.json", "workers": 2});
        if let Some(url) = redis {
            config["replay"] = json!({"redis_url": url, "timeout_ms": 500});
        }
        let cfg = d.join("agent.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let proc = agent::start(
            Path::new(env!("CARGO_BIN_EXE_autoid-agent")),
            &cfg,
            &[],
            &d.join("agent.log"),
            || agent::ready_on_socket(&socket),
        )
        .unwrap();
        // The filter's restart fence (local replay scope) refuses proofs made before the agent's
        // check workers started or in that second, as after an Envoy restart: wait it out.
        let ready = now_secs();
        common::eventually(
            "the second after the agent started",
            std::time::Duration::from_secs(3),
            || (now_secs() > ready).then_some(()),
        );
        Checked {
            socket,
            epoch,
            proc,
            dir,
        }
    }

    /// A proof for `subject` and `method AUTHORITY path`, of a fresh session.
    fn prove(&self, subject: &str, method: &str, path: &str) -> String {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let now = now_secs();
        let session = Session::open(&gateway_key().public(), now, &mut rng).unwrap();
        let file = self.epoch.issue(subject).unwrap();
        let request = autoid_protocol::Request {
            method,
            authority: AUTHORITY,
            path,
        };
        session.prove(&file, &request, now, None, &mut rng).unwrap()
    }

    /// The check of `method path` for the API `payments` with `proof` (if any) and `extra`
    /// headers, as a gateway sends it.
    fn check(
        &self,
        method: &str,
        path: &str,
        proof: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut headers: Vec<(&str, &str)> = vec![
            ("x-autoid-api", "payments"),
            ("x-autoid-method", method),
            ("x-autoid-uri", path),
            ("x-autoid-authority", AUTHORITY),
            ("x-autoid-peer", "127.0.0.1"),
            ("x-autoid-tls", "1"),
            ("x-request-id", "req-check-1"),
        ];
        if let Some(p) = proof {
            headers.push(("x-autoid-proof", p));
        }
        headers.extend_from_slice(extra);
        send(&self.socket, method, &format!("/v1/check{path}"), &headers)
    }

    fn log(&self) -> String {
        self.proc.log_text()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An answer of the agent.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a JSON body ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The uniform denial: `status`, `x-autoid-status`, a JSON body with the error code and the
    /// request id only.
    fn assert_denied(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("x-autoid-status"),
            Some(status.to_string().as_str())
        );
        assert_eq!(
            self.json(),
            json!({"error": error, "request_id": "req-check-1"}),
            "{self:?}"
        );
        if status == 401 {
            assert_eq!(
                self.header("www-authenticate"),
                Some("AutoID realm=\"autoid\", header=\"x-autoid-proof\""),
            );
        }
        assert!(self.header("x-autoid-subject").is_none(), "{self:?}");
        assert!(self.header("x-api-key").is_none(), "{self:?}");
    }
}

/// One HTTP/1.1 request over the unix socket with hyper's client.
fn send(socket: &Path, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "autoid-agent");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    })
}

#[test]
fn a_valid_proof_is_allowed_with_the_credential_and_identity_and_the_proof_removed() {
    let a = Checked::start();
    let proof = a.prove("alice", "GET", "/payments/v1/charges?limit=2");
    // A client's own copies of the managed headers: replaced or removed, never believed.
    let r = a.check(
        "GET",
        "/payments/v1/charges?limit=2",
        Some(&proof),
        &[("x-autoid-subject", "mallory"), ("x-api-key", "spoofed")],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", a.log());
    assert!(r.body.is_empty());
    assert_eq!(r.header("x-autoid-status"), Some("200"));
    assert_eq!(r.header("x-autoid-subject"), Some("alice"));
    assert!(
        r.header("x-autoid-groups")
            .is_some_and(|g| g.split(',').any(|g| g == "payments")),
        "{r:?}"
    );
    assert_eq!(r.header("x-api-key"), Some(API_KEY));
    let removed: Vec<&str> = r
        .header("x-envoy-auth-headers-to-remove")
        .unwrap_or_default()
        .split(',')
        .collect();
    assert!(removed.contains(&"x-autoid-proof"), "{r:?}");
    // Nothing it set is also removed.
    for name in ["x-autoid-subject", "x-autoid-groups", "x-api-key"] {
        assert!(!removed.contains(&name), "{name} in {removed:?}");
    }

    // The same proof again: a replay.
    let again = a.check("GET", "/payments/v1/charges?limit=2", Some(&proof), &[]);
    again.assert_denied(401, "unauthorized");
    assert!(!a.log().contains(&proof), "the proof is never logged");
}

#[test]
fn missing_invalid_moved_and_replayed_proofs_are_denied_401() {
    let a = Checked::start();
    a.check("GET", "/payments/x", None, &[])
        .assert_denied(401, "unauthorized");
    a.check("GET", "/payments/x", Some("v1.not-a-proof"), &[])
        .assert_denied(401, "unauthorized");
    // Made for another path, and for another method.
    let proof = a.prove("alice", "GET", "/payments/x");
    a.check("GET", "/payments/y", Some(&proof), &[])
        .assert_denied(401, "unauthorized");
    a.check("POST", "/payments/x", Some(&proof), &[])
        .assert_denied(401, "unauthorized");
    // Denials claim no nonce: the proof still works where it was made for, once.
    let r = a.check("GET", "/payments/x", Some(&proof), &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", a.log());
    a.check("GET", "/payments/x", Some(&proof), &[])
        .assert_denied(401, "unauthorized");
}

#[test]
fn a_subject_without_the_group_is_denied_403() {
    let a = Checked::start();
    let proof = a.prove("carol", "GET", "/payments/x");
    a.check("GET", "/payments/x", Some(&proof), &[])
        .assert_denied(403, "forbidden");
}

#[test]
fn a_gateway_that_names_no_api_gets_503() {
    let a = Checked::start();
    let proof = a.prove("alice", "GET", "/payments/x");
    let r = send(
        &a.socket,
        "GET",
        "/v1/check/payments/x",
        &[
            ("x-autoid-method", "GET"),
            ("x-autoid-uri", "/payments/x"),
            ("x-autoid-authority", AUTHORITY),
            ("x-autoid-peer", "127.0.0.1"),
            ("x-autoid-tls", "1"),
            ("x-request-id", "req-check-1"),
            ("x-autoid-proof", &proof),
        ],
    );
    r.assert_denied(503, "unavailable");
    agent_logged(&a, "x-autoid-api");
}

/// Waits until the agent's log names `what`.
fn agent_logged(a: &Checked, what: &str) {
    common::eventually(
        &format!("the agent logs {what}"),
        std::time::Duration::from_secs(5),
        || a.log().contains(what).then_some(()),
    );
}

#[test]
fn of_concurrent_identical_proofs_exactly_one_is_allowed() {
    let a = Checked::start();
    let proof = a.prove("bob", "GET", "/payments/x");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| a.check("GET", "/payments/x", Some(&proof), &[]).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}\n{}",
        a.log()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[test]
fn sighup_applies_a_changed_filter_configuration_and_keeps_the_old_one_when_invalid() {
    let a = Checked::start();
    let file = a.dir.path().join("filter.json");
    let mut filter: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let hangup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &a.proc.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    let key_now = || {
        let proof = a.prove("alice", "GET", "/payments/x");
        let r = a.check("GET", "/payments/x", Some(&proof), &[]);
        assert_eq!(r.status, 200, "{r:?}\n{}", a.log());
        r.header("x-api-key").map(str::to_owned)
    };
    assert_eq!(key_now().as_deref(), Some(API_KEY));

    // An invalid file: logged, the running configuration stays.
    std::fs::write(&file, r#"{"apis": 5}"#).unwrap();
    hangup();
    agent_logged(&a, "the check's filter configuration stays as it was");
    assert_eq!(key_now().as_deref(), Some(API_KEY));

    filter["apis"]["payments"]["inject"]["x-api-key"] = json!("rotated-key");
    std::fs::write(&file, filter.to_string()).unwrap();
    hangup();
    agent_logged(&a, "reloaded the check's filter configuration");
    assert_eq!(key_now().as_deref(), Some("rotated-key"));
}

#[test]
fn in_fleet_scope_a_proof_is_allowed_once_across_replicas_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = autoid_testkit::redis::Redis::start(&dir.path().join("redis.log")).unwrap();
    let a = Checked::start_with(Some(&redis.url()), None, |_| {});
    let b = Checked::start_with(Some(&redis.url()), Some(&a), |_| {});
    // Each replica alone allows a fresh proof (the claim goes to Redis from the worker's root).
    for r in [&a, &b] {
        let proof = r.prove("alice", "GET", "/payments/x");
        let ok = r.check("GET", "/payments/x", Some(&proof), &[]);
        assert_eq!(ok.status, 200, "{ok:?}\n{}", r.log());
    }
    // The same proof sent to both replicas at once, several times each: one 200 in all.
    let proof = a.prove("bob", "GET", "/payments/x");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let r = if i % 2 == 0 { &a } else { &b };
                let proof = &proof;
                s.spawn(move || r.check("GET", "/payments/x", Some(proof), &[]).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}\n{}\n{}",
        a.log(),
        b.log()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[test]
fn a_directory_cluster_named_apart_from_the_agents_is_asked_in_process() {
    // The group questions go to the directory's cluster (named differently here), the key-plane
    // callouts to the agent's: both answered by the agent in-process.
    let a = Checked::start_with(None, None, |filter| {
        filter["directory"]["cluster"] = json!("autoid_directory");
    });
    let proof = a.prove("alice", "GET", "/payments/x");
    let r = a.check("GET", "/payments/x", Some(&proof), &[]);
    assert_eq!(r.status, 200, "{r:?}\n{}", a.log());
    assert!(
        r.header("x-autoid-groups")
            .is_some_and(|g| g.split(',').any(|g| g == "payments")),
        "{r:?}"
    );
    let proof = a.prove("carol", "GET", "/payments/x");
    a.check("GET", "/payments/x", Some(&proof), &[])
        .assert_denied(403, "forbidden");
}

#[test]
fn the_filters_counters_are_on_the_agents_metrics() {
    let a = Checked::start();
    let proof = a.prove("alice", "GET", "/payments/x");
    assert_eq!(a.check("GET", "/payments/x", Some(&proof), &[]).status, 200);
    a.check("GET", "/payments/x", Some(&proof), &[])
        .assert_denied(401, "unauthorized");
    // Allowed requests reach the counters on the filter's one-second tick.
    let text = common::eventually(
        "the check counters",
        std::time::Duration::from_secs(5),
        || {
            let m = send(&a.socket, "GET", "/metrics", &[]);
            let text = String::from_utf8(m.body).unwrap();
            text.contains("autoid_check_requests_allowed 1\n")
                .then_some(text)
        },
    );
    assert!(text.contains("autoid_check_denied_replay 1\n"), "{text}");
    assert!(
        text.contains("autoid_agent_answers_total{route=\"/v1/check\",outcome=\"allowed\"} 1\n"),
        "{text}"
    );
}

#[test]
fn check_config_errors_name_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let slapd = shared();
    let base = json!({
        "listen": format!("unix:{}", dir.path().join("agent.sock").display()),
        "ldap": {"url": slapd.ldap_url, "bind_dn": AGENT_DN,
                 "bind_password_file": slapd.agent_password_file()},
        "users": {"base": BASE},
        "groups": {"base": format!("ou=groups,{BASE}")},
    });
    std::fs::write(
        dir.path().join("bad-filter.json"),
        r#"{"apis": {"x": {"require": {"any_of": [""]}}}}"#,
    )
    .unwrap();
    for (check, expected) in [
        (
            json!({"filter_config": "f.json", "workers": 0}),
            "check.workers: must be between 1 and 256 (value: 0)",
        ),
        (
            json!({"filter_config": "f.json", "timeout_ms": 0}),
            "check.timeout_ms",
        ),
        (
            json!({"filter_config": "missing.json"}),
            "check.filter_config",
        ),
        (
            json!({"filter_config": "bad-filter.json"}),
            "check.filter_config: not a valid filter configuration",
        ),
        (
            json!({"filter_config": "f.json", "worker": 2}),
            "unknown field `worker`",
        ),
    ] {
        let mut config = base.clone();
        config["check"] = check;
        let file = dir.path().join("agent.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_autoid-agent"))
            .arg("--check-config")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
    }
}
