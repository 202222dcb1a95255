//! The routes: one named route per API (its prefix, rewrites, timeout, upstream cluster).

use serde_json::{Value, json};

use super::authz::{Authz, ext_authz_route};
use super::tls::hsts_header;
use super::values::millis;
use crate::gateway::defs::{ApiDef, Definitions, Upstream};
use crate::gateway::filter::{AGENT_CLUSTER, AGENT_SOCKET_AUTHORITY};

const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;

/// One API's route.
fn route(api: &ApiDef, up: &Upstream) -> Value {
    if api.aws_role.is_some() {
        // Every path under the API asks the agent for this API's credentials.
        return json!({
            "name": api.id,
            "match": {"prefix": api.listen_path},
            "route": {
                "cluster": AGENT_CLUSTER,
                "timeout": millis(api.timeouts.upstream_ms.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS)),
                "host_rewrite_literal": AGENT_SOCKET_AUTHORITY,
                "regex_rewrite": {
                    "pattern": {"regex": "^.*$"},
                    "substitution": up.path
                }
            }
        });
    }
    let host = up.authority();
    let mut action = json!({
        "cluster": format!("api_{}", api.id),
        "timeout": millis(api.timeouts.upstream_ms.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS)),
        "host_rewrite_literal": host,
    });
    // listen_path starts and ends with '/'.
    let base = if up.path.ends_with('/') {
        up.path.clone()
    } else {
        format!("{}/", up.path)
    };
    if api.strip_listen_path {
        if base != api.listen_path {
            action["prefix_rewrite"] = json!(base);
        }
    } else if base != "/" {
        action["prefix_rewrite"] =
            json!(format!("{}{}", base.trim_end_matches('/'), api.listen_path));
    }
    json!({
        "name": api.id,
        "match": {"prefix": api.listen_path},
        "route": action
    })
}

/// The route configuration: every API's route, and HSTS on every response when `hsts` is set.
pub(super) fn route_config(
    name: &str,
    defs: &Definitions,
    hsts: Option<u64>,
    authz: &Authz<'_>,
) -> Value {
    let routes: Vec<Value> = defs
        .apis
        .iter()
        .map(|(_, a, u)| match authz {
            Authz::Wasm { .. } => route(a, u),
            Authz::ExtAuthz(_) => ext_authz_route(route(a, u), a),
        })
        .collect();
    let mut rc = json!({
        "name": name,
        "virtual_hosts": [{"name": "apis", "domains": ["*"], "routes": routes}]
    });
    if let Some(age) = hsts {
        rc["response_headers_to_add"] = json!([hsts_header(age)]);
    }
    rc
}
