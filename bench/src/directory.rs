//! Arm (e)'s directory: Debian slapd (`openldap/run_ldap.sh`, seeded with alice in `payments`)
//! and the real `autoid-agent` in front of it on its unix socket (the default deployment: no
//! token), both started for the run and stopped after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::envoy::{unix_get, write_private};
use anyhow::{Context, Result, bail};

/// slapd and the bridge, running.
#[derive(Debug)]
pub struct Directory {
    repo: PathBuf,
    state: PathBuf,
    bridge: Child,
    /// The agent's unix socket (the Envoy cluster's `pipe` endpoint).
    pub socket: PathBuf,
    /// slapd's pid.
    pub slapd_pid: u32,
}

impl Directory {
    /// Starts slapd (state under `dir/ldap`, free ports, no per-operation logging) and the bridge.
    /// With `session_key` (a key id and its PKCS#8 PEM), the bridge also unwraps sessions for
    /// that key (arm (h)).
    pub fn start(
        repo: &Path,
        bridge_bin: &Path,
        dir: &Path,
        session_key: Option<(&str, &str)>,
    ) -> Result<Directory> {
        let state = dir.join("ldap");
        let script = repo.join("openldap/run_ldap.sh");
        let out = Command::new(&script)
            .arg("start")
            .env("LDAP_STATE_DIR", &state)
            .env("LDAP_PORT", "auto")
            .env("LDAPS_PORT", "auto")
            // No per-operation log lines: slapd would spend the bench's CPU writing them.
            .env("LDAP_DEBUG", "0")
            .env("LDAP_WATCH_PID", std::process::id().to_string())
            .output()
            .with_context(|| format!("run {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} start failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env_text = std::fs::read_to_string(state.join("ldap.env"))
            .with_context(|| format!("read {}/ldap.env", state.display()))?;
        let env: HashMap<&str, &str> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            env.get(k)
                .map(|v| (*v).to_owned())
                .with_context(|| format!("ldap.env has no {k}"))
        };
        let slapd_pid: u32 = get("LDAP_PID")?.parse().context("LDAP_PID")?;

        let socket = dir.join("agent.sock");
        let mut session_keys = Vec::new();
        if let Some((kid, pem)) = session_key {
            let file = dir.join(format!("{kid}.key.pem"));
            write_private(&file, pem.as_bytes())?;
            session_keys.push(serde_json::json!({ "kid": kid, "private_key_file": file }));
        }
        let config = serde_json::json!({
            "listen": format!("unix:{}", socket.display()),
            "ldap": {
                "url": get("LDAP_URL")?,
                "starttls": true,
                "ca_file": get("LDAP_CA_FILE")?,
                "bind_dn": get("LDAP_BRIDGE_DN")?,
                "bind_password_file": get("LDAP_BRIDGE_PASSWORD_FILE")?,
                "pool_size": 4
            },
            "users": { "base": "dc=example,dc=org" },
            "groups": { "base": "ou=groups,dc=example,dc=org" },
            "session_keys": session_keys
        });
        let config_file = dir.join("agent.json");
        write_private(
            &config_file,
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        let log = std::fs::File::create(dir.join("bridge.log"))?;
        let bridge = Command::new(bridge_bin)
            .arg("--config")
            .arg(&config_file)
            .env("AUTOID_BRIDGE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bridge_bin.display()))?;
        let mut d = Directory {
            repo: repo.to_owned(),
            state,
            bridge,
            socket,
            slapd_pid,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = d.bridge.try_wait()? {
                bail!(
                    "the bridge exited ({status}); see {}/bridge.log",
                    dir.display()
                );
            }
            if matches!(unix_get(&d.socket, "/readyz"), Ok((200, _))) {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!(
                    "the bridge was not ready within 30 s; see {}/bridge.log",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bridge's pid.
    pub fn bridge_pid(&self) -> u32 {
        self.bridge.id()
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.bridge.kill();
        let _ = self.bridge.wait();
        let _ = Command::new(self.repo.join("openldap/run_ldap.sh"))
            .arg("stop")
            .env("LDAP_STATE_DIR", &self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
