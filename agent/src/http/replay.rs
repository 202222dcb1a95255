//! `POST /v1/replay`: fleet nonce claims in Redis.

use autoid_protocol::agent_api::{
    MAX_REPLAY_BATCH, ReplayBatchReply, ReplayBatchRequest, ReplayRequest, ReplayVerdict,
};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::replay::{Claim, Lifetime};

use super::reply::{authorized_body, bad_request, refused, reply};
use super::state::AppState;

/// The body of `POST /v1/replay`: a batch (what the filter sends), or one claim (a filter from
/// before batching, during a rolling upgrade).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ReplayBody {
    Batch(ReplayBatchRequest),
    One(ReplayRequest),
}

/// A claim's nonce: 16 bytes of base64url.
pub(super) fn replay_nonce(nonce: &str) -> Option<[u8; 16]> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    (nonce.len() == 22)
        .then(|| URL_SAFE_NO_PAD.decode(nonce).ok())
        .flatten()
        .and_then(|n| n.try_into().ok())
}

/// `POST /v1/replay`: claims nonces across the fleet (docs/FLEET.md): one claim, or a batch in
/// one pipelined Redis round trip.
pub(super) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Response {
    let body = match authorized_body(&state, &headers, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    // Milliseconds: a claim is judged against its proof's expiry, and kept, to the millisecond.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let batch = match body {
        ReplayBody::One(one) => {
            let Some(nonce) = replay_nonce(&one.nonce) else {
                return bad_request("nonce is not 16 bytes of base64url");
            };
            let Some(store) = &state.replay else {
                return refused(StatusCode::NOT_FOUND, "no_fleet");
            };
            let lifetime = Lifetime::new(one.expires_at, one.keep_until);
            return match store.claim(&nonce, lifetime, now_ms).await {
                Claim::Fresh => reply(StatusCode::OK, json!({ "claimed": true }), "claimed", None),
                Claim::Replay => refused(StatusCode::CONFLICT, "replay"),
                Claim::Stale if one.keep_until.is_some() => refused(StatusCode::CONFLICT, "stale"),
                // A filter from before `stale` knows one refusal: `replay`.
                Claim::Stale => refused(StatusCode::CONFLICT, "replay"),
                Claim::Unavailable => {
                    refused(StatusCode::SERVICE_UNAVAILABLE, "replay_unavailable")
                }
            };
        }
        ReplayBody::Batch(batch) => batch,
    };
    if batch.claims.is_empty() || batch.claims.len() > MAX_REPLAY_BATCH {
        return bad_request(format!(
            "a batch holds 1 to {MAX_REPLAY_BATCH} claims, not {}",
            batch.claims.len()
        ));
    }
    let mut claims = Vec::with_capacity(batch.claims.len());
    for claim in &batch.claims {
        let Some(nonce) = replay_nonce(&claim.nonce) else {
            return bad_request("nonce is not 16 bytes of base64url");
        };
        claims.push((nonce, Lifetime::new(claim.expires_at, claim.keep_until)));
    }
    let Some(store) = &state.replay else {
        return refused(StatusCode::NOT_FOUND, "no_fleet");
    };
    let Some(verdicts) = store.claim_batch(&claims, now_ms).await else {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "replay_unavailable");
    };
    let verdicts = verdicts
        .into_iter()
        .zip(&batch.claims)
        .map(|(c, asked)| match c {
            Claim::Fresh => ReplayVerdict::Claimed,
            Claim::Stale if asked.keep_until.is_some() => ReplayVerdict::Stale,
            // A filter from before `stale` knows one refusal: `replay`. And `claim_batch`
            // answers all or nothing: no claim is unavailable alone.
            Claim::Stale | Claim::Replay | Claim::Unavailable => ReplayVerdict::Replay,
        })
        .collect();
    reply(
        StatusCode::OK,
        ReplayBatchReply { verdicts },
        "claimed_batch",
        None,
    )
}
