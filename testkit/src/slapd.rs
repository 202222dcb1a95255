//! Debian's slapd through `openldap/run_ldap.sh`: its own state directory, free ports, seeded
//! with `openldap/ldif` (alice, bob, carol, the agent's service account), stopped when dropped
//! and, as a backstop, by the script's watcher when this process exits.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths::repo;
use crate::process::command;
use crate::{Error, Result};

pub const SLAPD_INSTALL: &str =
    "apt-get install -y slapd ldap-utils   (as root; or `make deps-ldap`)";
/// The directory's base DN.
pub const BASE: &str = "dc=example,dc=org";
/// The service account the agent binds as.
pub const AGENT_DN: &str = "uid=autoid-agent,ou=services,dc=example,dc=org";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";

/// A running slapd.
#[derive(Debug)]
pub struct Slapd {
    script: Script,
    /// Owned by a [`Slapd::start_temp`] instance, removed after it stops.
    _temp: Option<tempfile::TempDir>,
    /// `ldap://127.0.0.1:<port>`, StartTLS offered.
    pub ldap_url: String,
    pub ldaps_url: String,
    /// The CA of the server certificate.
    pub ca_file: PathBuf,
    /// The agent's password (also in [`Slapd::agent_password_file`]).
    pub agent_password: String,
    /// slapd's pid when it started.
    pub pid: u32,
}

/// How much slapd logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// One line per operation (`stats`): [`Slapd::binds_logged`] counts them.
    Operations,
    /// Nothing per operation (a benchmark: slapd would spend the CPU writing them).
    Quiet,
}

impl Slapd {
    /// Starts slapd with its state in `state` (created), logging operations.
    pub fn start(state: &Path) -> Result<Slapd> {
        Slapd::start_with(state, Log::Operations)
    }

    /// Starts slapd with its state in `state`.
    pub fn start_with(state: &Path, log: Log) -> Result<Slapd> {
        let script = Script {
            state: state.to_owned(),
            log,
            remove: false,
        };
        Slapd::from_start(script, None)
    }

    /// Starts slapd in a temporary state directory of its own, removed when it stops (or, for an
    /// instance that is never dropped, after this process exits).
    pub fn start_temp() -> Result<Slapd> {
        let temp = tempfile::Builder::new()
            .prefix("autoid-ldap-")
            .tempdir()
            .map_err(Error::io("a temporary directory for slapd"))?;
        let script = Script {
            state: temp.path().to_owned(),
            log: Log::Operations,
            remove: true,
        };
        Slapd::from_start(script, Some(temp))
    }

    /// Runs `run_ldap.sh start` and reads the settings it prints (kept in `run_ldap.log` in the
    /// state directory, as `make run` keeps them in a log).
    fn from_start(script: Script, temp: Option<tempfile::TempDir>) -> Result<Slapd> {
        let env = script.run("start", Ports::Free)?;
        let log = script.state.join("run_ldap.log");
        std::fs::write(&log, &env).map_err(Error::io(format!("write {}", log.display())))?;
        let vars: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| (*v).to_owned())
                .ok_or_else(|| Error::Unexpected {
                    what: "run_ldap.sh start".into(),
                    detail: format!("it printed no {k}:\n{env}"),
                })
        };
        Ok(Slapd {
            ldap_url: get("LDAP_URL")?,
            ldaps_url: get("LDAPS_URL")?,
            ca_file: PathBuf::from(get("LDAP_CA_FILE")?),
            agent_password: read_password(&get("LDAP_AGENT_PASSWORD_FILE")?)?,
            pid: get("LDAP_PID")?.parse().map_err(|e| Error::Unexpected {
                what: "run_ldap.sh start".into(),
                detail: format!("LDAP_PID: {e}"),
            })?,
            script,
            _temp: temp,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.script.state
    }

    /// The password file the agent reads.
    pub fn agent_password_file(&self) -> PathBuf {
        self.script.state.join("agent.password")
    }

    pub fn stop(&self) -> Result<()> {
        self.script.run("stop", Ports::Same).map(drop)
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&self) -> Result<()> {
        self.script.run("start", Ports::Same).map(drop)
    }

    /// Whether it runs and answers.
    pub fn is_running(&self) -> bool {
        command(repo().join("openldap/run_ldap.sh"))
            .arg("status")
            .env("LDAP_STATE_DIR", &self.script.state)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// How many simple binds slapd logged for `dn` so far ([`Log::Operations`]).
    pub fn binds_logged(&self, dn: &str) -> usize {
        let log = std::fs::read_to_string(self.script.state.join("slapd.log")).unwrap_or_default();
        let needle = format!("BIND dn=\"{dn}\"");
        log.lines().filter(|l| l.contains(&needle)).count()
    }

    /// Sets `dn`'s password as the directory's admin, the way an operator does (`ldappasswd`,
    /// the LDAP Password Modify extended operation).
    pub fn set_password(&self, dn: &str, password: &str) -> Result<()> {
        let what = "ldappasswd";
        let out = Command::new(what)
            .args(["-x", "-H", &self.ldap_url, "-D", ADMIN_DN])
            .arg("-y")
            .arg(self.script.state.join("admin.password"))
            .args(["-s", password, dn])
            .stdin(Stdio::null())
            .output()
            .map_err(Error::io(format!("{what} ({SLAPD_INSTALL})")))?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: what.into(),
                status: out.status,
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Applies an LDIF change as the directory's admin (`ldapmodify`).
    pub fn modify(&self, ldif: &str) -> Result<()> {
        let what = "ldapmodify";
        let mut child = Command::new(what)
            .args(["-x", "-H", &self.ldap_url, "-D", ADMIN_DN])
            .arg("-y")
            .arg(self.script.state.join("admin.password"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!("{what} ({SLAPD_INSTALL})")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(ldif.as_bytes()).map_err(Error::io(what))?;
        }
        let out = child.wait_with_output().map_err(Error::io(what))?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: what.into(),
                status: out.status,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }
}

/// A password file `run_ldap.sh` wrote (the password without a trailing newline).
fn read_password(file: &str) -> Result<String> {
    let text = std::fs::read_to_string(file).map_err(Error::io(format!("read {file}")))?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// Which ports `run_ldap.sh start` listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    /// Free ones, picked now.
    Free,
    /// Those of the last start (kept in the state directory).
    Same,
}

/// `openldap/run_ldap.sh` for one state directory.
#[derive(Debug)]
struct Script {
    state: PathBuf,
    log: Log,
    /// The state directory goes too when this process exits (`LDAP_WATCH_REMOVE`).
    remove: bool,
}

impl Script {
    /// `run_ldap.sh <cmd>` on `ports`; slapd stopped when this process exits. Its stdout.
    fn run(&self, cmd: &str, ports: Ports) -> Result<String> {
        let slapd = Path::new("/usr/sbin/slapd");
        if !slapd.exists() {
            return Err(Error::Missing {
                what: "slapd".into(),
                path: slapd.to_owned(),
                hint: SLAPD_INSTALL.into(),
            });
        }
        let mut c = command(repo().join("openldap/run_ldap.sh"));
        c.arg(cmd)
            .env("LDAP_STATE_DIR", &self.state)
            .env("LDAP_WATCH_PID", std::process::id().to_string())
            .env_remove("LDAP_PORT")
            .env_remove("LDAPS_PORT")
            .env_remove("LDAP_DEBUG")
            .env_remove("LDAP_WATCH_REMOVE");
        if ports == Ports::Free {
            c.env("LDAP_PORT", "auto").env("LDAPS_PORT", "auto");
        }
        if self.log == Log::Quiet {
            c.env("LDAP_DEBUG", "0");
        }
        if self.remove {
            c.env("LDAP_WATCH_REMOVE", "1");
        }
        crate::process::run(&mut c)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = command(repo().join("openldap/run_ldap.sh"))
            .arg("stop")
            .env("LDAP_STATE_DIR", &self.script.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
