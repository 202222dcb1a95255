//! `autoid gateway render --target nginx`: the same API definitions as an nginx configuration
//! whose every API `location` asks the agent's `/v1/check` with `auth_request`
//! (docs/GATEWAYS.md: the check contract, "nginx auth_request"): TLS with Mozilla's
//! "intermediate" profile and HSTS, the agent's answer copied upstream, the client's copies of
//! managed headers and the proof cleared, and the agent's real status and uniform JSON body
//! restored on a denial (auth_request itself only passes 401 and 403).

use std::path::{Path, PathBuf};

use anyhow::Result;
use autoid_protocol::check::{CONTRACT_HEADERS, STATUS_HEADER};
use autoid_protocol::config::Config;

use crate::gateway::defs::{AgentAddress, Definitions};
use crate::gateway::envoy::DEFAULT_HSTS_SECS;

mod blocks;
mod location;
mod served;
#[cfg(test)]
mod tests;
mod text;

use blocks::{Checked, Listening, http_head, server};
use served::served;
use text::{absolute, field, nginx_header};

/// The agent's check endpoint (the contract's route).
const CHECK_PATH: &str = "/v1/check";
/// The internal location prefix of the per-API check subrequests.
const CHECK_LOCATION: &str = "/_autoid/check/";
/// The internal location of nginx's own 400s, with the uniform body.
const BAD_REQUEST_LOCATION: &str = "/_autoid/bad_request";
/// The headers the check subrequest carries to the agent (the contract's), and the agent's
/// status header: cleared on the upstream request.
fn cleared_contract_headers() -> impl Iterator<Item = &'static str> {
    CONTRACT_HEADERS.into_iter().chain([STATUS_HEADER])
}
/// The nginx upstream of the agent.
const AGENT_UPSTREAM: &str = "autoid_agent";
/// The longest chain of agent answers one check may wait on (session, subject key, directory,
/// credentials): nginx's read timeout on the check is this many times `directory.timeout_ms`.
const CHECK_CALLOUTS: u64 = 4;
const DEFAULT_AGENT_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_AGENT_CONNECT_MS: u64 = 1_000;
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Mozilla "intermediate" curves, as OpenSSL names them.
const INTERMEDIATE_CURVES: &str = "X25519:prime256v1:secp384r1";

/// The statuses the agent may deny with besides 401 and 403, as auth_request turns them into
/// 500: the uniform body's `error` for each (filter/src/reply.rs).
const RESTORED: [(u16, &str); 4] = [
    (400, "bad_request"),
    (413, "payload_too_large"),
    (429, "too_many_requests"),
    (503, "unavailable"),
];

/// A rendered configuration and what the operator should know about it.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) text: String,
    pub(crate) warnings: Vec<String>,
}

/// The whole configuration (`nginx -p <prefix> -c <file>`: logs, pid and temporary files go
/// under the prefix).
pub(crate) fn render(defs: &Definitions, config: &Config) -> Result<Rendered> {
    let gateway_file = defs.dir.join("gateway.json");
    let g = &defs.gateway;
    let mut warnings = Vec::new();
    let Some(directory) = &g.directory else {
        return Err(field(
            &gateway_file,
            "directory",
            "required for nginx: every request is checked by the agent (`\"address\": \
             \"unix:<socket>\"`)",
        ));
    };
    let socket = match directory.agent_address() {
        Some(AgentAddress::Unix(path)) => absolute(&defs.resolve(&path))?,
        _ => {
            return Err(field(
                &gateway_file,
                "directory.address",
                format!(
                    "nginx reaches the agent's check on its unix socket only (unix:<path>) \
                     (value: {:?})",
                    directory.address
                ),
            ));
        }
    };
    nginx_header(&gateway_file, "plugin.proof_header", &config.proof_header)?;

    let served = served(defs, config, &mut warnings)?;
    // Every header the filter sets on any API: a client's copy never goes upstream.
    let managed = config.all_managed_headers();

    let timeout = directory.timeout_ms.unwrap_or(DEFAULT_AGENT_TIMEOUT_MS);
    let connect = directory
        .connect_timeout_ms
        .unwrap_or(DEFAULT_AGENT_CONNECT_MS);
    let mut out = String::new();
    http_head(&mut out, defs, &socket, &served)?;

    let listeners = [
        g.listeners.https.as_ref().map(|h| {
            (
                h.address.as_str(),
                h.port,
                Some((h, h.hsts_max_age_secs.unwrap_or(DEFAULT_HSTS_SECS))),
            )
        }),
        g.listeners
            .http
            .as_ref()
            .map(|h| (h.address.as_str(), h.port, None)),
    ];
    for (address, port, tls) in listeners.into_iter().flatten() {
        server(
            &mut out,
            &Listening {
                gateway_file: &gateway_file,
                address,
                port,
                tls,
            },
            &Checked {
                defs,
                config,
                served: &served,
                managed: &managed,
                timeout,
                connect,
            },
        )?;
    }
    out.push_str("}\n");
    Ok(Rendered {
        text: out,
        warnings,
    })
}

/// nginx: `explicit`, else Debian's `/usr/sbin/nginx`, else `nginx` on PATH.
pub(crate) fn binary(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    })
}
