//! `/v1/check`: the filter's decisions for ext_authz and auth_request, translated into the
//! check's answer.

use autoid_filter::reply::{Denial, Unavailable, response, sanitize_request_id};
use autoid_protocol::check::STATUS_HEADER;
use autoid_protocol::policy;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use crate::check::{self, Outcome as CheckOutcome};

use super::reply::Outcome;
use super::state::AppState;

/// The longest body a check carries (the gateway's `with_request_body` cap is the filter's).
pub(super) const CHECK_MAX_BODY: usize = policy::MAX_BODY_BYTES + 1;

/// `/v1/check[/…]`, any method: decides the request the gateway describes as the wasm filter
/// would (the contract: docs/GATEWAYS.md). Allowed: 200 with the headers to set upstream and
/// `x-envoy-auth-headers-to-remove`; denied: the filter's uniform reply. `x-autoid-status` on
/// every answer. A malformed description, no check configured or no answer: 503, fail closed.
pub(super) async fn check_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(checker) = state.check.clone() else {
        warn!("/v1/check: no `check` section in the configuration");
        return check_unavailable(&headers, "check_not_configured");
    };
    if state.token_digest.is_some() {
        // The client's own `authorization` (HTTP Basic) travels in the check: the agent's
        // bearer token cannot. The check is served on the unix socket only.
        warn!("/v1/check: the agent has a bearer token (TCP); the check needs the unix socket");
        return check_unavailable(&headers, "check_needs_socket");
    }
    // Envoy's ext_authz marks a body it cut at `max_request_bytes` (a request without
    // `content-length`; with one, Envoy answers 413 itself): the filter would have seen more than
    // it checks, so the answer is its 413.
    if headers
        .get("x-envoy-auth-partial-body")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        return check_denied(&headers, Denial::BodyTooLarge);
    }
    let described = match check::describe(&headers, body.to_vec()) {
        Ok(d) => d,
        Err(check::Malformed(name)) => {
            error!(
                header = name,
                "/v1/check: the gateway sent no valid {name} (misconfigured)"
            );
            return check_unavailable(&headers, "check_malformed");
        }
    };
    match checker.check(described).await {
        Some(CheckOutcome::Allowed { set, removed }) => {
            let mut r = StatusCode::OK.into_response();
            let h = r.headers_mut();
            for (name, value) in set {
                let (Ok(n), Ok(v)) = (
                    header::HeaderName::try_from(name.as_str()),
                    header::HeaderValue::try_from(value.as_str()),
                ) else {
                    error!(header = %name, "/v1/check: the filter set a header HTTP cannot carry");
                    return check_unavailable(&headers, "check_failed");
                };
                h.append(n, v);
            }
            if !removed.is_empty()
                && let Ok(v) = header::HeaderValue::try_from(removed.join(","))
            {
                h.insert("x-envoy-auth-headers-to-remove", v);
            }
            h.insert(STATUS_HEADER, header::HeaderValue::from_static("200"));
            r.extensions_mut().insert(Outcome {
                outcome: "allowed",
                subject: None,
            });
            r
        }
        Some(CheckOutcome::Reply {
            status,
            headers: reply_headers,
            body,
        }) => {
            let code = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut r = Response::new(axum::body::Body::from(body));
            *r.status_mut() = code;
            let h = r.headers_mut();
            for (name, value) in reply_headers {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::try_from(name.as_str()),
                    header::HeaderValue::try_from(value.as_str()),
                ) {
                    h.append(n, v);
                }
            }
            if let Ok(v) = header::HeaderValue::try_from(code.as_u16().to_string()) {
                h.insert(STATUS_HEADER, v);
            }
            r.extensions_mut().insert(Outcome {
                outcome: "denied",
                subject: None,
            });
            r
        }
        None => {
            error!("/v1/check: no check worker answered in time");
            check_unavailable(&headers, "check_timeout")
        }
    }
}

/// The filter's uniform 503 for a check the agent could not decide.
pub(super) fn check_unavailable(headers: &HeaderMap, outcome: &'static str) -> Response {
    let mut r = check_denied(headers, Denial::Unavailable(Unavailable::Host));
    r.extensions_mut().insert(Outcome {
        outcome,
        subject: None,
    });
    r
}

/// The filter's uniform reply for `denial`, decided by the agent before the filter ran.
pub(super) fn check_denied(headers: &HeaderMap, denial: Denial) -> Response {
    let request_id = headers
        .get("x-request-id")
        .map(|v| sanitize_request_id(v.as_bytes()))
        .unwrap_or_default();
    let uniform = response(denial, &request_id, autoid_protocol::header::DEFAULT_HEADER);
    let status = u16::try_from(uniform.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = Response::new(axum::body::Body::from(uniform.body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (name, value) in uniform.headers {
        if let Ok(v) = header::HeaderValue::try_from(value) {
            h.append(name, v);
        }
    }
    if let Ok(v) = header::HeaderValue::try_from(status.as_u16().to_string()) {
        h.insert(STATUS_HEADER, v);
    }
    r.extensions_mut().insert(Outcome {
        outcome: "denied",
        subject: None,
    });
    r
}
