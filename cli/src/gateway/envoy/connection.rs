//! The HTTP connection manager of a listener: its filters, path and header-name normalization,
//! local replies (uniform 503 when the agent does not answer, HSTS) and the access log.

use serde_json::{Value, json};

use super::authz::{Authz, ext_authz_filters, wasm_filter};
use super::routes::route_config;
use super::tls::hsts_header;
use crate::gateway::defs::Definitions;

/// The connection manager named `name`; `wasm` is the filter's path (wasm only).
pub(super) fn connection_manager(
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
