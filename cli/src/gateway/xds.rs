//! Envoy's own filesystem xDS: what changes with the API definitions moves out of the bootstrap
//! into files Envoy watches, so a definition change is a file swap, not a restart.
//!
//! From a rendered (static) bootstrap: each listener's `route_config` becomes a route
//! configuration served by RDS (`routes-<listener>.json`), the autoid wasm filter's configuration
//! an extension configuration served by ECDS (`filter.json`, resource `autoid`), and every
//! upstream cluster a cluster served by CDS (`clusters.json`). What stays in the bootstrap is what
//! only a restart changes: the listeners' addresses and TLS, the filter chain's shape, the admin
//! socket and the clusters autoid itself uses (the agent's, named `autoid_*`).
//!
//! Envoy reloads a file whenever a file is moved into its directory (`watched_directory`), and
//! keeps the running configuration when a file is refused. Each file is written beside its final
//! name and renamed into place, so Envoy never reads half a file; its `version_info` is a digest
//! of its resources, which Envoy reports back (the admin's `version_text` statistics), so a
//! writer can tell when each has been taken.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The ECDS resource name of the autoid filter.
pub(crate) const FILTER_RESOURCE: &str = "autoid";
/// The file holding the upstream clusters.
pub(crate) const CLUSTERS_FILE: &str = "clusters.json";
/// The file holding the filter's configuration.
pub(crate) const FILTER_FILE: &str = "filter.json";

const WASM_FILTER: &str = "envoy.filters.http.wasm";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EXTENSION_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// One xDS file: its name in the directory, its content (a discovery response) and the prefix of
/// the statistics in which Envoy reports it (`<stats>.version_text`, `<stats>.update_rejected`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct XdsFile {
    pub(crate) name: String,
    pub(crate) content: Value,
    pub(crate) stats: String,
}

impl XdsFile {
    fn new(name: String, resources: Vec<Value>, stats: String) -> XdsFile {
        let version = digest(&resources);
        XdsFile {
            name,
            content: json!({"version_info": version, "resources": resources}),
            stats,
        }
    }

    /// The `version_info`: a digest of the resources.
    pub(crate) fn version(&self) -> &str {
        self.content["version_info"].as_str().unwrap_or_default()
    }

    /// Its place in a change: the clusters first, the filter's configuration, the routes last.
    fn order(&self) -> u8 {
        match self.name.as_str() {
            CLUSTERS_FILE => 0,
            FILTER_FILE => 1,
            _ => 2,
        }
    }
}

/// A bootstrap that takes what changes from `files`, in the directory `dir`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dynamic {
    pub(crate) bootstrap: Value,
    pub(crate) files: Vec<XdsFile>,
}

/// The first 16 hex digits of the SHA-256 of the resources' JSON.
fn digest(resources: &[Value]) -> String {
    let bytes = serde_json::to_vec(resources).unwrap_or_default();
    let sum = Sha256::digest(&bytes);
    sum.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where Envoy reads `file` from: the file in `dir`, reloaded when a file is moved into `dir`.
fn source(dir: &Path, file: &str) -> Value {
    json!({
        "path_config_source": {
            "path": dir.join(file),
            "watched_directory": {"path": dir}
        },
        "resource_api_version": "V3"
    })
}

/// Splits a rendered static `bootstrap` into a bootstrap reading from `dir` (as Envoy will see
/// it: an absolute path, or the renderer's path style) and the files to put there.
pub(crate) fn split(mut bootstrap: Value, dir: &Path) -> Result<Dynamic> {
    let mut files = Vec::new();
    let mut filter_config: Option<Value> = None;
    let listeners = bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .context("the bootstrap has no static_resources.listeners")?;
    for listener in listeners {
        let name = listener["name"]
            .as_str()
            .context("a listener without a name")?
            .to_owned();
        let chains = listener["filter_chains"]
            .as_array_mut()
            .with_context(|| format!("listener {name}: no filter_chains"))?;
        if chains.len() != 1 {
            bail!(
                "listener {name}: {} filter chains, expected one",
                chains.len()
            );
        }
        let hcm = &mut chains[0]["filters"][0]["typed_config"];
        let stat_prefix = hcm["stat_prefix"].as_str().unwrap_or(&name).to_owned();
        let Some(mut routes) = hcm.as_object_mut().and_then(|o| o.remove("route_config")) else {
            bail!("listener {name}: no route_config in its connection manager");
        };
        let route_name = format!("{name}_routes");
        let file = format!("routes-{name}.json");
        routes["name"] = json!(route_name);
        let mut resource = json!({"@type": ROUTE_TYPE});
        merge(&mut resource, routes);
        files.push(XdsFile::new(
            file.clone(),
            vec![resource],
            format!("http.{stat_prefix}.rds.{route_name}"),
        ));
        hcm["rds"] = json!({"route_config_name": route_name, "config_source": source(dir, &file)});

        let filters = hcm["http_filters"]
            .as_array_mut()
            .with_context(|| format!("listener {name}: no http_filters"))?;
        for filter in filters.iter_mut() {
            if filter["name"] != WASM_FILTER {
                continue;
            }
            let config = filter["typed_config"].take();
            match &filter_config {
                Some(seen) if *seen != config => {
                    bail!(
                        "listener {name}: the wasm filter's configuration differs between listeners"
                    )
                }
                _ => filter_config = Some(config),
            }
            *filter = json!({
                "name": FILTER_RESOURCE,
                "config_discovery": {
                    "config_source": source(dir, FILTER_FILE),
                    "type_urls": [WASM_TYPE]
                }
            });
        }
    }
    if let Some(config) = filter_config {
        files.push(XdsFile::new(
            FILTER_FILE.to_owned(),
            vec![json!({"@type": EXTENSION_TYPE, "name": FILTER_RESOURCE, "typed_config": config})],
            format!("extension_config_discovery.http_filter.{FILTER_RESOURCE}"),
        ));
    }

    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .context("the bootstrap has no static_resources.clusters")?;
    let (own, upstream): (Vec<Value>, Vec<Value>) = clusters
        .drain(..)
        .partition(|c| c["name"].as_str().is_some_and(|n| n.starts_with("autoid_")));
    *clusters = own;
    let upstream = upstream
        .into_iter()
        .map(|c| {
            let mut resource = json!({"@type": CLUSTER_TYPE});
            merge(&mut resource, c);
            resource
        })
        .collect();
    files.push(XdsFile::new(
        CLUSTERS_FILE.to_owned(),
        upstream,
        "cluster_manager.cds".to_owned(),
    ));
    bootstrap["dynamic_resources"] = json!({"cds_config": source(dir, CLUSTERS_FILE)});
    Ok(Dynamic { bootstrap, files })
}

/// Copies `from`'s fields into `into` (both objects).
fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Writes `files` into `dir` in the order of a change (clusters, filter, routes: a new route
/// never names a cluster Envoy does not have yet); the paths written, in that order.
pub(crate) fn write_all(dir: &Path, files: &[XdsFile]) -> Result<Vec<PathBuf>> {
    let mut ordered: Vec<&XdsFile> = files.iter().collect();
    ordered.sort_by_key(|f| f.order());
    ordered.into_iter().map(|f| write(dir, f)).collect()
}

/// Writes `file` into `dir` as Envoy must see it: whole, by a rename into place.
pub(crate) fn write(dir: &Path, file: &XdsFile) -> Result<PathBuf> {
    let path = dir.join(&file.name);
    let mut text = serde_json::to_string_pretty(&file.content)?;
    text.push('\n');
    let mut staged = tempfile::Builder::new()
        .prefix(&format!(".{}.", file.name))
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut staged, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    staged
        .persist(&path)
        .with_context(|| format!("moving into place {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str, port: u16) -> Value {
        json!({
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "stat_prefix": name,
                    "route_config": {"virtual_hosts": [{"name": "apis", "domains": ["*"], "routes": [
                        {"name": "payments", "match": {"prefix": "/pay/"}, "route": {"cluster": "api_payments"}}
                    ]}]},
                    "http_filters": [
                        {"name": WASM_FILTER, "typed_config": {"@type": WASM_TYPE, "config": {"configuration": "apis"}}},
                        {"name": "envoy.filters.http.router"}
                    ]
                }
            }]}]
        })
    }

    fn bootstrap() -> Value {
        json!({
            "admin": {"address": {"pipe": {"path": "/run/admin.sock"}}},
            "static_resources": {
                "listeners": [listener("autoid_https", 8443), listener("autoid_http", 8080)],
                "clusters": [{"name": "api_payments"}, {"name": "autoid_agent"}]
            }
        })
    }

    #[test]
    fn routes_filter_and_upstreams_move_to_watched_files_and_the_rest_stays() {
        let dir = Path::new("/etc/autoid/xds");
        let d = split(bootstrap(), dir).unwrap();
        let names: Vec<&str> = d.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "routes-autoid_https.json",
                "routes-autoid_http.json",
                "filter.json",
                "clusters.json"
            ]
        );
        let hcm = &d.bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"];
        assert!(hcm.get("route_config").is_none());
        assert_eq!(hcm["rds"]["route_config_name"], "autoid_https_routes");
        assert_eq!(
            hcm["rds"]["config_source"]["path_config_source"]["path"],
            "/etc/autoid/xds/routes-autoid_https.json"
        );
        assert_eq!(
            hcm["rds"]["config_source"]["path_config_source"]["watched_directory"]["path"],
            "/etc/autoid/xds"
        );
        assert_eq!(hcm["http_filters"][0]["name"], FILTER_RESOURCE);
        assert_eq!(
            hcm["http_filters"][0]["config_discovery"]["type_urls"][0],
            WASM_TYPE
        );
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        // The agent's cluster stays; the API's moves.
        assert_eq!(
            d.bootstrap["static_resources"]["clusters"],
            json!([{"name": "autoid_agent"}])
        );
        assert_eq!(
            d.files[3].content["resources"],
            json!([{"@type": CLUSTER_TYPE, "name": "api_payments"}])
        );
        let routes = &d.files[0].content["resources"][0];
        assert_eq!(routes["@type"], ROUTE_TYPE);
        assert_eq!(routes["name"], "autoid_https_routes");
        assert_eq!(routes["virtual_hosts"][0]["routes"][0]["name"], "payments");
        let filter = &d.files[2].content["resources"][0];
        assert_eq!(filter["name"], FILTER_RESOURCE);
        assert_eq!(filter["typed_config"]["config"]["configuration"], "apis");
        assert_eq!(d.bootstrap["admin"], bootstrap()["admin"]);
        let stats: Vec<&str> = d.files.iter().map(|f| f.stats.as_str()).collect();
        assert_eq!(
            stats,
            [
                "http.autoid_https.rds.autoid_https_routes",
                "http.autoid_http.rds.autoid_http_routes",
                "extension_config_discovery.http_filter.autoid",
                "cluster_manager.cds"
            ]
        );
    }

    #[test]
    fn a_file_is_versioned_by_its_content() {
        let dir = Path::new("/x");
        let a = split(bootstrap(), dir).unwrap();
        let again = split(bootstrap(), dir).unwrap();
        assert_eq!(a.files[3].version(), again.files[3].version());
        assert_eq!(a.files[3].version().len(), 16);
        let mut changed = bootstrap();
        changed["static_resources"]["clusters"][0]["connect_timeout"] = json!("2s");
        let b = split(changed, dir).unwrap();
        assert_ne!(
            a.files[3].version(),
            b.files[3].version(),
            "clusters changed"
        );
        assert_eq!(
            a.files[2].version(),
            b.files[2].version(),
            "filter unchanged"
        );
    }

    #[test]
    fn listeners_whose_filter_configurations_differ_are_refused() {
        let mut b = bootstrap();
        b["static_resources"]["listeners"][1]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            [0]["typed_config"]["config"]["configuration"] = json!("other");
        let e = split(b, Path::new("/x")).unwrap_err().to_string();
        assert!(e.contains("autoid_http") && e.contains("differs"), "{e}");
    }

    #[test]
    fn a_file_is_written_whole_by_a_rename_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let d = split(bootstrap(), dir.path()).unwrap();
        let written = write_all(dir.path(), &d.files).unwrap();
        let order: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            order,
            [
                "clusters.json",
                "filter.json",
                "routes-autoid_https.json",
                "routes-autoid_http.json"
            ]
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "clusters.json",
                "filter.json",
                "routes-autoid_http.json",
                "routes-autoid_https.json"
            ]
        );
        let back: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("clusters.json")).unwrap())
                .unwrap();
        assert_eq!(back, d.files[3].content);
    }
}
