//! The clusters: one per upstream (TLS verified, AWS SigV4 signing as an upstream filter) and the
//! agent's (a unix socket, or TCP with TLS).

use anyhow::Result;
use serde_json::{Value, json};

use super::paths::PathStyle;
use super::tls::upstream_tls;
use super::values::{millis, socket};
use crate::gateway::defs::{
    AgentAddress, ApiDef, Definitions, DirectoryDef, Upstream, aws_signing_dir,
};
use crate::gateway::filter::AGENT_CLUSTER;

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A plain cluster of one endpoint (`STATIC` for an IP, `STRICT_DNS` for a name).
fn cluster(name: &str, host: &str, port: u16, connect_ms: u64) -> Value {
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let mut c = json!({
        "name": name,
        "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": millis(connect_ms),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(host, port)}}]}]
        }
    });
    if !is_ip {
        c["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    c
}

/// The cluster of an API's upstream (none for an API whose upstream is the agent).
pub(super) fn upstream_cluster(
    defs: &Definitions,
    api: &ApiDef,
    up: &Upstream,
    style: &PathStyle,
) -> Result<Value> {
    let name = format!("api_{}", api.id);
    let connect = api
        .timeouts
        .connect_ms
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
    let mut c = cluster(&name, &up.host, up.port, connect);
    if let Some(s) = &api.aws_service {
        // Signed as an upstream filter, after the route's rewrites: the path and Host AWS sees.
        let dir = aws_signing_dir(defs, &api.id)?;
        let file = dir.join("credentials");
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": [
                    {
                        "name": "envoy.filters.http.aws_request_signing",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning",
                            "service_name": s.service,
                            "region": s.region,
                            // The body's SHA-256 is signed (Envoy buffers it).
                            "use_unsigned_payload": false,
                            // Envoy's own and hop headers vary on the way; AWS reads SignedHeaders.
                            "match_excluded_headers": [
                                {"prefix": "x-envoy"}, {"exact": "x-request-id"}, {"exact": "user-agent"}
                            ],
                            "credential_provider": {
                                "custom_credential_provider_chain": true,
                                "credentials_file_provider": {
                                    "credentials_data_source": {
                                        "filename": style.render(&file)?,
                                        "watched_directory": {"path": style.render(&dir)?}
                                    }
                                }
                            }
                        }
                    },
                    {
                        "name": "envoy.filters.http.upstream_codec",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}
                    }
                ]
            }
        });
    }
    if up.tls {
        let ca = match &api.upstream_ca_file {
            Some(p) => style.render(&defs.resolve(p))?,
            None => SYSTEM_CA.to_owned(),
        };
        c["transport_socket"] = upstream_tls(&up.host, &ca, true);
    }
    Ok(c)
}

/// The agent's cluster: a unix socket (`pipe`), or TCP with TLS verified against the
/// definition's CA file.
pub(super) fn agent_cluster(
    defs: &Definitions,
    d: &DirectoryDef,
    style: &PathStyle,
) -> Result<Option<Value>> {
    let connect = d.connect_timeout_ms.unwrap_or(1000);
    Ok(match d.agent_address() {
        Some(AgentAddress::Unix(path)) => Some(json!({
            "name": AGENT_CLUSTER,
            "type": "STATIC",
            "connect_timeout": millis(connect),
            "lb_policy": "ROUND_ROBIN",
            "load_assignment": {
                "cluster_name": AGENT_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                    {"pipe": {"path": style.render(&defs.resolve(&path))?}}
                }}]}]
            }
        })),
        Some(AgentAddress::Tcp(host, port)) => {
            let mut c = cluster(AGENT_CLUSTER, &host, port, connect);
            if let Some(ca) = &d.ca_file {
                c["transport_socket"] =
                    upstream_tls(&host, &style.render(&defs.resolve(ca))?, false);
            }
            Some(c)
        }
        None => None,
    })
}
