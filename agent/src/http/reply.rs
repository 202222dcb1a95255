//! The agent's own answers: JSON bodies with the outcome for the request log, the shared
//! refusals and input checks.

use autoid_protocol::{SUBJECT_RULE, policy, valid_subject};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tracing::error;

use crate::error::Error;

use super::state::AppState;

/// Longest subject or username accepted, in bytes (the protocol's; the whole grammar is
/// [`autoid_protocol::valid_subject`]).
pub const MAX_SUBJECT_LEN: usize = policy::MAX_SUBJECT_LEN;

/// What a request came to, for the request log.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) outcome: &'static str,
    pub(super) subject: Option<String>,
}

pub(super) fn reply(
    status: StatusCode,
    body: impl Serialize,
    outcome: &'static str,
    subject: Option<&str>,
) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.extensions_mut().insert(Outcome {
        outcome,
        subject: subject.map(str::to_owned),
    });
    r
}

pub(super) fn unauthorized() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({"error": "unauthorized"}),
        "unauthorized",
        None,
    )
}

pub(super) fn bad_request(detail: impl Into<String>) -> Response {
    let detail = detail.into();
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": "bad_request", "detail": detail}),
        "bad_request",
        None,
    )
}

pub(super) fn unavailable(e: &Error, subject: Option<&str>) -> Response {
    error!(error = %e, subject, "directory unavailable");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "directory_unavailable"}),
        "directory_unavailable",
        subject,
    )
}

/// `Some(bad request)` when a subject or username is not canonical (docs/PROTOCOL.md, "Subjects"),
/// before any LDAP traffic: LDAP would match `ALICE` or ` alice` to alice's entry.
pub(super) fn check_name(what: &str, v: &str) -> Option<Response> {
    if v.is_empty() {
        return Some(bad_request(format!("{what} is empty")));
    }
    if v.len() > MAX_SUBJECT_LEN {
        return Some(bad_request(format!(
            "{what} is longer than {MAX_SUBJECT_LEN} bytes"
        )));
    }
    if !valid_subject(v) {
        // Debug formatting escapes control characters; the value is at most 64 bytes here.
        return Some(bad_request(format!(
            "{what} {v:?} is not canonical: {SUBJECT_RULE}"
        )));
    }
    None
}

/// Bounds a directory call by the request timeout, so a request never hangs.
pub(super) async fn bounded<T>(
    state: &AppState,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(state.request_timeout, f)
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "request timed out after {:?}",
                state.request_timeout
            ))
        })?
}

/// The JSON body of an authorized request, or the 401/400 to answer.
pub(super) fn authorized_body<T>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Box<Response>> {
    if !state.authorized(headers) {
        return Err(Box::new(unauthorized()));
    }
    match body {
        Ok(Json(b)) => Ok(b),
        // The rejection text describes the JSON shape, never the values.
        Err(e) => Err(Box::new(bad_request(format!("body: {}", e.body_text())))),
    }
}

/// An error body `{"error": code}` with that status, the code as the log's outcome.
pub(super) fn refused(status: StatusCode, code: &'static str) -> Response {
    reply(status, json!({ "error": code }), code, None)
}
