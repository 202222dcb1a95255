//! Arm (e)'s directory: Debian slapd (`openldap/run_ldap.sh`, seeded with alice in `payments`)
//! and the real `autoid-agent` in front of it on its unix socket (the default deployment: no
//! token), both started for the run by the test kit and stopped after; for arm (g), a Debian
//! redis-server the agent claims nonces in.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::Result;
use autoid_testkit::agent;
use autoid_testkit::http::unix_request;
use autoid_testkit::process::Proc;
use autoid_testkit::redis::Redis;
use autoid_testkit::slapd::{self, Log, Slapd};

use crate::envoy::write_private;

/// slapd and the agent, running. Fields drop in order: the agent first, then Redis and slapd.
#[derive(Debug)]
pub struct Directory {
    bridge: Proc,
    redis: Option<Redis>,
    slapd: Slapd,
    /// The agent's unix socket (the Envoy cluster's `pipe` endpoint).
    pub socket: PathBuf,
    /// The private key file and the epoch file the agent holds (the checking agents hold them
    /// too).
    held: Vec<(&'static str, serde_json::Value)>,
}

impl Directory {
    /// Starts slapd (state under `dir/ldap`, free ports, no per-operation logging: slapd would
    /// spend the bench's CPU writing them) and the agent. With `session_key` (a key id and its
    /// PKCS#8 PEM), the agent also unwraps sessions for that key (arm (h)). With `fleet`, a
    /// Redis is started too and the agent claims nonces in it (arm (g)). With `epoch` (an epoch
    /// file's JSON), the agent also holds that epoch and checks v3 possession tickets and hands
    /// out subjects' streams under it (phases 3 and 4, as `make run` deploys).
    pub fn start(
        agent_bin: &Path,
        dir: &Path,
        session_key: Option<(&str, &str)>,
        epoch: Option<(&str, &str)>,
        fleet: bool,
    ) -> Result<Directory> {
        let slapd = Slapd::start_with(&dir.join("ldap"), Log::Quiet)?;
        let socket = dir.join("agent.sock");
        let mut session_keys = Vec::new();
        let mut held = Vec::new();
        if let Some((kid, pem)) = session_key {
            let file = dir.join(format!("{kid}.key.pem"));
            write_private(&file, pem.as_bytes())?;
            session_keys.push(serde_json::json!({ "kid": kid, "private_key_file": file }));
        }
        let redis = if fleet {
            Some(Redis::start(&dir.join("redis.log"))?)
        } else {
            None
        };
        let mut config = serde_json::json!({
            "listen": format!("unix:{}", socket.display()),
            "ldap": {
                "url": slapd.ldap_url,
                "starttls": true,
                "ca_file": slapd.ca_file,
                "bind_dn": slapd::AGENT_DN,
                "bind_password_file": slapd.agent_password_file(),
                "pool_size": 4
            },
            "users": { "base": slapd::BASE },
            "groups": { "base": format!("ou=groups,{}", slapd::BASE) },
            "session_keys": session_keys
        });
        held.push(("session_keys", config["session_keys"].clone()));
        if let Some((id, json)) = epoch {
            let file = dir.join(format!("{id}.epoch.json"));
            write_private(&file, json.as_bytes())?;
            config["epoch_files"] = serde_json::json!([file]);
            held.push(("epoch_files", config["epoch_files"].clone()));
        }
        if let Some(r) = &redis {
            config["replay"] = serde_json::json!({ "redis_url": r.url() });
        }
        let config_file = dir.join("agent.json");
        write_private(
            &config_file,
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        let bridge = agent::start(
            agent_bin,
            &config_file,
            &[("AUTOID_AGENT_LOG", "warn")],
            &dir.join("bridge.log"),
            || agent::ready_on_socket(&socket),
        )?;
        Ok(Directory {
            bridge,
            redis,
            slapd,
            socket,
            held,
        })
    }

    /// Arm (x): another agent on this slapd, on its own socket `dir/<name>.check.sock`, that
    /// answers `/v1/check` with `filter_config` (one check worker, as Envoy runs one worker per
    /// arm); stopped when dropped.
    pub fn start_checker(
        &self,
        agent_bin: &Path,
        dir: &Path,
        name: &str,
        filter_config: &str,
    ) -> Result<Checker> {
        let socket = dir.join(format!("{name}.check.sock"));
        let filter_file = dir.join(format!("{name}.filter.json"));
        write_private(&filter_file, filter_config.as_bytes())?;
        let mut config = serde_json::json!({
            "listen": format!("unix:{}", socket.display()),
            "ldap": {
                "url": self.slapd.ldap_url,
                "starttls": true,
                "ca_file": self.slapd.ca_file,
                "bind_dn": slapd::AGENT_DN,
                "bind_password_file": self.slapd.agent_password_file(),
                "pool_size": 1
            },
            "users": { "base": slapd::BASE },
            "groups": { "base": format!("ou=groups,{}", slapd::BASE) },
            "check": { "filter_config": filter_file, "workers": 1 }
        });
        // The keys and epochs at the agent: it unwraps the sessions its checks meet.
        for (field, value) in &self.held {
            config[*field] = value.clone();
        }
        let config_file = dir.join(format!("{name}.agent.json"));
        write_private(
            &config_file,
            serde_json::to_string_pretty(&config)?.as_bytes(),
        )?;
        let proc = agent::start(
            agent_bin,
            &config_file,
            &[("AUTOID_AGENT_LOG", "warn")],
            &dir.join(format!("{name}.agent.log")),
            || agent::ready_on_socket(&socket),
        )?;
        // The filter's restart fence refuses proofs made in the second its replay table was
        // created (as after an Envoy restart): the run's proofs are made after this returns.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        while std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            <= started
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(Checker { proc, socket })
    }

    /// The agent's session counters (`autoid_agent_rsa_unwraps_total`,
    /// `autoid_agent_possession_refused_total`, `autoid_agent_unchecked_shed_total`) from its
    /// `/metrics`; empty when it does not answer.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let Ok(r) = unix_request(&self.socket, "GET", "/metrics") else {
            return BTreeMap::new();
        };
        if r.status != 200 {
            return BTreeMap::new();
        }
        agent_counters(&String::from_utf8_lossy(&r.body))
    }

    /// The agent's pid.
    pub fn agent_pid(&self) -> u32 {
        self.bridge.pid()
    }

    /// Redis's pid (arm (g)).
    pub fn redis_pid(&self) -> Option<u32> {
        self.redis.as_ref().map(|r| r.proc.pid())
    }

    /// slapd's pid.
    pub fn slapd_pid(&self) -> u32 {
        self.slapd.pid
    }
}

/// Arm (x)'s checking agent (stopped when dropped).
#[derive(Debug)]
pub struct Checker {
    proc: Proc,
    /// Its unix socket.
    pub socket: PathBuf,
}

impl Checker {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// The agent's session counters phase 3 records.
pub const AGENT_COUNTERS: [&str; 3] = [
    "autoid_agent_rsa_unwraps_total",
    "autoid_agent_possession_refused_total",
    "autoid_agent_unchecked_shed_total",
];

/// [`AGENT_COUNTERS`] from a Prometheus text (unlabelled samples).
pub fn agent_counters(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            AGENT_COUNTERS
                .contains(&name)
                .then(|| Some((name.to_owned(), value.trim().parse().ok()?)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_counters_reads_the_session_counters_only() {
        let text = "# HELP autoid_agent_rsa_unwraps_total RSA-OAEP decryptions run.\n\
                    # TYPE autoid_agent_rsa_unwraps_total counter\n\
                    autoid_agent_rsa_unwraps_total 12\n\
                    autoid_agent_possession_refused_total 3400\n\
                    autoid_agent_unchecked_shed_total 0\n\
                    autoid_agent_answers_total{route=\"/v1/sessions\",outcome=\"ok\"} 5\n\
                    autoid_agent_rsa_unwraps_total_bogus x\n";
        let c = agent_counters(text);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c["autoid_agent_rsa_unwraps_total"], 12);
        assert_eq!(c["autoid_agent_possession_refused_total"], 3400);
        assert_eq!(c["autoid_agent_unchecked_shed_total"], 0);
    }
}
