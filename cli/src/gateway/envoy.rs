//! The Envoy v3 bootstrap: listeners (HTTPS with Mozilla "intermediate" TLS and HSTS, plain HTTP
//! for development), one named route per API, a cluster per upstream and one for the LDAP
//! bridge, the autoid wasm filter (V8, `FAIL_RELOAD`: a failed VM is reloaded, requests meanwhile
//! denied) before the router, paths and header names normalized or refused before routing
//! (docs/GATEWAY.md), admin on a unix socket.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use autoid_protocol::check::{CONTRACT_HEADERS, STATUS_HEADER};
use serde_json::{Value, json};

use super::defs::{Admin, AgentAddress, ApiDef, Definitions, Upstream, aws_signing_dir};
use super::filter::{AGENT_SOCKET_AUTHORITY, BRIDGE_CLUSTER};

/// Mozilla "intermediate" (server side TLS 5.x) TLS 1.2 suites that BoringSSL has; the DHE
/// suites of the list are not in BoringSSL. TLS 1.3 suites are not configurable (all are good).
pub(crate) const INTERMEDIATE_CIPHERS: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];
/// Mozilla "intermediate" curves.
pub(crate) const INTERMEDIATE_CURVES: [&str; 3] = ["X25519", "P-256", "P-384"];
/// HSTS max-age by default: two years (Mozilla's recommendation).
pub(crate) const DEFAULT_HSTS_SECS: u64 = 63_072_000;
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How paths Envoy opens at run time (the `.wasm`, TLS files) are written.
#[derive(Debug, Clone)]
pub(crate) enum PathStyle {
    /// Absolute.
    Absolute,
    /// Relative to this directory, the one Envoy will run in.
    RelativeTo(PathBuf),
}

/// Removes `.` and resolves `..` without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(lexical(&std::path::absolute(path).with_context(|| {
        format!("{}: cannot make the path absolute", path.display())
    })?))
}

impl PathStyle {
    pub(crate) fn render(&self, path: &Path) -> Result<String> {
        let abs = absolute(path)?;
        let out = match self {
            PathStyle::Absolute => abs,
            PathStyle::RelativeTo(base) => {
                let base = absolute(base)?;
                let a: Vec<Component> = abs.components().collect();
                let b: Vec<Component> = base.components().collect();
                let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                let mut rel = PathBuf::new();
                for _ in common..b.len() {
                    rel.push("..");
                }
                for c in &a[common..] {
                    rel.push(c);
                }
                rel
            }
        };
        out.to_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: not UTF-8", out.display()))
    }
}

fn socket(address: &str, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

fn millis(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

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

fn upstream_cluster(
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

/// An upstream TLS transport socket: TLS 1.2+, the peer verified against `ca` and its SAN
/// matched to `host` (an IP SAN for an IP). `sni_for_ip`: send `host` as SNI even when it is an
/// IP address (RFC 6066 allows host names only; some upstreams want it anyway).
fn upstream_tls(host: &str, ca: &str, sni_for_ip: bool) -> Value {
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let san_type = if is_ip { "IP_ADDRESS" } else { "DNS" };
    let mut tls = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "validation_context": {
                "trusted_ca": {"filename": ca},
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": host}}
                ]
            }
        }
    });
    if !is_ip || sni_for_ip {
        tls["sni"] = json!(host);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": tls})
}

/// The agent's cluster: a unix socket (`pipe`), or TCP with TLS verified against the
/// definition's CA file.
fn agent_cluster(
    defs: &Definitions,
    d: &super::defs::DirectoryDef,
    style: &PathStyle,
) -> Result<Option<Value>> {
    let connect = d.connect_timeout_ms.unwrap_or(1000);
    Ok(match d.agent_address() {
        Some(AgentAddress::Unix(path)) => Some(json!({
            "name": BRIDGE_CLUSTER,
            "type": "STATIC",
            "connect_timeout": millis(connect),
            "lb_policy": "ROUND_ROBIN",
            "load_assignment": {
                "cluster_name": BRIDGE_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                    {"pipe": {"path": style.render(&defs.resolve(&path))?}}
                }}]}]
            }
        })),
        Some(AgentAddress::Tcp(host, port)) => {
            let mut c = cluster(BRIDGE_CLUSTER, &host, port, connect);
            if let Some(ca) = &d.ca_file {
                c["transport_socket"] =
                    upstream_tls(&host, &style.render(&defs.resolve(ca))?, false);
            }
            Some(c)
        }
        None => None,
    })
}

fn route(api: &ApiDef, up: &Upstream) -> Value {
    if api.aws_role.is_some() {
        // Every path under the API asks the agent for this API's credentials.
        return json!({
            "name": api.id,
            "match": {"prefix": api.listen_path},
            "route": {
                "cluster": BRIDGE_CLUSTER,
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

/// With ext_authz, a route also names its API to the agent (`x-autoid-api`, set by the
/// `header_mutation` filter's per-route config) and removes every contract header before the
/// request goes upstream.
fn ext_authz_route(mut route: Value, api: &ApiDef) -> Value {
    route["typed_per_filter_config"] = json!({
        HEADER_MUTATION: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute",
            "mutations": {"request_mutations": [set_header("x-autoid-api", &api.id)]}
        }
    });
    let mut remove = CONTRACT_HEADERS.to_vec();
    // The agent's answer header: a client's copy means nothing upstream either.
    remove.push(STATUS_HEADER);
    route["request_headers_to_remove"] = json!(remove);
    route
}

fn route_config(name: &str, defs: &Definitions, hsts: Option<u64>, authz: &Authz<'_>) -> Value {
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

fn hsts_header(age: u64) -> Value {
    json!({
        "header": {"key": "strict-transport-security", "value": format!("max-age={age}")},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    })
}

fn wasm_filter(wasm: &str, configuration: &str) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "autoid",
                "root_id": "autoid",
                "vm_config": {
                    "vm_id": "autoid",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm}}
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": configuration
                },
                // A VM that fails (a trap: it must never happen) is not left dead: Envoy creates
                // a new one for the next request after the backoff; until then, and for the
                // streams the failed VM held, requests are denied (fail closed).
                "failure_policy": "FAIL_RELOAD",
                "reload_config": {
                    "backoff": {"base_interval": "0.2s", "max_interval": "5s"}
                },
                // Without it Envoy turns the filter's headers-phase pause into "stop everything,
                // body included", and a body-bound proof waits forever for its body.
                "allow_on_headers_stop_iteration": true
            }
        }
    })
}

/// How the listeners authenticate requests: the wasm filter, or ext_authz to the agent.
#[derive(Debug)]
pub(crate) enum Authz<'a> {
    /// The autoid wasm filter with this configuration (JSON).
    Wasm { configuration: &'a str },
    /// `envoy.filters.http.ext_authz` (HTTP service) to the agent's `/v1/check`.
    ExtAuthz(ExtAuthz),
}

/// What the ext_authz filter needs to know of the filter configuration.
#[derive(Debug)]
pub(crate) struct ExtAuthz {
    /// The proof header's name.
    pub(crate) proof_header: String,
    /// Every header the filter manages (identity and credential headers of every API): the
    /// agent may set them upstream, and must see the client's copies to remove them.
    pub(crate) managed: Vec<String>,
}

/// The agent's check endpoint (Envoy appends the request's path).
pub(crate) const CHECK_PATH: &str = "/v1/check";
/// The longest Envoy waits for a check (the agent's own `check.timeout_ms` is 5 s by default).
const CHECK_TIMEOUT_MS: u64 = 6_000;
const HEADER_MUTATION: &str = "envoy.filters.http.header_mutation";

fn set_header(name: &str, value: &str) -> Value {
    json!({"append": {
        "header": {"key": name, "value": value},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    }})
}

fn exact_patterns<'a>(names: impl IntoIterator<Item = &'a str>) -> Value {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    json!({"patterns": names.iter().map(|n| json!({"exact": n, "ignore_case": true})).collect::<Vec<_>>()})
}

/// `header_mutation` (the contract headers, from what Envoy saw; the API's id per route) and
/// `ext_authz` to the agent, before the router.
fn ext_authz_filters(e: &ExtAuthz, tls: bool) -> Vec<Value> {
    // Client copies of the contract headers are overwritten here; a request no route matches
    // names the API `-`, which no definition has (the filter's unknown route: 403).
    let mutations = vec![
        set_header("x-autoid-api", "-"),
        set_header("x-autoid-method", "%REQ(:METHOD)%"),
        set_header("x-autoid-uri", "%REQ(:PATH)%"),
        set_header("x-autoid-authority", "%REQ(:AUTHORITY)%"),
        set_header("x-autoid-peer", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
        set_header("x-autoid-tls", if tls { "1" } else { "0" }),
    ];
    let mut to_agent: Vec<&str> = CONTRACT_HEADERS.to_vec();
    to_agent.extend([
        e.proof_header.as_str(),
        "authorization",
        "x-request-id",
        "content-type",
        "content-length",
    ]);
    to_agent.extend(e.managed.iter().map(String::as_str));
    let upstream = e.managed.iter().map(String::as_str);
    let client = [
        "www-authenticate",
        "retry-after",
        "content-type",
        "cache-control",
    ];
    vec![
        json!({
            "name": HEADER_MUTATION,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": mutations}
            }
        }),
        json!({
            "name": "envoy.filters.http.ext_authz",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                "transport_api_version": "V3",
                "failure_mode_allow": false,
                "status_on_error": {"code": "ServiceUnavailable"},
                "with_request_body": {
                    "max_request_bytes": autoid_protocol::policy::MAX_BODY_BYTES,
                    "allow_partial_message": false,
                    "pack_as_bytes": true
                },
                "http_service": {
                    "server_uri": {
                        "uri": format!("http://{AGENT_SOCKET_AUTHORITY}"),
                        "cluster": BRIDGE_CLUSTER,
                        "timeout": millis(CHECK_TIMEOUT_MS)
                    },
                    "path_prefix": CHECK_PATH,
                    "authorization_request": {"allowed_headers": exact_patterns(to_agent)},
                    "authorization_response": {
                        "allowed_upstream_headers": exact_patterns(upstream),
                        "allowed_client_headers": exact_patterns(client)
                    }
                }
            }
        }),
    ]
}

fn connection_manager(
    name: &str,
    defs: &Definitions,
    hsts: Option<u64>,
    tls: bool,
    authz: &Authz<'_>,
    wasm: &str,
) -> Value {
    let mut http_filters = match authz {
        Authz::Wasm { configuration } => vec![wasm_filter(wasm, configuration)],
        Authz::ExtAuthz(e) => ext_authz_filters(e, tls),
    };
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "codec_type": "AUTO",
        "server_name": "autoid",
        "use_remote_address": true,
        // The path is normalized before routing, so the proof binds and the route matches the
        // path the upstream gets: `.`/`..` resolved (RFC 3986), `//` merged, and an escaped
        // `/` or `\` (%2F, %5C) refused with 400: an upstream that decodes them would serve a
        // path outside the API's base. Header names with `_` are refused with 400: many
        // frameworks fold `_` into `-`, so `x_autoid_subject` would pass for a managed header.
        "normalize_path": true,
        "merge_slashes": true,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
        "route_config": route_config(name, defs, hsts, authz),
        "http_filters": http_filters
    });
    let mut mappers = Vec::new();
    if let Authz::ExtAuthz(_) = authz {
        // No answer from the agent (down, timed out): the filter's uniform 503, not an empty
        // one. (The first mapper that matches applies: it carries HSTS too.)
        let mut unavailable = json!({
            "filter": {"and_filter": {"filters": [
                {"status_code_filter": {"comparison": {
                    "op": "EQ",
                    "value": {"default_value": 503, "runtime_key": "autoid.ext_authz_unavailable_status"}
                }}},
                {"response_flag_filter": {"flags": ["UAEX"]}}
            ]}},
            "body_format_override": {"json_format": {
                "error": "unavailable",
                "request_id": "%REQ(X-REQUEST-ID)%"
            }}
        });
        if let Some(age) = hsts {
            unavailable["headers_to_add"] = json!([hsts_header(age)]);
        }
        mappers.push(unavailable);
    }
    if let Some(age) = hsts {
        // Local replies (the filter's 401/403/503, Envoy's own 404/503) carry HSTS too.
        mappers.push(json!({
            "filter": {"status_code_filter": {"comparison": {
                "op": "GE",
                "value": {"default_value": 100, "runtime_key": "autoid.hsts_local_reply_min_status"}
            }}},
            "headers_to_add": [hsts_header(age)]
        }));
    }
    if !mappers.is_empty() {
        hcm["local_reply_config"] = json!({ "mappers": mappers });
    }
    if defs.gateway.access_log.unwrap_or(true) {
        hcm["access_log"] = json!([{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {"text_format_source": {"inline_string":
                    "[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% route=%ROUTE_NAME% upstream=%UPSTREAM_HOST% %DURATION%ms request_id=%REQ(X-REQUEST-ID)%\n"
                }}
            }
        }]);
    }
    hcm
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths() {
        let style = PathStyle::RelativeTo("/a/b".into());
        assert_eq!(
            style.render(Path::new("/a/b/c/../d.wasm")).unwrap(),
            "d.wasm"
        );
        assert_eq!(style.render(Path::new("/a/x/y.pem")).unwrap(), "../x/y.pem");
        assert_eq!(millis(1500), "1.500s");
        assert_eq!(millis(2000), "2s");
    }
}
