//! TLS: Mozilla "intermediate" parameters for the listeners (shared with nginx), HSTS, and the
//! upstream TLS transport socket (peer verified, SAN matched).

use serde_json::{Value, json};

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

/// An upstream TLS transport socket: TLS 1.2+, the peer verified against `ca` and its SAN
/// matched to `host` (an IP SAN for an IP). `sni_for_ip`: send `host` as SNI even when it is an
/// IP address (RFC 6066 allows host names only; some upstreams want it anyway).
pub(super) fn upstream_tls(host: &str, ca: &str, sni_for_ip: bool) -> Value {
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

/// The HSTS response header, `max-age` in seconds.
pub(super) fn hsts_header(age: u64) -> Value {
    json!({
        "header": {"key": "strict-transport-security", "value": format!("max-age={age}")},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    })
}
