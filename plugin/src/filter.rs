//! The HTTP context (one per request) and what every request of a worker shares ([`State`]). The
//! root context is in [`root`]; the callouts to the agent in [`agent`].

mod agent;
mod root;

pub use root::Root;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use autoid_protocol::config::{Agent, Api, Config, Directory, Groups, MAX_ENTROPY_CACHE_BYTES};
use autoid_protocol::directory::{
    SessionReply, SessionRequest, StreamReply, StreamRequest, credentials_path,
};
use autoid_protocol::entropy::{EpochParams, SubjectKey};
use autoid_protocol::header::Proof;
use autoid_protocol::header::Proof as ParsedProof;
use autoid_protocol::intervals::Interval;
use autoid_protocol::path::path_is_safe;
use autoid_protocol::policy::MAX_BODY_BYTES;
use autoid_protocol::verify::{
    KnownEpoch, SessionCache, SessionKey, Stop, Verified, check_body, verify_or_ask,
};
use autoid_protocol::{Reject, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::credentials::{CredentialCache, Lookup, parse_reply as parse_credentials};
use crate::decisions::{Decision, Decisions, Freshness, MAX_REPLY_BYTES, groups_path, parse_reply};
use crate::entropy_cache::EntropyCache;
use crate::metrics::{Counter, denied_name};
use crate::ratelimit::{SourceBudgets, TokenBucket, source_key};
use crate::replay::{Insert, ReplayTable};
use crate::reply::{Denial, Forbid, Unavailable, response, sanitize_request_id};
use crate::sessions::{Hit, Sessions};
use crate::store::{CREATE_ONLY_CAS, Store};
use crate::wasm_host::{self, Metrics, SharedData};

const SALT_KEY: &str = "autoid.replay-salt";
/// The root context's tick: the entropy cache's window.
const TICK: Duration = Duration::from_secs(1);

/// What every request of a worker shares.
struct State {
    config: Config,
    managed: Vec<String>,
    replay: ReplayTable,
    sessions: RefCell<Sessions>,
    decisions: Option<Decisions>,
    cold_path: RefCell<TokenBucket>,
    cold_sources: RefCell<SourceBudgets>,
    entropy: RefCell<EntropyCache>,
    credentials: CredentialCache,
    metrics: Metrics,
    /// Counts of the per-request counters not yet added to the host's (see [`State::count`]).
    pending: [Cell<u64>; Counter::ALL.len()],
}

impl State {
    /// Counts one event. The two counters every allowed request touches are added up in the
    /// worker and handed to the host on the tick (each `increment_metric` is a hostcall, about a
    /// microsecond in Envoy); the rest go to the host at once.
    fn count(&self, counter: Counter) {
        match counter {
            Counter::Allowed | Counter::SessionHitLocal => {
                let cell = &self.pending[counter as usize];
                cell.set(cell.get() + 1);
            }
            _ => self.metrics.inc(counter.name()),
        }
    }

    /// Hands the pending counts to the host.
    fn flush_counts(&self) {
        for counter in Counter::ALL {
            let n = self.pending[counter as usize].take();
            if n > 0 {
                self.metrics.add(counter.name(), n);
            }
        }
    }
}

/// A callout's status and body (an oversized body is never read: a stand-in one byte over the
/// limit fails to parse).
fn callout_reply(ctx: &dyn Context, body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = ctx
        .get_http_call_response_headers()
        .into_iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse::<u32>().ok());
    let body = if body_size > MAX_REPLY_BYTES {
        vec![0u8; MAX_REPLY_BYTES + 1]
    } else {
        ctx.get_http_call_response_body(0, body_size)
            .unwrap_or_default()
    };
    (status, body)
}

/// The session cache as `verify` sees it: local map, shared data, and the cold-path limit.
struct CacheAdapter<'a> {
    state: &'a State,
    now: u64,
    now_ms: u64,
}

impl CacheAdapter<'_> {
    /// Caches a session until its lifetime ends, or until `cap` (the agent retires its key)
    /// if that comes first.
    fn put_until(&mut self, proof: &Proof, session: &SessionKey, cap: Option<u64>) {
        let lifetime_end = session
            .issued_at()
            .saturating_add(self.state.config.limits.session_lifetime_secs);
        let expires = cap.map_or(lifetime_end, |cap| cap.min(lifetime_end));
        self.state.sessions.borrow_mut().put(
            &SharedData,
            proof.kid(),
            proof.wrapped(),
            session,
            expires,
        );
    }
}

impl SessionCache for CacheAdapter<'_> {
    fn get(&mut self, proof: &Proof) -> Option<SessionKey> {
        let found = self.state.sessions.borrow_mut().get(
            &SharedData,
            proof.kid(),
            proof.wrapped(),
            self.now,
        );
        match &found {
            Some((_, Hit::Local)) => self.state.count(Counter::SessionHitLocal),
            Some((_, Hit::Shared)) => self.state.count(Counter::SessionHitShared),
            None => self.state.count(Counter::SessionMiss),
        }
        found.map(|(key, _)| key)
    }

    fn put(&mut self, proof: &Proof, session: &SessionKey) {
        self.put_until(proof, session, None);
    }

    fn intervals(
        &mut self,
        epoch: KnownEpoch<'_>,
        subject: &str,
        offsets: &[u64],
    ) -> Option<Vec<Interval>> {
        self.state
            .entropy
            .borrow_mut()
            .intervals(epoch, subject, offsets, self.now)
    }

    fn agent_epoch(&mut self, epoch: &str, subject: &str) -> Option<EpochParams> {
        self.state
            .entropy
            .borrow()
            .agent_params(epoch, subject, self.now)
    }

    fn allow_unwrap(&mut self) -> bool {
        let allowed = self.cold_budget();
        if allowed {
            self.state.count(Counter::RsaUnwraps);
        }
        allowed
    }

    /// A subject-key callout spends the same budget as an unwrap: anyone can open a session
    /// (the public key is public) and name many subjects.
    fn allow_stream(&mut self) -> bool {
        self.cold_budget()
    }
}

impl CacheAdapter<'_> {
    /// One cold-path token: the source's share first (a source past it never touches the
    /// worker's budget), then the worker's.
    fn cold_budget(&self) -> bool {
        let source = source_key(wasm_host::source_address().as_deref());
        self.state
            .cold_sources
            .borrow_mut()
            .try_take(source, self.now_ms)
            && self.state.cold_path.borrow_mut().try_take(self.now_ms)
    }
}

/// Where a paused request stands. A verified proof travels with it: its nonce is claimed only
/// when the request is allowed.
#[derive(Default)]
enum Pending {
    #[default]
    Nothing,
    /// Waiting for the whole body (its last data, or the trailers) to check a body-bound proof.
    Body { api: String, verified: Verified },
    /// Waiting for the directory bridge.
    Directory {
        api: String,
        verified: Verified,
        stale: Option<Decision>,
    },
    /// Waiting for the agent to unwrap the proof's session: the proof and the request it binds,
    /// verified again once the session is cached.
    Session { asked: Asked },
    /// Waiting for the agent to hand over the subject's key in an epoch it holds: verified again
    /// once the stream is cached.
    Stream {
        asked: Asked,
        epoch: String,
        subject: String,
    },
    /// Allowed, waiting for the agent's upstream credentials (none cached).
    Credentials {
        verified: Verified,
        groups: Vec<String>,
    },
}

/// What a request asked the agent about, kept to verify the proof again on the answer.
struct Asked {
    proof: String,
    method: String,
    authority: String,
    path: String,
}

impl Asked {
    fn new(proof: &str, request: &Request<'_>) -> Self {
        Asked {
            proof: proof.to_owned(),
            method: request.method.to_owned(),
            authority: request.authority.to_owned(),
            path: request.path.to_owned(),
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
        }
    }
}

/// One request.
#[derive(Default)]
pub struct Http {
    state: Option<Rc<State>>,
    request_id: String,
    route: String,
    /// Headers the filter manages that the client sent: removed before the request goes on.
    strip: Vec<String>,
    pending: Pending,
    /// The request body bytes the host has buffered for this filter so far.
    body_seen: usize,
    /// Whether the request has ended (headers, body and trailers all seen).
    request_done: bool,
    /// When the proof was last verified (Unix seconds): the replay claim's clock, so the allowed
    /// path reads the host's clock once.
    verified_at: Cell<u64>,
}

impl Http {
    /// Sends the uniform denial, logs why, counts it.
    fn deny(&self, denial: Denial, subject: Option<&str>) {
        let proof_header = self
            .state
            .as_ref()
            .map_or("x-autoid-proof", |s| s.config.proof_header.as_str());
        let r = response(denial, &self.request_id, proof_header);
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.send_http_response(r.status, headers, Some(&r.body));
        wasm_host::info(&format!(
            "autoid: deny status={} reason={} route={:?} subject={:?} request_id={}",
            r.status,
            denial.reason(),
            self.route,
            subject.unwrap_or("-"),
            self.request_id
        ));
        if let Some(state) = &self.state {
            state.count(Counter::Denied);
            state.metrics.inc(&denied_name(denial));
        }
    }

    /// Verifies the proof. Its nonce is not claimed here: only a request that will be allowed
    /// claims one ([`Http::claim`]), so a subject without rights cannot fill the replay table.
    fn verify(&self, state: &State, header: &str, request: &Request<'_>) -> Result<Verified, Stop> {
        let now_ms = wasm_host::now_ms();
        let now = now_ms / 1000;
        self.verified_at.set(now);
        let mut cache = CacheAdapter { state, now, now_ms };
        let verified = verify_or_ask(
            &state.config.keyring,
            &state.config.limits,
            header,
            request,
            now,
            &mut cache,
        )?;
        state
            .entropy
            .borrow_mut()
            .verified(&verified.epoch, &verified.subject);
        Ok(verified)
    }

    /// Claims the proof's nonce in the replay table shared by every worker (atomic: of two
    /// requests carrying the same proof, one claims it).
    fn claim(&self, state: &State, verified: &Verified) -> Result<(), Denial> {
        // A decision that waited for a callout claims at the verification's second: at most a
        // timeout old, it can only keep an entry that just expired (never drop a live one).
        let now = self.verified_at.get();
        let expires = verified
            .timestamp
            .saturating_add(state.config.limits.max_skew_secs + 1);
        match state
            .replay
            .insert(&SharedData, &verified.nonce, expires, now)
        {
            Insert::Fresh { fill } => {
                if u64::from(fill) * 4 >= u64::from(state.replay.slots()) * 3 {
                    state.count(Counter::ReplayNearFull);
                }
                Ok(())
            }
            Insert::Replay => {
                state.count(Counter::ReplaysRejected);
                Err(Denial::Unauthorized(Reject::Replay))
            }
            Insert::Full | Insert::Unavailable => {
                Err(Denial::Unavailable(Unavailable::ReplayCache))
            }
        }
    }

    /// Decides with known groups: `Continue` after claiming the nonce and injecting (the request
    /// goes upstream), or `Pause` after a denial.
    fn decide(
        &mut self,
        state: &State,
        api: &Api,
        verified: &Verified,
        groups: Option<&[String]>,
    ) -> Action {
        let subject = verified.subject.as_str();
        let Some(groups) = groups else {
            self.deny(Denial::Forbidden(Forbid::UnknownSubject), Some(subject));
            return Action::Pause;
        };
        if !api.require.allows(groups) {
            self.deny(Denial::Forbidden(Forbid::NotInGroups), Some(subject));
            return Action::Pause;
        }
        if api.agent_headers.is_empty() {
            return self.admit(state, api, verified, groups, &[]);
        }
        let now = wasm_host::now_ms() / 1000;
        match state.credentials.lookup(&SharedData, &self.route, now) {
            Lookup::Fresh(values) => {
                state.count(Counter::CredentialsCacheHits);
                self.admit(state, api, verified, groups, &values)
            }
            Lookup::Stale(values) => {
                state.count(Counter::CredentialsStaleServed);
                self.admit(state, api, verified, groups, &values)
            }
            Lookup::Missing => self.ask_credentials(state, verified, groups),
        }
    }

    /// Lets an authorized request go upstream: claims its nonce, strips the proof and client
    /// copies of managed headers, injects the API's values (`agent_values`: from the agent).
    fn admit(
        &self,
        state: &State,
        api: &Api,
        verified: &Verified,
        groups: &[String],
        agent_values: &[(String, String)],
    ) -> Action {
        let subject = verified.subject.as_str();
        if let Err(denial) = self.claim(state, verified) {
            self.deny(denial, Some(subject));
            return Action::Pause;
        }
        // The proof and any client copy of a header the filter manages never go upstream.
        self.set_http_request_header(&state.config.proof_header, None);
        for name in &self.strip {
            self.set_http_request_header(name, None);
        }
        for (name, value) in api.inject.iter().chain(agent_values) {
            self.set_http_request_header(name, Some(value));
        }
        if let Some(name) = &api.subject_header {
            self.set_http_request_header(name, Some(subject));
        }
        if let Some(name) = &api.groups_header {
            self.set_http_request_header(name, Some(&groups.join(",")));
        }
        state.count(Counter::Allowed);
        Action::Continue
    }

    /// Decides with the directory's answer: an entry found under another spelling of the
    /// subject is refused (subjects are compared byte for byte), else as [`Http::decide`].
    fn decide_directory(
        &mut self,
        state: &State,
        api: &Api,
        verified: &Verified,
        decision: &Decision,
    ) -> Action {
        if let Some(entry) = decision.mismatch() {
            wasm_host::info(&format!(
                "autoid: the directory entry for subject {:?} is {entry:?}: not the same subject request_id={}",
                verified.subject, self.request_id
            ));
            self.deny(
                Denial::Forbidden(Forbid::SubjectMismatch),
                Some(&verified.subject),
            );
            return Action::Pause;
        }
        self.decide(state, api, verified, decision.groups())
    }

    /// Authorizes a verified subject: `Continue` when decided and allowed, `Pause` otherwise
    /// (denied with a local reply, or waiting for the bridge).
    fn authorize(&mut self, state: &State, api_name: &str, verified: Verified) -> Action {
        let subject = verified.subject.as_str();
        let Some(api) = state.config.apis.get(api_name) else {
            self.deny(Denial::Forbidden(Forbid::UnknownRoute), Some(subject));
            return Action::Pause;
        };
        let directory: &Directory = match &state.config.groups {
            Groups::Static(map) => {
                let groups = map.get(subject).map(Vec::as_slice);
                return self.decide(state, api, &verified, groups);
            }
            Groups::Directory(d) => d,
        };
        let now = wasm_host::now_ms() / 1000;
        let cached = state
            .decisions
            .as_ref()
            .and_then(|t| t.get(&SharedData, subject));
        let mut stale = None;
        if let Some(decision) = cached {
            match decision.freshness(now, directory) {
                Freshness::Fresh => {
                    state.count(Counter::DirectoryCacheHits);
                    return self.decide_directory(state, api, &verified, &decision);
                }
                Freshness::Stale => stale = Some(decision),
                Freshness::Expired => {}
            }
        }
        let path = groups_path(subject);
        let auth = directory.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", directory.authority.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let timeout = Duration::from_millis(directory.timeout_ms);
        match self.dispatch_http_call(&directory.cluster, headers, None, vec![], timeout) {
            Ok(_) => {
                state.count(Counter::DirectoryCallouts);
                self.pending = Pending::Directory {
                    api: api_name.to_owned(),
                    verified,
                    stale,
                };
                Action::Pause
            }
            Err(_) => {
                wasm_host::warn(&format!(
                    "autoid: directory callout could not be dispatched to cluster {:?} request_id={}",
                    directory.cluster, self.request_id
                ));
                self.fallback(state, api, &verified, stale, Unavailable::Dispatch)
            }
        }
    }

    /// The bridge failed: a stale decision within its window answers, else 503.
    fn fallback(
        &mut self,
        state: &State,
        api: &Api,
        verified: &Verified,
        stale: Option<Decision>,
        why: Unavailable,
    ) -> Action {
        state.count(Counter::DirectoryFailures);
        match stale {
            Some(decision) => {
                state.count(Counter::DirectoryStaleServed);
                self.decide_directory(state, api, verified, &decision)
            }
            None => {
                self.deny(Denial::Unavailable(why), Some(&verified.subject));
                Action::Pause
            }
        }
    }

    fn headers_phase(&mut self, end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers();
        let request_id = headers
            .iter()
            .find(|(k, _)| k == "x-request-id")
            .map(|(_, v)| sanitize_request_id(v))
            .filter(|id| !id.is_empty());
        self.request_id = request_id.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            wasm_host::random(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        });
        let Some(state) = self.state.clone() else {
            self.deny(Denial::Unavailable(Unavailable::NotConfigured), None);
            return Action::Pause;
        };
        // Client copies of the headers the filter sets, and the proof, never go upstream: a
        // denied request gets a local reply, an allowed one loses them in `decide`.
        self.strip = state
            .managed
            .iter()
            .filter(|name| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)))
            .cloned()
            .collect();
        self.route = wasm_host::route_name().unwrap_or_default();
        let Some(api) = state.config.apis.get(&self.route) else {
            self.deny(Denial::Forbidden(Forbid::UnknownRoute), None);
            return Action::Pause;
        };
        if !api.enabled {
            self.deny(Denial::Forbidden(Forbid::Disabled), None);
            return Action::Pause;
        }
        let proof_header = state.config.proof_header.as_str();
        let mut proofs = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(proof_header));
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => Err(Reject::Missing),
            (Some(_), Some(_)) => Err(Reject::Duplicate),
            (Some((_, v)), None) => Ok(v.as_str()),
        };
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if !path_is_safe(pseudo(":path").unwrap_or_default()) {
            self.deny(Denial::UnsafePath, None);
            return Action::Pause;
        }
        self.request_done = end_of_stream;
        let proof = match proof {
            Ok(p) => p,
            Err(r) => {
                self.deny(Denial::Unauthorized(r), None);
                return Action::Pause;
            }
        };
        let request = Request {
            method: pseudo(":method").unwrap_or_default(),
            authority: pseudo(":authority").unwrap_or_default(),
            path: pseudo(":path").unwrap_or_default(),
        };
        let verified = self.verify(&state, proof, &request);
        self.verified(&state, verified, proof, &request)
    }

    /// Goes on from a verification: denies, asks the agent for the session, waits for the body
    /// a proof binds, or authorizes.
    fn verified(
        &mut self,
        state: &State,
        verified: Result<Verified, Stop>,
        proof: &str,
        request: &Request<'_>,
    ) -> Action {
        let verified = match verified {
            Ok(v) => v,
            Err(Stop::Rejected(r)) => {
                self.deny(Denial::Unauthorized(r), None);
                return Action::Pause;
            }
            Err(Stop::AskAgent) => return self.ask_agent(state, proof, request),
            Err(Stop::AskStream { epoch, subject }) => {
                return self.ask_stream(state, proof, request, epoch, subject);
            }
        };
        let route = self.route.clone();
        if verified.body_digest.is_some() {
            // The body, then maybe trailers, follow: the request stays paused until the whole
            // body is here (rendered with `allow_on_headers_stop_iteration`, so Envoy delivers
            // it; docs/GATEWAY.md). It may be whole already, after a wait for the agent.
            self.pending = Pending::Body {
                api: route,
                verified,
            };
            return if self.request_done {
                self.body_complete()
            } else {
                Action::Pause
            };
        }
        self.authorize(state, &route, verified)
    }

    /// The whole body is buffered (its last data arrived, or the trailers did): checks it
    /// against the proof's digest, then authorizes.
    fn body_complete(&mut self) -> Action {
        let Pending::Body { api, verified } = std::mem::take(&mut self.pending) else {
            return Action::Pause;
        };
        let Some(state) = self.state.clone() else {
            return Action::Pause;
        };
        if self.body_seen > MAX_BODY_BYTES {
            self.deny(Denial::BodyTooLarge, Some(&verified.subject));
            return Action::Pause;
        }
        let body = if self.body_seen == 0 {
            Vec::new()
        } else {
            self.get_http_request_body(0, self.body_seen)
                .unwrap_or_default()
        };
        if let Some(expected) = verified.body_digest
            && let Err(r) = check_body(&expected, &body)
        {
            self.deny(Denial::Unauthorized(r), Some(&verified.subject));
            return Action::Pause;
        }
        self.authorize(&state, &api, verified)
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(state) = self.state.clone() else {
            return;
        };
        let status = self
            .get_http_call_response_headers()
            .into_iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u32>().ok());
        // An oversized reply is never read: a stand-in one byte over the limit fails to parse.
        let body = if body_size > MAX_REPLY_BYTES {
            Some(vec![0u8; MAX_REPLY_BYTES + 1])
        } else {
            self.get_http_call_response_body(0, body_size)
        };
        let (api, verified, stale) = match std::mem::take(&mut self.pending) {
            Pending::Directory {
                api,
                verified,
                stale,
            } => (api, verified, stale),
            Pending::Session { asked } => {
                if let Action::Continue =
                    self.session_answer(&state, &asked, status, &body.unwrap_or_default())
                {
                    self.resume_http_request();
                }
                return;
            }
            Pending::Stream {
                asked,
                epoch,
                subject,
            } => {
                if let Action::Continue = self.stream_answer(
                    &state,
                    &asked,
                    (&epoch, &subject),
                    status,
                    &body.unwrap_or_default(),
                ) {
                    self.resume_http_request();
                }
                return;
            }
            Pending::Credentials { verified, groups } => {
                if let Action::Continue = self.credentials_answer(
                    &state,
                    &verified,
                    &groups,
                    status,
                    &body.unwrap_or_default(),
                ) {
                    self.resume_http_request();
                }
                return;
            }
            other => {
                self.pending = other;
                return;
            }
        };
        let subject = verified.subject.as_str();
        let Some(api_def) = state.config.apis.get(&api) else {
            self.deny(Denial::Forbidden(Forbid::UnknownRoute), Some(subject));
            return;
        };
        let now = wasm_host::now_ms() / 1000;
        match parse_reply(status, body.as_deref(), subject, now) {
            Ok(decision) => {
                if let Some(table) = &state.decisions {
                    table.put(&SharedData, subject, &decision);
                }
                if decision.dropped_groups > 0 {
                    wasm_host::warn(&format!(
                        "autoid: the directory gave {} invalid group name(s) for subject {subject:?}: dropped request_id={}",
                        decision.dropped_groups, self.request_id
                    ));
                }
                if let Action::Continue =
                    self.decide_directory(&state, api_def, &verified, &decision)
                {
                    self.resume_http_request();
                }
            }
            Err(e) => {
                wasm_host::warn(&format!(
                    "autoid: directory bridge failed: {} subject={subject:?} request_id={}",
                    e.code(),
                    self.request_id
                ));
                if let Action::Continue =
                    self.fallback(&state, api_def, &verified, stale, Unavailable::Directory)
                {
                    self.resume_http_request();
                }
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.headers_phase(end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Envoy hands over everything buffered so far (this filter returned
        // StopIterationAndBuffer for the earlier data).
        self.body_seen = body_size;
        self.request_done = end_of_stream;
        match &self.pending {
            Pending::Body { .. } => {}
            // Continuing here would let Envoy resume the paused headers before the directory or
            // the agent answers: the request would go upstream unauthorized. Buffer until then.
            Pending::Directory { .. }
            | Pending::Session { .. }
            | Pending::Stream { .. }
            | Pending::Credentials { .. } => {
                return Action::Pause;
            }
            Pending::Nothing => return Action::Continue,
        }
        if body_size > MAX_BODY_BYTES {
            let Pending::Body { verified, .. } = std::mem::take(&mut self.pending) else {
                return Action::Pause;
            };
            self.deny(Denial::BodyTooLarge, Some(&verified.subject));
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.body_complete()
    }

    /// Trailers end the request: a body awaited for its proof is complete now. The SDK's
    /// default (`Continue`) would resume a request paused for the body or the directory, past
    /// every check: never return it while something is pending.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.request_done = true;
        match &self.pending {
            Pending::Body { .. } => self.body_complete(),
            Pending::Directory { .. }
            | Pending::Session { .. }
            | Pending::Stream { .. }
            | Pending::Credentials { .. } => Action::Pause,
            Pending::Nothing => Action::Continue,
        }
    }
}
