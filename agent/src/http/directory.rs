//! `GET /v1/groups` and `POST /v1/authenticate`: the directory's answers.

use std::collections::HashMap;
use std::time::Instant;

use autoid_protocol::agent_api::{AuthenticateReply, GroupsReply};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use crate::directory::{Auth, Found, Lookup};

use super::reply::{
    authorized_body, bad_request, bounded, check_name, reply, unauthorized, unavailable,
};
use super::state::AppState;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

pub(super) async fn groups(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let Ok(Query(query)) = query else {
        return bad_request("malformed query string");
    };
    let Some(subject) = query.get("subject") else {
        return bad_request("missing subject parameter");
    };
    if let Some(r) = check_name("subject", subject) {
        return r;
    }
    match bounded(&state, state.directory.lookup(subject)).await {
        Ok(Lookup::Found(Found {
            entry_subject,
            groups,
        })) => reply(
            StatusCode::OK,
            GroupsReply {
                subject: subject.clone(),
                found: true,
                groups,
                entry_subject: Some(entry_subject),
            },
            "found",
            Some(subject),
        ),
        Ok(lookup) => reply(
            StatusCode::OK,
            GroupsReply {
                subject: subject.clone(),
                found: false,
                groups: Vec::new(),
                entry_subject: None,
            },
            if lookup == Lookup::Ambiguous {
                "ambiguous"
            } else {
                "not_found"
            },
            Some(subject),
        ),
        Err(e) => unavailable(&e, Some(subject)),
    }
}

/// The body of `POST /v1/authenticate`. `Debug` hides the password.
#[derive(Deserialize)]
pub(super) struct AuthRequest {
    username: String,
    password: String,
    /// The client's address as the gateway saw it, for the per-source throttle.
    #[serde(default)]
    source: Option<String>,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

pub(super) async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<AuthRequest>, JsonRejection>,
) -> Response {
    let body = match authorized_body(&state, &headers, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    if let Some(r) = check_name("username", &body.username) {
        return r;
    }
    if body.password.len() > MAX_PASSWORD_LEN {
        return bad_request(format!("password is longer than {MAX_PASSWORD_LEN} bytes"));
    }
    if let Some(source) = &body.source
        && (source.is_empty() || source.len() > 64 || !source.bytes().all(|b| b.is_ascii_graphic()))
    {
        return bad_request("source is not an address (1 to 64 printable ASCII characters)");
    }
    let subject = body.username.as_str();
    let source = body.source.as_deref();
    if let Err(held) = state.throttle.check(subject, source, Instant::now()) {
        let retry = held.retry_after_secs();
        info!(subject, source, retry_after_secs = retry, held = ?held, "authentication throttled");
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "throttled", "retry_after_secs": retry, "held": held.scope()}),
            "throttled",
            Some(subject),
        );
        if let Ok(v) = header::HeaderValue::from_str(&retry.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let result = bounded(
        &state,
        state.directory.authenticate(subject, &body.password),
    )
    .await;
    match &result {
        Ok(Auth::Accepted(_)) => state.throttle.succeeded(subject, source, Instant::now()),
        Ok(Auth::Rejected(_)) => state.throttle.failed(subject, source, Instant::now()),
        Err(_) => {}
    }
    match result {
        Ok(Auth::Accepted(Found {
            entry_subject,
            groups,
        })) => reply(
            StatusCode::OK,
            AuthenticateReply {
                subject: subject.to_owned(),
                authenticated: true,
                groups,
                entry_subject: Some(entry_subject),
            },
            "authenticated",
            Some(subject),
        ),
        Ok(Auth::Rejected(why)) => {
            info!(subject, reason = ?why, "authentication refused");
            reply(
                StatusCode::OK,
                AuthenticateReply {
                    subject: subject.to_owned(),
                    authenticated: false,
                    groups: Vec::new(),
                    entry_subject: None,
                },
                "not_authenticated",
                Some(subject),
            )
        }
        Err(e) => unavailable(&e, Some(subject)),
    }
}
