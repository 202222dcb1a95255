//! Callouts to real servers (the agent, over TCP or its unix socket) with the test kit's hyper
//! client, within the callout's timeout.

use std::time::Duration;

use autoid_testkit::http::{Target, send};

use crate::callout::{CalloutReply, CalloutRequest};

/// The timeout used when the filter asks for none (0 ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the callout to `target` and reads the whole response, or says why not (a header hyper
/// refuses to send fails the callout, as Envoy's would).
pub(crate) fn call(target: Target, request: &CalloutRequest) -> Result<CalloutReply, String> {
    let timeout = if request.timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        request.timeout
    };
    let pseudo = |name: &str| request.header(name).unwrap_or_default();
    let headers: Vec<(&str, &str)> = std::iter::once(("host", pseudo(":authority")))
        .chain(
            request
                .headers
                .iter()
                .filter(|(name, _)| {
                    !name.starts_with(':')
                        && !matches!(name.as_str(), "host" | "content-length" | "connection")
                })
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .collect();
    let response = send(
        &target,
        pseudo(":method"),
        pseudo(":path"),
        &headers,
        request.body.clone(),
        timeout,
    )
    .map_err(|e| e.to_string())?;
    Ok(CalloutReply {
        status: response.status,
        headers: response
            .headers
            .into_iter()
            .filter(|(k, _)| k != "transfer-encoding" && k != "connection")
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect(),
        body: response.body,
    })
}
