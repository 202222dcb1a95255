//! How the listeners authenticate requests: the autoid wasm filter, or `ext_authz` to the agent's
//! `/v1/check` with `header_mutation` setting the contract headers.

use autoid_protocol::check::{CONTRACT_HEADERS, STATUS_HEADER};
use serde_json::{Value, json};

use super::values::millis;
use crate::gateway::defs::ApiDef;
use crate::gateway::filter::{AGENT_CLUSTER, AGENT_SOCKET_AUTHORITY};

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
const CHECK_PATH: &str = "/v1/check";
/// The longest Envoy waits for a check (the agent's own `check.timeout_ms` is 5 s by default).
const CHECK_TIMEOUT_MS: u64 = 6_000;
const HEADER_MUTATION: &str = "envoy.filters.http.header_mutation";

/// A `header_mutation` that sets a header, replacing any copy.
fn set_header(name: &str, value: &str) -> Value {
    json!({"append": {
        "header": {"key": name, "value": value},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    }})
}

/// Header names matched exactly (any case), sorted and without duplicates.
fn exact_patterns<'a>(names: impl IntoIterator<Item = &'a str>) -> Value {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    json!({"patterns": names.iter().map(|n| json!({"exact": n, "ignore_case": true})).collect::<Vec<_>>()})
}

/// `header_mutation` (the contract headers, from what Envoy saw; the API's id per route) and
/// `ext_authz` to the agent, before the router.
pub(super) fn ext_authz_filters(e: &ExtAuthz, tls: bool) -> Vec<Value> {
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
                        "cluster": AGENT_CLUSTER,
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

/// With ext_authz, a route also names its API to the agent (`x-autoid-api`, set by the
/// `header_mutation` filter's per-route config) and removes every contract header before the
/// request goes upstream.
pub(super) fn ext_authz_route(mut route: Value, api: &ApiDef) -> Value {
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

/// The autoid wasm filter (V8) with this configuration.
pub(super) fn wasm_filter(wasm: &str, configuration: &str) -> Value {
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
