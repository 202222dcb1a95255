//! The handlers' shared state: the agent's parts, the bearer token's digest, the timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::check::Checker;
use crate::credentials::Credentials;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::replay::FleetReplay;
use crate::sessions::Sessions;
use crate::streams::Streams;
use crate::throttle::Throttle;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub(super) directory: Arc<Directory>,
    pub(super) sessions: Option<Arc<Sessions>>,
    pub(super) streams: Option<Arc<Streams>>,
    pub(super) credentials: Option<Arc<Credentials>>,
    pub(super) replay: Option<Arc<FleetReplay>>,
    pub(super) check: Option<Arc<Checker>>,
    pub(super) throttle: Arc<Throttle>,
    pub(super) metrics: Arc<Metrics>,
    /// `None`: no token configured (a unix socket); every caller that can connect is trusted.
    pub(super) token_digest: Option<[u8; 32]>,
    pub(super) request_timeout: Duration,
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
    pub(super) fn authorized(&self, headers: &HeaderMap) -> bool {
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
