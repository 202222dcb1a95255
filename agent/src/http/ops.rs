//! Metrics, health, readiness and the fallback.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::warn;

use super::reply::{Outcome, bounded, reply, unauthorized};
use super::state::AppState;

/// The session unwrapper's counters (none without session keys).
pub(super) fn sessions_metrics(state: &AppState) -> String {
    state
        .sessions
        .as_ref()
        .map(|s| s.render())
        .unwrap_or_default()
}

/// The agent's counters (Prometheus text); behind the token where one is configured.
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        match &state.check {
            Some(check) => {
                state.metrics.render() + &sessions_metrics(&state) + &check.counters().render()
            }
            None => state.metrics.render() + &sessions_metrics(&state),
        },
    )
        .into_response();
    r.extensions_mut().insert(Outcome {
        outcome: "metrics",
        subject: None,
    });
    r
}

pub(super) async fn healthz() -> Response {
    reply(StatusCode::OK, json!({"status": "ok"}), "ok", None)
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    match bounded(&state, state.directory.check_ready()).await {
        Ok(()) => reply(StatusCode::OK, json!({"status": "ready"}), "ready", None),
        Err(e) => {
            warn!(error = %e, "not ready");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not_ready", "error": "directory_unavailable"}),
                "not_ready",
                None,
            )
        }
    }
}

pub(super) async fn fallback() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found"}),
        "not_found",
        None,
    )
}
