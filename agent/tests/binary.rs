//! The built `autoid-agent` binary: config file, secrets from a file and the environment,
//! JSON request logs without secrets, graceful shutdown on SIGTERM.
// Test code: helpers outside #[test] functions may unwrap and panic too (clippy.toml only
// covers #[test] bodies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TOKEN, config, shared};
use serde_json::Value;

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
        .env("AUTOID_BRIDGE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut child = Command::new(exe)
        .args(["--log-format", "json", "--config"])
        .arg(&cfg)
        .env("AUTOID_BRIDGE_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no listening line");
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        lines.push(line);
        if v["message"] == "autoid-agent listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(&format!("http://{addr}/v1/groups?subject=carol"))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["groups"], serde_json::json!(["admins", "reports"]));
    let mut resp = agent
        .post(&format!("http://{addr}/v1/authenticate"))
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

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(line);
    }
    let all = lines.join("\n");
    assert!(!all.contains(TOKEN), "the token was logged:\n{all}");
    assert!(
        !all.contains("carol-pass") && !all.contains(&slapd.bridge_password),
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
            .env("AUTOID_BRIDGE_TOKEN", TOKEN)
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
