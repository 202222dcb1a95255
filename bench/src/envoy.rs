//! Envoy for one arm: a bootstrap rendered from the arm's HTTP filters (every arm routes to the
//! same `direct_response`, so the upstream is never the bottleneck), started with
//! `--concurrency 1`, admin on loopback, free ports; stopped when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The route every arm uses: its name is the autoid API key (`xds.route_name`).
pub const ROUTE_NAME: &str = "bench";
/// The authority and path of every request.
pub const HOST: &str = "bench.local";
/// See [`HOST`].
pub const PATH: &str = "/v1/bench";
/// The direct response's body.
const BODY: &str = "ok\n";

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

/// The proxy-wasm filter entry for a `.wasm` and its configuration (a JSON string).
pub fn wasm_filter(name: &str, wasm: &Path, configuration: &str) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "failure_policy": "FAIL_CLOSED",
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm.display().to_string() } }
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": configuration
                }
            }
        }
    })
}

/// Envoy's native `jwt_authn`: RS256 against an inline JWKS, required on every route.
pub fn jwt_filter(issuer: &str, jwks: &str) -> Value {
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "issuer": issuer,
                    "local_jwks": { "inline_string": jwks },
                    "forward": true
                }
            },
            "rules": [ { "match": { "prefix": "/" }, "requires": { "provider_name": "bench" } } ]
        }
    })
}

/// A cluster on a unix socket (Envoy's `pipe` address), as `autoid gateway render` makes the
/// agent's.
pub fn pipe_cluster(name: &str, socket: &std::path::Path) -> Value {
    static_cluster(name, json!({ "pipe": { "path": socket } }))
}

/// A static cluster with one loopback endpoint.
pub fn cluster(name: &str, port: u16) -> Value {
    static_cluster(
        name,
        json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } }),
    )
}

/// A static cluster with one endpoint at `address` (an Envoy `Address`).
fn static_cluster(name: &str, address: Value) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": address } } ] } ]
        }
    })
}

/// The bootstrap: one listener, the given filters then the router, one direct-response route.
pub fn bootstrap(listen: u16, admin: u16, filters: Vec<Value>, clusters: Vec<Value>) -> Value {
    let mut http_filters = filters;
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    json!({
        "node": { "id": "autoid-bench", "cluster": "autoid-bench" },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin } } },
        "static_resources": {
            "listeners": [ {
                "name": "bench",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": listen } },
                "filter_chains": [ { "filters": [ {
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "codec_type": "HTTP1",
                        "http_filters": http_filters,
                        "route_config": {
                            "name": "bench",
                            "virtual_hosts": [ {
                                "name": "bench",
                                "domains": ["*"],
                                "routes": [ {
                                    "name": ROUTE_NAME,
                                    "match": { "prefix": "/" },
                                    "direct_response": { "status": 200, "body": { "inline_string": BODY } }
                                } ]
                            } ]
                        }
                    }
                } ] } ]
            } ],
            "clusters": clusters
        }
    })
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// The listener.
    pub addr: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    /// Envoy's log file.
    pub log: PathBuf,
}

impl Envoy {
    /// Writes the bootstrap to `dir/<name>.json` and starts Envoy on it with one worker; waits
    /// until ready.
    pub fn start(
        envoy: &Path,
        dir: &Path,
        name: &str,
        bootstrap: &Value,
        listen: u16,
        admin: u16,
    ) -> Result<Envoy> {
        Envoy::start_with(envoy, dir, name, bootstrap, listen, admin, 1)
    }

    /// As [`Envoy::start`], with `concurrency` workers.
    pub fn start_with(
        envoy: &Path,
        dir: &Path,
        name: &str,
        bootstrap: &Value,
        listen: u16,
        admin: u16,
        concurrency: usize,
    ) -> Result<Envoy> {
        let config = dir.join(format!("{name}.envoy.json"));
        write_private(&config, serde_json::to_string_pretty(bootstrap)?.as_bytes())?;
        let log = dir.join(format!("{name}.envoy.log"));
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--disable-hot-restart", "--log-level", "warning"])
            .arg("--log-path")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", envoy.display()))?;
        let mut e = Envoy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], listen)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = e.child.try_wait()? {
                bail!(
                    "envoy exited ({status}) during startup; see {}",
                    e.log.display()
                );
            }
            if matches!(http_get(e.admin, "/ready"), Ok((200, _))) {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("envoy not ready within 60 s; see {}", e.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Envoy's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Counters whose name contains `filter`, from the admin `/stats`.
    pub fn stats(&self, filter: &str) -> Result<Vec<(String, u64)>> {
        let (_, body) = http_get(self.admin, &format!("/stats?filter={filter}"))?;
        Ok(body
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// Resident memory, kB.
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb_of(self.pid())
    }
}

/// A process's resident memory, kB.
pub fn rss_kb_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // SIGTERM via the admin endpoint, then kill this child (our own pid, never by name).
        let _ = http_post(self.admin, "/quitquitquit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file readable only by us (bootstraps hold private keys).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

fn http(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    exchange(s, method, path)
}

/// A GET over a unix socket (the agent's), `connection: close`.
pub fn unix_get(socket: &std::path::Path, path: &str) -> Result<(u16, String)> {
    let s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    exchange(s, "GET", path)
}

fn exchange(mut s: impl Read + Write, method: &str, path: &str) -> Result<(u16, String)> {
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A GET with `connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    http(addr, "GET", path)
}

/// A POST without body, `connection: close`.
pub fn http_post(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    http(addr, "POST", path)
}
