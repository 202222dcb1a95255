//! HTTP callouts: `proxy_http_call`, and how a cluster answers one (scripted, a real HTTP server, or a timeout).

use std::time::Duration;

use autoid_testkit::http::Target;
use wasmtime::{Caller, Linker};

use crate::abi::Status;
use crate::callout::{CalloutReply, CalloutRequest};
use crate::headers::decode_pairs;
use crate::memory::{self, HostResult, status};
use crate::state::{CalloutRecord, Cluster, HeaderMap, HostState, PendingCallout};
use crate::sync::lock;

pub(crate) fn lossy(map: HeaderMap) -> Vec<(String, String)> {
    map.into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// Answers a callout: the reply, or why it failed.
pub(crate) fn answer(cluster: &Cluster, request: &CalloutRequest) -> Result<CalloutReply, String> {
    match cluster {
        Cluster::Scripted(handler) => Ok(handler(request)),
        Cluster::Http(address) => crate::http_client::call(Target::Tcp(*address), request),
        Cluster::Unix(path) => crate::http_client::call(Target::Unix(path.clone()), request),
        Cluster::Timeout => Err(format!(
            "timed out after {} ms (cluster {} is set to time out)",
            request.timeout.as_millis(),
            request.cluster
        )),
        Cluster::Routed(route) => answer(&route(request), request),
    }
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    caller: &mut Caller<'_, HostState>,
    cluster: (u32, u32),
    headers: (u32, u32),
    body: (u32, u32),
    trailers: (u32, u32),
    timeout_ms: u32,
    token_ptr: u32,
) -> HostResult {
    let name = memory::read_string(caller, cluster.0, cluster.1)?;
    let headers =
        decode_pairs(&memory::read(caller, headers.0, headers.1)?).ok_or(Status::ParseFailure)?;
    let body = memory::read(caller, body.0, body.1)?;
    decode_pairs(&memory::read(caller, trailers.0, trailers.1)?).ok_or(Status::ParseFailure)?;
    let state = caller.data_mut();
    // Envoy: an unknown cluster, or a request without these pseudo-headers, is a bad argument.
    let cluster = lock(&state.shared.clusters)
        .get(&name)
        .cloned()
        .ok_or(Status::BadArgument)?;
    for required in [":method", ":path", ":authority"] {
        if !headers.iter().any(|(k, _)| k == required.as_bytes()) {
            return Err(Status::BadArgument.into());
        }
    }
    let request = CalloutRequest {
        cluster: name,
        headers: lossy(headers),
        body,
        timeout: Duration::from_millis(u64::from(timeout_ms)),
    };
    let record = {
        let mut records = lock(&state.shared.callouts);
        records.push(CalloutRecord {
            worker: state.worker,
            cluster: request.cluster.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            timeout_ms,
            result: None,
        });
        records.len() - 1
    };
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    state.pending_callouts.push_back(PendingCallout {
        token,
        record,
        cluster,
        request,
    });
    memory::write_u32(caller, token_ptr, token)
}

/// Registers `proxy_http_call`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut caller: Caller<'_, HostState>,
         cluster_ptr: u32,
         cluster_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         body_ptr: u32,
         body_len: u32,
         trailers_ptr: u32,
         trailers_len: u32,
         timeout_ms: u32,
         token_ptr: u32| {
            status(http_call(
                &mut caller,
                (cluster_ptr, cluster_len),
                (headers_ptr, headers_len),
                (body_ptr, body_len),
                (trailers_ptr, trailers_len),
                timeout_ms,
                token_ptr,
            ))
        },
    )?;
    Ok(())
}
