//! `GET /v1/credentials/{api}` and the AWS `credential_process` endpoint.

use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use tracing::warn;

use crate::credentials::{Credentials, Refusal as CredentialRefusal, RoleRefusal};

use super::reply::{refused, reply, unauthorized};
use super::state::AppState;

/// The credentials file's APIs for an authorized caller, or the answer: 401 without the token,
/// 404 `unknown_api` when no credentials file is configured.
pub(super) fn credentials_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<Credentials>, Box<Response>> {
    if !state.authorized(headers) {
        return Err(Box::new(unauthorized()));
    }
    state
        .credentials
        .clone()
        .ok_or_else(|| Box::new(refused(StatusCode::NOT_FOUND, "unknown_api")))
}

/// `GET /v1/credentials/{api}`: the API's agent-supplied headers. The values never reach a log
/// (the access log records the API id as the outcome's subject).
pub(super) async fn credentials(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(api): UrlPath<String>,
) -> Response {
    let credentials = match credentials_of(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match credentials.get(&api) {
        Ok(r) => reply(StatusCode::OK, r, "credentials", None),
        Err(CredentialRefusal::UnknownApi) => refused(StatusCode::NOT_FOUND, "unknown_api"),
        Err(CredentialRefusal::Unavailable) => {
            warn!(api = %api, "credentials unavailable: a source has no value within its stale window");
            refused(StatusCode::SERVICE_UNAVAILABLE, "credentials_unavailable")
        }
    }
}

/// Short-lived AWS credentials for the subject the gateway proved (`aws_roles`): the filter
/// verified the proof and the API's groups and set `x-autoid-subject` and `x-autoid-groups`
/// (client copies stripped) before forwarding here. The JSON is what `credential_process`
/// reads; it is never stored (`cache-control: no-store`) nor logged.
pub(super) async fn aws_credentials(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(api): UrlPath<String>,
) -> Response {
    let credentials = match credentials_of(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let subject = header_text("x-autoid-subject")
        .unwrap_or_default()
        .to_owned();
    let groups: Vec<String> = header_text("x-autoid-groups")
        .unwrap_or_default()
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let who = subject.clone();
    let api_name = api.clone();
    let minted = tokio::task::spawn_blocking(move || {
        credentials.roles().assume(&api_name, &subject, &groups)
    })
    .await;
    match minted {
        Ok(Ok(c)) => {
            let mut r = reply(StatusCode::OK, &c, "aws_credentials", Some(&who));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Ok(Err(RoleRefusal::UnknownApi)) => refused(StatusCode::NOT_FOUND, "unknown_api"),
        Ok(Err(RoleRefusal::NoSubject)) => {
            warn!(api = %api, "AWS credentials asked without a valid x-autoid-subject: is the API's subject header set?");
            refused(StatusCode::BAD_REQUEST, "no_subject")
        }
        Ok(Err(RoleRefusal::Sts(why))) => {
            warn!(api = %api, subject = %who, error = %why, "STS AssumeRole failed");
            refused(StatusCode::SERVICE_UNAVAILABLE, "aws_unavailable")
        }
        Err(_) => refused(StatusCode::SERVICE_UNAVAILABLE, "aws_unavailable"),
    }
}
