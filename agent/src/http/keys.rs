//! `POST /v1/sessions` (RSA unwraps, with the v3 possession check) and `POST /v1/streams`
//! (per-subject keys).

use autoid_protocol::agent_api::{SessionReply, SessionRequest, StreamRequest};
use autoid_protocol::header::session_id;
use autoid_protocol::policy::MAX_BINDING_LEN;
use autoid_protocol::ticket::Ticket;
use autoid_protocol::{Reject, Request as Bound, SUBJECT_RULE};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use tracing::warn;

use crate::sessions::{Lane, Refusal};
use crate::streams;

use super::reply::{authorized_body, bad_request, check_name, refused, reply};
use super::state::AppState;

/// The longest wrapped key accepted (RSA-4096), base64url.
pub(super) const MAX_WRAPPED_B64: usize = 683;

pub(super) async fn sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SessionRequest>, JsonRejection>,
) -> Response {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = match authorized_body(&state, &headers, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if body.wrapped.len() > MAX_WRAPPED_B64 {
        return bad_request("wrapped is too long");
    }
    let Ok(wrapped) = URL_SAFE_NO_PAD.decode(&body.wrapped) else {
        return bad_request("wrapped is not base64url");
    };
    let Some(sessions) = &state.sessions else {
        return refused(StatusCode::NOT_FOUND, "unknown_key");
    };
    // v3: possession before the RSA (docs/PROTOCOL.md §12).
    let lane = match possession(&state, &body, &wrapped) {
        Ok(lane) => lane,
        Err(Possession::Malformed(why)) => return bad_request(why),
        Err(Possession::Refused(reject)) => {
            sessions.refused_possession();
            return refused(StatusCode::UNPROCESSABLE_ENTITY, reject.code());
        }
    };
    match sessions.unwrap(&body.kid, wrapped, lane).await {
        Ok((plaintext, expires_at)) => reply(
            StatusCode::OK,
            SessionReply {
                session: URL_SAFE_NO_PAD.encode(plaintext),
                expires_at,
            },
            "unwrapped",
            None,
        ),
        Err(Refusal::UnknownKey) => refused(StatusCode::NOT_FOUND, "unknown_key"),
        Err(Refusal::Unwrap) => refused(StatusCode::UNPROCESSABLE_ENTITY, "unwrap"),
        Err(Refusal::Overloaded) => {
            warn!("session unwraps queued past the bound: shedding");
            refused(StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        }
    }
}

/// Why a session request did not pass its possession check.
pub(super) enum Possession {
    /// The ticket or the request bindings are missing or malformed (400).
    Malformed(&'static str),
    /// The ticket is wrong for this session and request, or names an epoch not held here (422).
    Refused(Reject),
}

/// The lane of a session request: checked when the filter checked its v3 ticket, or when this
/// agent does now (it holds the epoch); unchecked without a ticket (v1, v2).
pub(super) fn possession(
    state: &AppState,
    body: &SessionRequest,
    wrapped: &[u8],
) -> Result<Lane, Possession> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if body.ticket_checked {
        return Ok(Lane::Checked);
    }
    let Some(ticket) = &body.ticket else {
        return Ok(Lane::Unchecked);
    };
    let ticket = URL_SAFE_NO_PAD
        .decode(ticket)
        .ok()
        .and_then(|t| Ticket::from_bytes(&t).ok())
        .ok_or(Possession::Malformed("ticket is not a possession ticket"))?;
    let bound = body
        .request
        .as_ref()
        .ok_or(Possession::Malformed("a ticket needs its request"))?;
    if [&bound.method, &bound.authority, &bound.path]
        .iter()
        .any(|b| b.len() > MAX_BINDING_LEN)
    {
        return Err(Possession::Malformed("a request binding is too long"));
    }
    let request = Bound {
        method: &bound.method,
        authority: &bound.authority,
        path: &bound.path,
    };
    let streams = state
        .streams
        .as_ref()
        .ok_or(Possession::Refused(Reject::UnknownEpoch))?;
    streams
        .check_ticket(&ticket, request, &session_id(&body.kid, wrapped))
        .map_err(Possession::Refused)?;
    Ok(Lane::Checked)
}

/// `POST /v1/streams`: one subject's key in one epoch (HKDF, microseconds: no pool needed).
pub(super) async fn stream_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<StreamRequest>, JsonRejection>,
) -> Response {
    let body = match authorized_body(&state, &headers, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Some(r) = check_name("subject", &body.subject) {
        return r;
    }
    let subject = body.subject.as_str();
    let unknown = || {
        reply(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown_epoch"}),
            "unknown_epoch",
            Some(subject),
        )
    };
    let Some(streams) = &state.streams else {
        return unknown();
    };
    match streams.key(&body.epoch, subject) {
        Ok(key) => reply(StatusCode::OK, key, "stream_key", Some(subject)),
        Err(streams::Refusal::UnknownEpoch) => unknown(),
        Err(streams::Refusal::BadSubject) => bad_request(format!(
            "subject {subject:?} is not canonical: {SUBJECT_RULE}"
        )),
    }
}
