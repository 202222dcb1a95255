//! The HTTP API (the contract the filter codes against; see docs/AGENT.md): routes, the bearer
//! token check (constant time), input limits, and one log line per request.

use std::time::Instant;

use autoid_protocol::agent_api::REPLAY_PATH;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use tracing::info;

mod check;
mod credentials;
mod directory;
mod keys;
mod ops;
mod replay;
mod reply;
mod state;

use check::{CHECK_MAX_BODY, check_request};
use credentials::{aws_credentials, credentials};
pub use directory::MAX_PASSWORD_LEN;
use directory::{authenticate, groups};
use keys::{sessions, stream_key};
use ops::{fallback, healthz, metrics, readyz};
use replay::replay;
pub use reply::MAX_SUBJECT_LEN;
use reply::Outcome;
pub use state::AppState;

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 16 * 1024;

/// One log line per request: method, path, status, outcome, subject, latency. Never the query
/// string's other parameters, the body, or the authorization header.
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (outcome, subject) = match response.extensions().get::<Outcome>() {
        Some(o) => (o.outcome, o.subject.clone()),
        None => ("rejected", None),
    };
    state.metrics.answered(route_of(&path), outcome);
    info!(
        target: "autoid_agent::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        outcome,
        subject = subject.as_deref(),
        latency_us,
        "request"
    );
    response
}

/// The routes, for the metrics' `route` label: a request path's template, or `other` (so no
/// API id, username or probe path becomes a label).
const ROUTES: [&str; 10] = [
    "/v1/check",
    "/v1/groups",
    "/v1/authenticate",
    "/v1/sessions",
    "/v1/streams",
    REPLAY_PATH,
    "/v1/credentials/{api}",
    "/healthz",
    "/readyz",
    "/metrics",
];

fn route_of(path: &str) -> &'static str {
    if path.starts_with("/v1/check/") {
        return "/v1/check";
    }
    if path.starts_with("/v1/credentials/") {
        return "/v1/credentials/{api}";
    }
    if path.starts_with("/v1/aws/credentials/") {
        return "/v1/aws/credentials/{api}";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// The router with every route, the body limit and the request log.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/groups", get(groups))
        .route("/v1/authenticate", post(authenticate))
        .route("/v1/sessions", post(sessions))
        .route("/v1/streams", post(stream_key))
        .route(REPLAY_PATH, post(replay))
        .route("/v1/credentials/{api}", get(credentials))
        .route("/v1/aws/credentials/{api}", get(aws_credentials))
        .route(
            "/v1/check",
            any(check_request).layer(DefaultBodyLimit::max(CHECK_MAX_BODY)),
        )
        .route(
            "/v1/check/{*rest}",
            any(check_request).layer(DefaultBodyLimit::max(CHECK_MAX_BODY)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state, access_log))
}
