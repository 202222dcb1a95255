//! The HTTP API (the contract the filter codes against; see docs/AGENT.md): routes, the bearer
//! token check (constant time), input limits, and one log line per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoid_plugin::reply::{Denial, Unavailable, response, sanitize_request_id};
use autoid_protocol::check::STATUS_HEADER;
use autoid_protocol::directory::{
    AuthenticateReply, GroupsReply, MAX_REPLAY_BATCH, REPLAY_PATH, ReplayBatchReply,
    ReplayBatchRequest, ReplayRequest, ReplayVerdict, SessionReply, SessionRequest, StreamRequest,
};
use autoid_protocol::header::session_id;
use autoid_protocol::policy::MAX_BINDING_LEN;
use autoid_protocol::ticket::Ticket;
use autoid_protocol::{Reject, Request as Bound, SUBJECT_RULE, policy, valid_subject};
use axum::extract::Path as UrlPath;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{error, info, warn};

use crate::check::{self, Checker, Outcome as CheckOutcome};
use crate::credentials::{Credentials, Refusal as CredentialRefusal, RoleRefusal};
use crate::directory::{Auth, Directory, Found, Lookup};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::replay::{Claim, FleetReplay, Lifetime};
use crate::sessions::{Lane, Refusal, Sessions};
use crate::streams::{self, Streams};
use crate::throttle::Throttle;

/// Longest subject or username accepted, in bytes (the protocol's; the whole grammar is
/// [`autoid_protocol::valid_subject`]).
pub const MAX_SUBJECT_LEN: usize = policy::MAX_SUBJECT_LEN;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Request bodies larger than this are refused.
const MAX_BODY: usize = 16 * 1024;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    directory: Arc<Directory>,
    sessions: Option<Arc<Sessions>>,
    streams: Option<Arc<Streams>>,
    credentials: Option<Arc<Credentials>>,
    replay: Option<Arc<FleetReplay>>,
    check: Option<Arc<Checker>>,
    throttle: Arc<Throttle>,
    metrics: Arc<Metrics>,
    /// `None`: no token configured (a unix socket); every caller that can connect is trusted.
    token_digest: Option<[u8; 32]>,
    request_timeout: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("directory", &self.directory)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(bytes));
    out
}

impl AppState {
    /// `token`: the bearer token `/v1/*` requires; `None` only where the transport authenticates
    /// the caller (a unix socket's file permissions).
    pub fn new(directory: Arc<Directory>, token: Option<&str>) -> AppState {
        let request_timeout = directory.config().request_timeout;
        AppState {
            directory,
            sessions: None,
            streams: None,
            credentials: None,
            replay: None,
            check: None,
            throttle: Arc::new(Throttle::default()),
            metrics: Arc::new(Metrics::default()),
            token_digest: token.map(|t| digest(t.as_bytes())),
            request_timeout,
        }
    }

    /// Also unwraps sessions for these keys (`POST /v1/sessions`).
    pub fn with_sessions(mut self, sessions: Arc<Sessions>) -> AppState {
        self.sessions = Some(sessions);
        self
    }

    /// Also hands out per-subject keys of these epochs (`POST /v1/streams`).
    pub fn with_streams(mut self, streams: Arc<Streams>) -> AppState {
        self.streams = Some(streams);
        self
    }

    /// Also serves upstream credentials (`GET /v1/credentials/{api}`).
    pub fn with_credentials(mut self, credentials: Arc<Credentials>) -> AppState {
        self.credentials = Some(credentials);
        self
    }

    /// Also claims nonces for the fleet in Redis (`POST /v1/replay`).
    pub fn with_replay(mut self, replay: Arc<FleetReplay>) -> AppState {
        self.replay = Some(replay);
        self
    }

    /// Also answers `/v1/check` with these check workers.
    pub fn with_check(mut self, check: Arc<Checker>) -> AppState {
        self.check = Some(check);
        self
    }

    /// Compares the presented bearer token with ours in constant time (both are hashed first, so
    /// neither the content nor the length leaks through timing). Without a configured token
    /// (a unix socket), every request is authorized: the socket's permissions decided.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        bool::from(digest(token.trim().as_bytes()).ct_eq(expected))
    }
}

/// What a request came to, for the request log.
#[derive(Debug, Clone)]
struct Outcome {
    outcome: &'static str,
    subject: Option<String>,
}

fn reply(
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

fn unauthorized() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({"error": "unauthorized"}),
        "unauthorized",
        None,
    )
}

fn bad_request(detail: impl Into<String>) -> Response {
    let detail = detail.into();
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": "bad_request", "detail": detail}),
        "bad_request",
        None,
    )
}

fn unavailable(e: &Error, subject: Option<&str>) -> Response {
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
fn check_name(what: &str, v: &str) -> Option<Response> {
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
async fn bounded<T>(
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

async fn groups(
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
struct AuthRequest {
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

/// The JSON body of an authorized request, or the 401/400 to answer.
fn authorized_body<T>(
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

async fn authenticate(
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

/// The longest wrapped key accepted (RSA-4096), base64url.
const MAX_WRAPPED_B64: usize = 683;

async fn sessions(
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
enum Possession {
    /// The ticket or the request bindings are missing or malformed (400).
    Malformed(&'static str),
    /// The ticket is wrong for this session and request, or names an epoch not held here (422).
    Refused(Reject),
}

/// The lane of a session request: checked when the filter checked its v3 ticket, or when this
/// agent does now (it holds the epoch); unchecked without a ticket (v1, v2).
fn possession(state: &AppState, body: &SessionRequest, wrapped: &[u8]) -> Result<Lane, Possession> {
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
async fn stream_key(
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

/// The body of `POST /v1/replay`: a batch (what the filter sends), or one claim (a filter from
/// before batching, during a rolling upgrade).
#[derive(Deserialize)]
#[serde(untagged)]
enum ReplayBody {
    Batch(ReplayBatchRequest),
    One(ReplayRequest),
}

/// A claim's nonce: 16 bytes of base64url.
fn replay_nonce(nonce: &str) -> Option<[u8; 16]> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    (nonce.len() == 22)
        .then(|| URL_SAFE_NO_PAD.decode(nonce).ok())
        .flatten()
        .and_then(|n| n.try_into().ok())
}

/// `POST /v1/replay`: claims nonces across the fleet (docs/FLEET.md): one claim, or a batch in
/// one pipelined Redis round trip.
async fn replay(
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

/// An error body `{"error": code}` with that status, the code as the log's outcome.
fn refused(status: StatusCode, code: &'static str) -> Response {
    reply(status, json!({ "error": code }), code, None)
}

/// The credentials file's APIs for an authorized caller, or the answer: 401 without the token,
/// 404 `unknown_api` when no credentials file is configured.
fn credentials_of(
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
async fn credentials(
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
async fn aws_credentials(
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

/// The longest body a check carries (the gateway's `with_request_body` cap is the filter's).
const CHECK_MAX_BODY: usize = policy::MAX_BODY_BYTES + 1;

/// `/v1/check[/…]`, any method: decides the request the gateway describes as the wasm filter
/// would (the contract: docs/GATEWAYS.md). Allowed: 200 with the headers to set upstream and
/// `x-envoy-auth-headers-to-remove`; denied: the filter's uniform reply. `x-autoid-status` on
/// every answer. A malformed description, no check configured or no answer: 503, fail closed.
async fn check_request(
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
fn check_unavailable(headers: &HeaderMap, outcome: &'static str) -> Response {
    let mut r = check_denied(headers, Denial::Unavailable(Unavailable::Host));
    r.extensions_mut().insert(Outcome {
        outcome,
        subject: None,
    });
    r
}

/// The filter's uniform reply for `denial`, decided by the agent before the filter ran.
fn check_denied(headers: &HeaderMap, denial: Denial) -> Response {
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

/// The session unwrapper's counters (none without session keys).
fn sessions_metrics(state: &AppState) -> String {
    state
        .sessions
        .as_ref()
        .map(|s| s.render())
        .unwrap_or_default()
}

/// The agent's counters (Prometheus text); behind the token where one is configured.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

async fn healthz() -> Response {
    reply(StatusCode::OK, json!({"status": "ok"}), "ok", None)
}

async fn readyz(State(state): State<AppState>) -> Response {
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

async fn fallback() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found"}),
        "not_found",
        None,
    )
}

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
