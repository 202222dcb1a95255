//! Every gateway the bench runs, rendered by `autoid gateway render` (the cli crate's renderer,
//! called as a library) from definitions the bench writes: only the upstream is substituted.
//!
//! The bench writes `gateway.json` (its listener port, the admin socket, the `.wasm`, the agent's
//! socket, the keys and epochs at the agent) and one API, `apis/bench.json` (the route every
//! request takes), then substitutes what a bench cannot take from a deployment:
//! - Envoy: each route's action becomes a `direct_response` (so the upstream is never the
//!   bottleneck), [`envoy`];
//! - nginx: the API location's `proxy_pass` becomes a static file (nginx's `direct_response`) and
//!   one worker (Envoy runs with `--concurrency 1`), [`nginx`].
//!
//! The arms that are not autoid (no filter, the floor filter, `jwt_authn`) take the warm arm's
//! rendered bootstrap with autoid's filter replaced ([`with_filters`]): only the filter chain
//! differs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autoid_cli::Target;
use autoid_protocol::entropy::Epoch;
use autoid_protocol::keys::GatewayKey;
use serde_json::{Value, json};

use crate::envoy::write_private;

/// The API's route prefix (`listen_path`): every request's path ([`crate::envoy::PATH`]) is
/// under it.
pub const LISTEN_PATH: &str = "/v1/";
/// The direct response's body.
pub const BODY: &str = "ok\n";
/// The HTTP listener's `stat_prefix` in a rendered bootstrap (Envoy's `http.<prefix>.*` stats).
pub const STAT_PREFIX: &str = "autoid_http";
/// The name of the autoid filter in a rendered bootstrap.
const WASM_FILTER: &str = "envoy.filters.http.wasm";
/// The nginx upstream line the renderer writes for the bench's API.
const NGINX_PROXY_PASS: &str = "proxy_pass http://autoid_api_bench$autoid_target_0;";
/// The upstream the definitions name: never reached (every substitution answers first).
const UPSTREAM: &str = "http://127.0.0.1:9";

/// What is rendered for one run.
#[derive(Debug)]
pub struct Rendered {
    /// The Envoy bootstrap, or the nginx configuration, as users deploy it.
    pub gateway: String,
    /// For the agent-checked targets: the filter configuration the agent decides with.
    pub filter_config: Option<String>,
    /// Envoy's admin socket, as the definitions put it.
    pub admin_socket: PathBuf,
}

/// Writes `gateway` and `api` as the definitions `dir/<name>.defs/{gateway.json,apis/bench.json}`
/// and renders them for `target`, as `autoid gateway render --config DIR --target TARGET` does.
pub fn render(
    dir: &Path,
    name: &str,
    gateway: &Value,
    api: &Value,
    target: Target,
) -> Result<Rendered> {
    let defs = dir.join(format!("{name}.defs"));
    std::fs::create_dir_all(defs.join("apis"))
        .with_context(|| format!("create {}", defs.display()))?;
    write_private(
        &defs.join("gateway.json"),
        serde_json::to_string_pretty(gateway)?.as_bytes(),
    )?;
    write_private(
        &defs.join("apis/bench.json"),
        serde_json::to_string_pretty(api)?.as_bytes(),
    )?;
    let out = dir.join(format!("{name}.rendered"));
    let r = autoid_cli::render_definitions(&defs, target, Some(&out))
        .with_context(|| format!("autoid gateway render --config {}", defs.display()))?;
    let admin_socket = gateway["listeners"]["admin"]["socket"]
        .as_str()
        .map(|s| defs.join(s))
        .unwrap_or_else(|| dir.join("envoy-admin.sock"));
    Ok(Rendered {
        gateway: r.gateway,
        filter_config: r.filter_config,
        admin_socket,
    })
}

/// What every autoid gateway of the bench is deployed with.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    /// The listener's port (loopback).
    pub listen: u16,
    /// The autoid filter.
    pub wasm: &'a Path,
    /// The proof header.
    pub proof_header: &'a str,
    /// The directory of `<kid>.key.pem` files (`plugin.keys_dir`).
    pub keys_dir: &'a Path,
    /// The epoch file (`plugin.epoch_files`).
    pub epoch_file: &'a Path,
    /// The agent's unix socket (`directory.address`).
    pub agent: &'a Path,
    /// How long the filter keeps a subject's groups (`directory.positive_ttl_secs`).
    pub groups_ttl_secs: u64,
}

/// `gateway.json` as `make run` deploys it: the keys and epochs at the agent (the filter learns
/// key ids and epoch parameters only), the groups from the directory through the agent, one HTTP
/// listener on loopback, Envoy's admin on a socket beside the definitions, no access log.
pub fn gateway_definition(d: &Deployment<'_>) -> Value {
    json!({
        "listeners": {
            "http": { "address": "127.0.0.1", "port": d.listen },
            "admin": { "socket": "admin.sock" }
        },
        "access_log": false,
        "plugin": {
            "wasm_file": d.wasm,
            "proof_header": d.proof_header,
            "keys_dir": d.keys_dir,
            "session_keys": "agent",
            "epochs": "agent",
            "epoch_files": [d.epoch_file]
        },
        "directory": {
            "address": format!("unix:{}", d.agent.display()),
            "timeout_ms": 5000,
            "positive_ttl_secs": d.groups_ttl_secs
        }
    })
}

/// Writes the gateway key and the epoch (mode 0600) where the definitions name them,
/// `dir/keys/<kid>.key.pem` and `dir/keys/<id>.epoch.json`: only the agent reads their secrets.
/// Returns `plugin.keys_dir` and the epoch file.
pub fn write_secrets(dir: &Path, key: &GatewayKey, epoch: &Epoch) -> Result<(PathBuf, PathBuf)> {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    write_private(
        &keys_dir.join(format!("{}.key.pem", key.kid())),
        key.to_pem()?.as_bytes(),
    )?;
    let epoch_file = keys_dir.join(format!("{}.epoch.json", epoch.id()));
    write_private(&epoch_file, epoch.to_json().as_bytes())?;
    Ok((keys_dir, epoch_file))
}

/// The API every arm serves, as a definition: `auth` is its `auth` object.
pub fn api(route: &str, auth: Value) -> Value {
    json!({
        "id": route,
        "name": "the bench's route",
        "enabled": true,
        "listen_path": LISTEN_PATH,
        "upstream": UPSTREAM,
        "auth": auth
    })
}

/// A rendered Envoy bootstrap with every route's action replaced by the bench's
/// `direct_response` (200, [`BODY`]); the only substitution.
pub fn envoy(rendered: &str) -> Result<Value> {
    let mut bootstrap: Value = serde_json::from_str(rendered).context("the rendered bootstrap")?;
    let mut routes = 0;
    for listener in listeners_mut(&mut bootstrap) {
        let Some(hosts) = hcm_mut(listener)
            .and_then(|h| h.pointer_mut("/route_config/virtual_hosts"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for host in hosts {
            for route in host
                .get_mut("routes")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(r) = route.as_object_mut()
                    && r.remove("route").is_some()
                {
                    r.insert(
                        "direct_response".into(),
                        json!({ "status": 200, "body": { "inline_string": BODY } }),
                    );
                    routes += 1;
                }
            }
        }
    }
    if routes == 0 {
        bail!("the rendered bootstrap has no route to an upstream");
    }
    Ok(bootstrap)
}

/// `bootstrap` with autoid's filter (the `wasm` one) replaced by `filters` in every listener:
/// the non-autoid arms' bootstraps, the rest as the warm arm's.
pub fn with_filters(mut bootstrap: Value, filters: &[Value]) -> Result<Value> {
    let mut replaced = 0;
    for listener in listeners_mut(&mut bootstrap) {
        let Some(chain) = hcm_mut(listener)
            .and_then(|h| h.get_mut("http_filters"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let Some(at) = chain.iter().position(|f| f["name"] == WASM_FILTER) else {
            continue;
        };
        chain.splice(at..=at, filters.iter().cloned());
        replaced += 1;
    }
    if replaced == 0 {
        bail!("the rendered bootstrap has no autoid filter to replace");
    }
    Ok(bootstrap)
}

/// A rendered nginx configuration with the bench's API answered by the static file under `root`
/// instead of the upstream, and one worker; the only substitutions.
pub fn nginx(rendered: &str, root: &Path) -> Result<String> {
    let one = |text: &str, from: &str, to: &str| -> Result<String> {
        match text.matches(from).count() {
            1 => Ok(text.replacen(from, to, 1)),
            n => bail!("the rendered nginx configuration has {n} `{from}` (expected one)"),
        }
    };
    let text = one(
        rendered,
        NGINX_PROXY_PASS,
        &format!("root {};", root.display()),
    )?;
    one(&text, "worker_processes auto;", "worker_processes 1;")
}

fn listeners_mut(bootstrap: &mut Value) -> impl Iterator<Item = &mut Value> {
    bootstrap
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// A listener's HTTP connection manager (its first filter chain's).
fn hcm_mut(listener: &mut Value) -> Option<&mut Value> {
    listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .filter(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("HttpConnectionManager"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Definitions as the bench writes them, in a temporary directory.
    fn definitions(dir: &Path) -> (Value, Value) {
        let key = GatewayKey::from_pem("bench-3072", crate::steps::KEY_3072_PEM).unwrap();
        let epoch = Epoch::generate("bench-ep", &mut crate::proofs::rng()).unwrap();
        let (keys_dir, epoch_file) = write_secrets(dir, &key, &epoch).unwrap();
        let gateway = gateway_definition(&Deployment {
            listen: 18080,
            wasm: &dir.join("autoid.wasm"),
            proof_header: "x-autoid-proof",
            keys_dir: &keys_dir,
            epoch_file: &epoch_file,
            agent: &dir.join("agent.sock"),
            groups_ttl_secs: 300,
        });
        let api = api(
            "bench",
            json!({ "require": { "any_of": ["payments"] },
                    "inject": { "authorization": { "value": "Bearer x" } } }),
        );
        (gateway, api)
    }

    /// Every path (`/a/b/0`) whose value differs between `a` and `b`, at the shallowest level.
    fn differences(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => differences(p, q, format!("{at}/{k}"), out),
                        _ => out.push(format!("{at}/{k}")),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    differences(p, q, format!("{at}/{i}"), out);
                }
            }
            _ if a == b => {}
            _ => out.push(at),
        }
    }

    #[test]
    fn the_envoy_bootstrap_differs_from_the_rendered_one_only_in_the_route_action() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, api) = definitions(dir.path());
        let r = render(dir.path(), "t", &gateway, &api, Target::EnvoyWasm).unwrap();
        let rendered: Value = serde_json::from_str(&r.gateway).unwrap();
        let bench = envoy(&r.gateway).unwrap();
        let mut diff = Vec::new();
        differences(&rendered, &bench, String::new(), &mut diff);
        let route = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config\
                     /route_config/virtual_hosts/0/routes/0";
        assert_eq!(
            diff,
            vec![format!("{route}/route"), format!("{route}/direct_response")]
        );
        assert!(
            rendered
                .pointer(&format!("{route}/route/cluster"))
                .is_some()
        );
        assert_eq!(
            bench.pointer(&format!("{route}/direct_response/status")),
            Some(&json!(200))
        );
        // The listener, the admin socket and the agent are the definitions', not substituted.
        assert_eq!(
            bench.pointer("/static_resources/listeners/0/address/socket_address/port_value"),
            Some(&json!(18080))
        );
        assert_eq!(r.admin_socket, dir.path().join("t.defs/admin.sock"));
        assert_eq!(
            bench.pointer(
                "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/stat_prefix"
            ),
            Some(&json!(STAT_PREFIX))
        );

        // The non-autoid arms: the same bootstrap, the filter chain aside.
        let floor = json!({ "name": "floor" });
        let other = with_filters(bench.clone(), std::slice::from_ref(&floor)).unwrap();
        let mut diff = Vec::new();
        differences(&bench, &other, String::new(), &mut diff);
        let chain = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config\
                     /http_filters/0";
        assert_eq!(
            diff,
            vec![format!("{chain}/name"), format!("{chain}/typed_config")]
        );
    }

    #[test]
    fn the_nginx_configuration_differs_from_the_rendered_one_only_in_the_upstream_and_workers() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, api) = definitions(dir.path());
        let r = render(dir.path(), "t", &gateway, &api, Target::Nginx).unwrap();
        assert!(r.filter_config.is_some());
        let root = dir.path().join("static");
        let bench = nginx(&r.gateway, &root).unwrap();
        let changed: Vec<(&str, &str)> = r
            .gateway
            .lines()
            .zip(bench.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(r.gateway.lines().count(), bench.lines().count());
        assert_eq!(
            changed,
            vec![
                ("worker_processes auto;", "worker_processes 1;"),
                (
                    "            proxy_pass http://autoid_api_bench$autoid_target_0;",
                    &*format!("            root {};", root.display())
                ),
            ]
        );
    }
}
