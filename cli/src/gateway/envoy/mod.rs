//! The Envoy v3 bootstrap: listeners (HTTPS with Mozilla "intermediate" TLS and HSTS, plain HTTP
//! for development), one named route per API, a cluster per upstream and one for the LDAP
//! agent, the autoid wasm filter (V8, `FAIL_RELOAD`: a failed VM is reloaded, requests meanwhile
//! denied) before the router, paths and header names normalized or refused before routing
//! (docs/GATEWAY.md), admin on a unix socket.

mod authz;
mod clusters;
mod connection;
mod paths;
mod routes;
mod tls;
mod values;

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::defs::{Admin, Definitions};
use clusters::{agent_cluster, upstream_cluster};
use connection::connection_manager;
use values::socket;

pub(crate) use authz::{Authz, ExtAuthz};
pub(crate) use paths::PathStyle;
pub(crate) use tls::{DEFAULT_HSTS_SECS, INTERMEDIATE_CIPHERS, INTERMEDIATE_CURVES};

/// Request bytes Envoy buffers per connection: twice the largest body the filter checks, so the
/// filter's own 413 (uniform JSON, logged) answers first.
pub(crate) const CONNECTION_BUFFER_BYTES: usize = 2 * autoid_protocol::policy::MAX_BODY_BYTES;

/// The whole bootstrap. `admin_socket` is where the admin socket goes when the definitions do
/// not say.
pub(crate) fn bootstrap(
    defs: &Definitions,
    authz: &Authz<'_>,
    style: &PathStyle,
    admin_socket: &Path,
) -> Result<Value> {
    let g = &defs.gateway;
    let wasm = match authz {
        Authz::Wasm { .. } => style.render(&defs.resolve(&g.plugin.wasm_file))?,
        Authz::ExtAuthz(_) => String::new(),
    };
    let mut listeners = Vec::new();
    if let Some(h) = &g.listeners.https {
        let hsts = Some(h.hsts_max_age_secs.unwrap_or(DEFAULT_HSTS_SECS));
        let hcm = connection_manager("autoid_https", defs, hsts, true, authz, &wasm);
        listeners.push(json!({
            "name": "autoid_https",
            "stat_prefix": "autoid_https",
            "address": socket(&h.address, h.port),
            "per_connection_buffer_limit_bytes": CONNECTION_BUFFER_BYTES,
            "filter_chains": [{
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "common_tls_context": {
                            "tls_params": {
                                "tls_minimum_protocol_version": "TLSv1_2",
                                "tls_maximum_protocol_version": "TLSv1_3",
                                "cipher_suites": INTERMEDIATE_CIPHERS,
                                "ecdh_curves": INTERMEDIATE_CURVES
                            },
                            "tls_certificates": [{
                                "certificate_chain": {"filename": style.render(&defs.resolve(&h.cert_file))?},
                                "private_key": {"filename": style.render(&defs.resolve(&h.key_file))?}
                            }],
                            "alpn_protocols": ["h2", "http/1.1"]
                        }
                    }
                },
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm
                }]
            }]
        }));
    }
    if let Some(h) = &g.listeners.http {
        let hcm = connection_manager("autoid_http", defs, None, false, authz, &wasm);
        listeners.push(json!({
            "name": "autoid_http",
            "stat_prefix": "autoid_http",
            "address": socket(&h.address, h.port),
            "per_connection_buffer_limit_bytes": CONNECTION_BUFFER_BYTES,
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm
            }]}]
        }));
    }

    let mut clusters = Vec::new();
    for (_, api, up) in &defs.apis {
        if api.aws_role.is_none() {
            clusters.push(upstream_cluster(defs, api, up, style)?);
        }
    }
    if let Some(d) = &g.directory
        && let Some(c) = agent_cluster(defs, d, style)?
    {
        clusters.push(c);
    }

    let admin = match g.listeners.admin() {
        Admin::Tcp(address, port) => socket(&address, port),
        Admin::Socket(path) => {
            let path = path.map_or_else(|| admin_socket.to_owned(), |p| defs.resolve(&p));
            json!({"pipe": {"path": style.render(&path)?, "mode": 0o600}})
        }
    };
    Ok(json!({
        "node": {"id": "autoid-gateway", "cluster": "autoid"},
        "admin": {"address": admin},
        "static_resources": {"listeners": listeners, "clusters": clusters}
    }))
}
