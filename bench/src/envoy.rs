//! Envoy for one arm (its bootstrap rendered by [`crate::gateway`]), started with
//! `--concurrency 1` on free ports, stopped by the test kit; the filters the non-autoid arms put
//! in autoid's place.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use autoid_testkit::envoy::{self as testkit, Admin};
use serde_json::{Value, json};

/// The route every arm uses: its name is the autoid API key (`xds.route_name`).
pub const ROUTE_NAME: &str = "bench";
/// The authority and path of every request.
pub const HOST: &str = "bench.local";
/// See [`HOST`].
pub const PATH: &str = "/v1/bench";

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

/// A running Envoy and its listener.
#[derive(Debug)]
pub struct Envoy {
    proxy: testkit::Envoy,
    /// The listener.
    pub addr: SocketAddr,
}

impl Envoy {
    /// Writes the bootstrap to `dir/<name>.envoy.json` and starts Envoy on it (one worker, its log
    /// in `dir/<name>.envoy.log`, its admin interface where the bootstrap puts it); waits until
    /// ready.
    pub fn start(
        envoy: &Path,
        dir: &Path,
        name: &str,
        bootstrap: &Value,
        listen: u16,
        admin: Admin,
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
        admin: Admin,
        concurrency: usize,
    ) -> Result<Envoy> {
        let config = dir.join(format!("{name}.envoy.json"));
        write_private(&config, serde_json::to_string_pretty(bootstrap)?.as_bytes())?;
        let proxy = testkit::Envoy::start(
            envoy,
            &config,
            admin,
            &dir.join(format!("{name}.envoy.log")),
            &dir.join(format!("{name}.envoy.out")),
            &[
                "--concurrency",
                &concurrency.to_string(),
                "--log-level",
                "warning",
            ],
        )?;
        Ok(Envoy {
            proxy,
            addr: SocketAddr::from(([127, 0, 0, 1], listen)),
        })
    }

    /// Envoy's pid.
    pub fn pid(&self) -> u32 {
        self.proxy.pid()
    }

    /// Counters whose name matches `filter`, from the admin `/stats`.
    pub fn stats(&self, filter: &str) -> Result<Vec<(String, u64)>> {
        Ok(self.proxy.stats(filter)?)
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
