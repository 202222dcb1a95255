//! The gateway↔agent check contract (docs/GATEWAYS.md): the headers Envoy's `ext_authz` and
//! nginx's `auth_request` set on the agent's `/v1/check`, and the status header of its answer.

/// The headers a gateway sets for the agent's check: never the client's (a gateway clears a
/// client's copies), never seen by the filter.
pub const CONTRACT_HEADERS: [&str; 6] = [
    "x-autoid-api",
    "x-autoid-method",
    "x-autoid-uri",
    "x-autoid-authority",
    "x-autoid-peer",
    "x-autoid-tls",
];

/// The header of the check's answer that carries the status the client gets.
pub const STATUS_HEADER: &str = "x-autoid-status";
