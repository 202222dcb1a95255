//! The built `autoid-agent` binary: config file, secrets from a file and the environment,
//! JSON request logs without secrets, graceful shutdown on SIGTERM; its unix socket (the
//! default) and its TLS listener; plain TCP refused.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use autoid_testkit::agent;
use autoid_testkit::process::Proc;
use common::{TOKEN, config, dev_tls, shared, unix_request};
use serde_json::{Value, json};

/// Starts the binary with its JSON log on stderr and waits for its "listening" log line.
fn start(cfg: &Path, token: Option<&str>) -> agent::Logged {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoid-agent"));
    cmd.args(["--log-format", "json", "--config"])
        .arg(cfg)
        .env_remove("AUTOID_AGENT_TOKEN");
    if let Some(t) = token {
        cmd.env("AUTOID_AGENT_TOKEN", t);
    }
    agent::start_logged(&mut cmd, &cfg.with_extension("log")).unwrap()
}

/// SIGTERM, then how it exited (SIGKILL after 10 s: a failure the status shows).
fn sigterm_and_wait(agent: &mut Proc) -> ExitStatus {
    agent.terminate(Duration::from_secs(10)).unwrap()
}

#[test]
fn binary_on_the_default_socket_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.json");
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("listen");
    o.remove("insecure_plain_tcp");
    std::fs::write(&cfg, c.to_string()).unwrap();
    // `listen` absent: unix:autoid-agent.sock, relative to the current directory.
    let exe = env!("CARGO_BIN_EXE_autoid-agent");
    let mut child = Proc::spawn(
        "the agent",
        Command::new(exe)
            .args(["--log-format", "json", "--config"])
            .arg(&cfg)
            .current_dir(dir.path())
            .env_remove("AUTOID_AGENT_TOKEN"),
        &dir.path().join("agent.log"),
    )
    .unwrap();
    let socket = dir.path().join("autoid-agent.sock");
    child
        .wait_ready(Duration::from_secs(15), || {
            agent::ready_on_socket(&socket).then_some(())
        })
        .unwrap();
    let (status, body) = unix_request(&socket, "GET", "/v1/groups?subject=carol", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"], json!(["admins", "reports"]));
    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket outlived SIGTERM");
}

#[test]
fn binary_refuses_plain_tcp_without_the_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.json");
    let mut c = config(shared());
    c.as_object_mut().unwrap().remove("insecure_plain_tcp");
    std::fs::write(&cfg, c.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_autoid-agent"))
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .env("AUTOID_AGENT_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("tls: ") && stderr.contains("insecure_plain_tcp"),
        "{stderr}"
    );

    // --listen is validated like the file's `listen`.
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    o.insert("listen".into(), json!("unix:agent.sock"));
    std::fs::write(&cfg, c.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_autoid-agent"))
        .args(["--check-config", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .env("AUTOID_AGENT_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("tls: "),
        "{stderr}"
    );
}

/// Runs `--check-config` with only these of the agent's variables set (new and old names).
fn check_config_with(envs: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoid-agent"));
    cmd.arg("--check-config");
    for name in ["CONFIG", "TOKEN", "BIND_PASSWORD", "LOG", "LOG_FORMAT"] {
        cmd.env_remove(format!("AUTOID_AGENT_{name}"))
            .env_remove(format!("AUTOID_BRIDGE_{name}"));
    }
    let out = cmd.envs(envs.iter().copied()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_still_reads_the_old_environment_names_and_names_the_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_tls(dir.path()).unwrap();
    let cfg = dir.path().join("agent.json");
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    // TLS: a token is required, so which variable gave it shows.
    o.insert(
        "tls".into(),
        json!({"cert_file": tls.cert, "key_file": tls.key}),
    );
    std::fs::write(&cfg, c.to_string()).unwrap();
    let cfg = cfg.to_str().unwrap();

    // The old names alone are read, each with a warning naming its new name.
    let (ok, stderr) = check_config_with(&[
        ("AUTOID_BRIDGE_CONFIG", cfg),
        ("AUTOID_BRIDGE_TOKEN", TOKEN),
        ("AUTOID_BRIDGE_LOG", "info"),
    ]);
    assert!(ok, "{stderr}");
    for (old, new) in [
        ("AUTOID_BRIDGE_CONFIG", "AUTOID_AGENT_CONFIG"),
        ("AUTOID_BRIDGE_TOKEN", "AUTOID_AGENT_TOKEN"),
        ("AUTOID_BRIDGE_LOG", "AUTOID_AGENT_LOG"),
    ] {
        assert!(
            stderr.contains(&format!(
                "{old} is the old name of {new}: it is still read, but rename it to {new}"
            )),
            "{stderr}"
        );
    }
    // It is the old variable's value that was read: a short token is refused.
    let (ok, stderr) = check_config_with(&[
        ("AUTOID_BRIDGE_CONFIG", cfg),
        ("AUTOID_BRIDGE_TOKEN", "short"),
    ]);
    assert!(!ok && stderr.contains("too short"), "{stderr}");

    // Both names: the new one wins, and the old one is said to be ignored.
    let (ok, stderr) = check_config_with(&[
        ("AUTOID_AGENT_CONFIG", cfg),
        ("AUTOID_AGENT_TOKEN", TOKEN),
        ("AUTOID_BRIDGE_TOKEN", "short"),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("AUTOID_BRIDGE_TOKEN is ignored: AUTOID_AGENT_TOKEN is set"),
        "{stderr}"
    );
    assert!(!stderr.contains("is the old name of"), "{stderr}");

    // Neither: the refusal names the new variable; no configuration at all names --config.
    let (ok, stderr) = check_config_with(&[("AUTOID_AGENT_CONFIG", cfg)]);
    assert!(!ok && stderr.contains("AUTOID_AGENT_TOKEN"), "{stderr}");
    let (ok, stderr) = check_config_with(&[]);
    assert!(!ok && stderr.contains("--config"), "{stderr}");
}

#[test]
fn binary_over_tls_needs_the_token_and_answers_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_tls(dir.path()).unwrap();
    let (ca, cert, key) = (tls.ca, tls.cert, tls.key);
    let cfg = dir.path().join("agent.json");
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    o.insert("tls".into(), json!({"cert_file": cert, "key_file": key}));
    std::fs::write(&cfg, c.to_string()).unwrap();

    // No token: refused before listening.
    let out = Command::new(env!("CARGO_BIN_EXE_autoid-agent"))
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .env_remove("AUTOID_AGENT_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no bearer token"),
        "{stderr}"
    );

    let started = start(&cfg, Some(TOKEN));
    let (mut child, addr) = (started.proc, started.addr);
    assert!(addr.starts_with("https://127.0.0.1:"), "{addr}");
    let pem = std::fs::read(&ca).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    ureq::tls::Certificate::from_pem(&pem).unwrap(),
                ])))
                .build(),
        )
        .build()
        .into();
    common::eventually(
        "/readyz over TLS to answer 200",
        Duration::from_secs(15),
        || {
            agent
                .get(&format!("{addr}/readyz"))
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
                .then_some(())
        },
    );
    let status = |auth: Option<&str>| {
        let mut req = agent.get(&format!("{addr}/v1/groups?subject=carol"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.call().unwrap().status().as_u16()
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(&format!("Bearer {TOKEN}"))), 200);
    assert!(sigterm_and_wait(&mut child).success());
}

#[test]
fn binary_serves_logs_and_stops_on_sigterm() {
    let slapd = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.json");
    let mut c = config(slapd);
    c["ldap"]["starttls"] = Value::Bool(true);
    c["ldap"]["ca_file"] = serde_json::json!(slapd.ca_file);
    std::fs::write(&cfg, c.to_string()).unwrap();

    let exe = env!("CARGO_BIN_EXE_autoid-agent");
    let check = Command::new(exe)
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .env("AUTOID_AGENT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let agent::Logged {
        proc: mut child,
        lines: rx,
        seen: mut lines,
        addr,
    } = start(&cfg, Some(TOKEN));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(&format!("{addr}/v1/groups?subject=carol"))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["groups"], serde_json::json!(["admins", "reports"]));
    let mut resp = agent
        .post(&format!("{addr}/v1/authenticate"))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .send(r#"{"username":"carol","password":"carol-pass"}"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.body_mut()
            .read_to_string()
            .unwrap()
            .contains("\"authenticated\":true")
    );

    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "{status}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(line);
    }
    let all = lines.join("\n");
    assert!(!all.contains(TOKEN), "the token was logged:\n{all}");
    assert!(
        !all.contains("carol-pass") && !all.contains(&slapd.agent_password),
        "a password was logged:\n{all}"
    );
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{all}");
    assert_eq!(requests[0]["outcome"], "found");
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[0]["subject"], "carol");
    assert!(requests[0]["latency_us"].is_u64());
    assert_eq!(requests[1]["outcome"], "authenticated");
    assert!(all.contains("SIGTERM received"), "{all}");
    // The common config opts in to plain TCP: loud in the log.
    assert!(all.contains("insecure_plain_tcp is ON"), "{all}");
}

#[test]
fn check_config_loads_the_epoch_files_and_names_the_bad_one() {
    let slapd = shared();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ep-1.epoch.json");
    let epoch = autoid_protocol::entropy::Epoch::new("ep-1", [5u8; 32], 65536, 64).unwrap();
    std::fs::write(&good, epoch.to_json()).unwrap();
    let bad = dir.path().join("ep-2.epoch.json");
    std::fs::write(&bad, epoch.to_json().replace("\"ep-1\"", "\"bad id!\"")).unwrap();
    let exe = env!("CARGO_BIN_EXE_autoid-agent");
    let check = |files: Vec<&std::path::Path>| {
        let cfg = dir.path().join("agent.json");
        let mut c = config(slapd);
        c["epoch_files"] = serde_json::json!(files);
        std::fs::write(&cfg, c.to_string()).unwrap();
        Command::new(exe)
            .args(["--check-config", "--config"])
            .arg(&cfg)
            .env("AUTOID_AGENT_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let ok = check(vec![&good]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = check(vec![&good, &bad]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("epoch_files[1]"), "{stderr}");
    assert!(stderr.contains("ep-2.epoch.json"), "{stderr}");
    let secret: Value = serde_json::from_str(&epoch.to_json()).unwrap();
    assert!(
        !stderr.contains(secret["secret"].as_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn sighup_reloads_keys_and_epochs_all_or_nothing_and_a_retired_epoch_is_unknown() {
    use autoid_protocol::entropy::Epoch;
    let dir = tempfile::tempdir().unwrap();
    let write_epoch = |id: &str, seed: u8| {
        let path = dir.path().join(format!("{id}.epoch.json"));
        let e = Epoch::new(id, [seed; 32], 8192, 32).unwrap();
        std::fs::write(&path, e.to_json()).unwrap();
        path
    };
    let (e1, e2) = (write_epoch("ep-1", 1), write_epoch("ep-2", 2));
    let socket = dir.path().join("agent.sock");
    let cfg = dir.path().join("agent.json");
    let write_config = |files: Value| {
        let mut c = config(shared());
        let o = c.as_object_mut().unwrap();
        o.remove("insecure_plain_tcp");
        o.insert("listen".into(), json!(format!("unix:{}", socket.display())));
        o.insert("epoch_files".into(), files);
        std::fs::write(&cfg, c.to_string()).unwrap();
    };
    write_config(json!([e1]));
    let agent::Logged {
        proc: mut child,
        lines: rx,
        ..
    } = start(&cfg, None);
    let stream = |epoch: &str| {
        let body = json!({ "epoch": epoch, "subject": "alice" }).to_string();
        unix_request(&socket, "POST", "/v1/streams", None, Some(&body))
    };
    // Waits for a log line whose message starts with `prefix`; returns it.
    let logged = |prefix: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if v["message"].as_str().is_some_and(|m| m.starts_with(prefix)) {
                        return v;
                    }
                }
                Err(_) => panic!("no log line starting with {prefix:?}"),
            }
        }
    };
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &child.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    assert_eq!(stream("ep-1").0, 200);
    assert!(stream("ep-1").1.get("expires_at").is_none());
    assert_eq!(stream("ep-2").0, 404);

    // ep-2 added, ep-1 retiring far ahead: both served, ep-1 says when it goes.
    write_config(json!([{ "file": e1, "not_after": 4_000_000_000u64 }, e2]));
    hup();
    let line = logged("SIGHUP: reloaded the gateway keys and epochs");
    assert!(line.to_string().contains("ep-2"), "{line}");
    let (status, body) = stream("ep-1");
    assert_eq!(
        (status, body["expires_at"].as_u64()),
        (200, Some(4_000_000_000))
    );
    assert_eq!(stream("ep-2").0, 200);

    // ep-1 retired (not_after passed): unknown.
    write_config(json!([{ "file": e1, "not_after": 1 }, e2]));
    hup();
    logged("SIGHUP: reloaded the gateway keys and epochs");
    let (status, body) = stream("ep-1");
    assert_eq!((status, &body["error"]), (404, &json!("unknown_epoch")));
    assert_eq!(stream("ep-2").0, 200);

    // A file that cannot be loaded: nothing changes, and the log says why.
    write_config(json!([e2, dir.path().join("missing.epoch.json")]));
    hup();
    let line = logged("SIGHUP: reload failed");
    assert!(line.to_string().contains("epoch_files[1]"), "{line}");
    assert_eq!(stream("ep-1").0, 404, "still the running set");
    assert_eq!(stream("ep-2").0, 200);
    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "{status}");
}

/// The nice value of each thread of `pid` whose name starts with `prefix` (from
/// `/proc/<pid>/task/<tid>/stat`, field 19).
fn thread_nices(pid: u32, prefix: &str) -> Vec<i32> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // After the name's closing parenthesis: field 3 (state) onwards; the nice value is 19.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        nices.push(fields[19 - 3].parse().unwrap());
    }
    nices
}

#[test]
fn unwraps_run_on_rsa_threads_ten_nice_values_below_the_agent_and_answer() {
    use autoid_protocol::keys::GatewayKey;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let key = GatewayKey::generate("gw-1", 2048, &mut rng).unwrap();
    let key_file = dir.path().join("gw-1.pem");
    std::fs::write(&key_file, key.to_pem().unwrap()).unwrap();
    let socket = dir.path().join("agent.sock");
    let cfg = dir.path().join("agent.json");
    let mut c = config(shared());
    let o = c.as_object_mut().unwrap();
    o.remove("insecure_plain_tcp");
    o.insert("listen".into(), json!(format!("unix:{}", socket.display())));
    o.insert(
        "session_keys".into(),
        json!([{"kid": "gw-1", "private_key_file": key_file}]),
    );
    std::fs::write(&cfg, c.to_string()).unwrap();
    let mut agent = start(&cfg, None);
    let pid = agent.proc.pid();

    let own = thread_nices(pid, "autoid-agent");
    let rsa = thread_nices(pid, "autoid-rsa-");
    assert!(!own.is_empty(), "the agent's main thread is named after it");
    assert!(!rsa.is_empty(), "the agent runs RSA threads");
    let expected = (own[0] + 10).min(19);
    assert!(
        rsa.iter().all(|&n| n == expected),
        "RSA threads at nice {expected}, got {rsa:?} (agent at {})",
        own[0]
    );
    assert!(
        own.iter().all(|&n| n == own[0]),
        "the agent's other threads keep its nice value"
    );

    // An unwrap runs there and answers: a v2 session (no ticket) wrapped for the public key.
    let mut session = [7u8; 40];
    session[32..].copy_from_slice(&1_700_000_000u64.to_be_bytes());
    let wrapped = key.public().wrap(&session, &mut rng).unwrap();
    let body = json!({
        "kid": "gw-1",
        "wrapped": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &wrapped),
    })
    .to_string();
    let (status, answer) = unix_request(&socket, "POST", "/v1/sessions", None, Some(&body));
    assert_eq!(status, 200, "{answer}");
    let expected_session =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, session);
    assert_eq!(answer["session"], json!(expected_session));
    assert!(sigterm_and_wait(&mut agent.proc).success());
}
