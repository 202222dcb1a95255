//! One request's way through the filter, as plain Rust over an [`HttpHost`]: which API, the
//! proof (verified with the worker's caches in [`cache`], sessions and subjects' keys asked of
//! the agent in [`sessions`]), the subject's groups (static, or the agent's in [`directory`]),
//! the upstream credentials (inline, or the agent's in [`credentials`]), what to strip and
//! inject, and allow, deny or wait. A host's callbacks (the proxy-wasm contexts, the agent's
//! check) only forward here.
//!
//! The steps, in order; each goes on to the next, waits (a [`Pending`] state, `Verdict::Pause`,
//! resumed by [`Flow::on_callout`] or the body) or denies (`Flow::deny`, the uniform reply):
//!
//! | step | functions | file | side effects |
//! |---|---|---|---|
//! | route | `headers_phase` → `route` | flow.rs, [`route`] | none |
//! | authenticate: proof | `verify` → `verified` (→ `body_complete` for a body-bound proof); waits: `ask_agent`/`ask_stream` → `session_answer`/`stream_answer` | flow.rs, [`cache`], [`sessions`] | session lookups and unwraps counted in `verify`; the cold-path budget spent in [`cache`] when verification asks for an unwrap |
//! | authenticate: password | `basic` → `password_answer` (both decide) | [`basic`] | remembered binds |
//! | authorize | `authorize` → `decide` (static groups) or `ask_directory` → `directory_answer` | flow.rs, [`directory`] | the decision cache |
//! | credentials | `with_credentials` → `ask_credentials` → `credentials_answer` | [`credentials`] | the credential cache |
//! | claim | `admit` → `claim`; fleet scope: `claim_fleet` → `fleet_decided` | [`admit`], [`fleet`] | the replay table; fleet claims |
//! | forward | `forward` | [`admit`] | allowed counted |
//!
//! What a paused request keeps between callbacks (and who it authenticated as) is [`pending`]'s.

mod admit;
mod basic;
mod cache;
mod credentials;
mod directory;
mod fleet;
mod pending;
mod route;
mod sessions;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use autoid_protocol::config::{Api, Groups};
use autoid_protocol::policy::MAX_BODY_BYTES;
use autoid_protocol::verify::{Stop, Verified, check_body, verify_or_ask};
use autoid_protocol::{Reject, Request};

use crate::callout;
use crate::headers;
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::{Counter, denied_name};
use crate::reply::{
    Challenges, Denial, Forbid, Password, Unavailable, challenged, sanitize_request_id,
};
use crate::state::State;
use cache::{CacheAdapter, Held, Tally};
pub use fleet::{FleetClaims, Waiter};
use pending::{Asked, Caller, Pending};
use route::pseudo;

/// What every request of a worker shares: the worker's [`State`], and its fleet claims in fleet
/// scope. The worker hands it to each new [`Flow`].
#[derive(Debug, Clone)]
pub struct Shared {
    pub(crate) state: Rc<State>,
    pub(crate) fleet: Option<Rc<FleetClaims>>,
}

impl Shared {
    /// What a worker configured with `state` (and `fleet` in fleet scope) shares.
    pub(crate) fn new(state: State, fleet: Option<FleetClaims>) -> Self {
        Shared {
            state: Rc::new(state),
            fleet: fleet.map(Rc::new),
        }
    }
}

/// One request.
#[derive(Default)]
pub struct Flow {
    state: Option<Rc<State>>,
    /// The worker's fleet claims (fleet scope).
    fleet: Option<Rc<FleetClaims>>,
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
    /// Whether this request's session lookup was counted: a request verified again with the
    /// agent's answer (a session, a stream) looked its session up once, as far as the
    /// counters say.
    lookup_counted: Cell<bool>,
    /// A session unwrapped for this request (here or by the agent) that no proof has verified
    /// under yet: cached only once this request's proof verifies.
    held: RefCell<Option<Held>>,
    /// How the worker finds this request when its fleet claim is answered ([`Flow::attach`]).
    waiter: Option<Waiter>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("request_id", &self.request_id)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The proxy's callbacks, one per event of the request.
impl Flow {
    /// A request for what a worker shares (`None`: the filter is not configured).
    pub fn new(shared: Option<Shared>) -> Self {
        let (state, fleet) = match shared {
            Some(Shared { state, fleet }) => (Some(state), fleet),
            None => (None, None),
        };
        Flow {
            state,
            fleet,
            ..Flow::default()
        }
    }

    /// The request headers arrived.
    pub fn on_request_headers<H: HttpHost>(&mut self, host: &H, end_of_stream: bool) -> Verdict {
        self.headers_phase(host, end_of_stream)
    }

    /// Body data arrived: `body_size` is everything buffered so far (the filter paused the
    /// earlier data, so the host buffered it).
    pub fn on_request_body<H: HttpHost>(
        &mut self,
        host: &H,
        body_size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        self.body_seen = body_size;
        self.request_done = end_of_stream;
        match &self.pending {
            Pending::Body { .. } => {}
            // Continuing here would let the proxy resume the paused headers before the directory
            // or the agent answers: the request would go upstream unauthorized. Buffer until then.
            Pending::Directory { .. }
            | Pending::Session { .. }
            | Pending::Stream { .. }
            | Pending::Password { .. }
            | Pending::Credentials { .. }
            | Pending::Fleet { .. } => {
                return Verdict::Pause;
            }
            Pending::Nothing => return Verdict::Continue,
        }
        if body_size > MAX_BODY_BYTES {
            let Pending::Body { verified, .. } = std::mem::take(&mut self.pending) else {
                return Verdict::Pause;
            };
            self.deny(host, Denial::BodyTooLarge, Some(&verified.subject));
            return Verdict::Pause;
        }
        if !end_of_stream {
            return Verdict::Pause;
        }
        self.body_complete(host)
    }

    /// Trailers end the request: a body awaited for its proof is complete now. `Continue` would
    /// resume a request paused for the body or a callout, past every check: never returned
    /// while something is pending.
    pub fn on_request_trailers<H: HttpHost>(&mut self, host: &H) -> Verdict {
        self.request_done = true;
        match &self.pending {
            Pending::Body { .. } => self.body_complete(host),
            Pending::Directory { .. }
            | Pending::Session { .. }
            | Pending::Stream { .. }
            | Pending::Password { .. }
            | Pending::Credentials { .. }
            | Pending::Fleet { .. } => Verdict::Pause,
            Pending::Nothing => Verdict::Continue,
        }
    }

    /// A callout of this request answered (its reply is the host's current one): `Continue`
    /// when the request is now allowed and must be resumed; `Pause` when it was denied, waits
    /// again, or was not waiting. (Fleet claims are answered in the root context: `fleet`.)
    pub fn on_callout<H: HttpHost>(&mut self, host: &H, body_size: usize) -> Verdict {
        let Some(state) = self.state.clone() else {
            return Verdict::Pause;
        };
        let (status, body) = callout::reply(host, body_size);
        match std::mem::take(&mut self.pending) {
            Pending::Directory {
                api,
                verified,
                stale,
            } => self.directory_answer(
                host,
                &state,
                (&api, &verified, stale),
                (status, body.as_deref()),
            ),
            Pending::Session { asked } => {
                self.session_answer(host, &state, &asked, status, &body.unwrap_or_default())
            }
            Pending::Stream {
                asked,
                epoch,
                subject,
            } => self.stream_answer(
                host,
                &state,
                &asked,
                (&epoch, &subject),
                status,
                &body.unwrap_or_default(),
            ),
            Pending::Password { username, key } => self.password_answer(
                host,
                &state,
                (&username, key),
                status,
                &body.unwrap_or_default(),
            ),
            Pending::Credentials { caller, groups } => self.credentials_answer(
                host,
                &state,
                caller.caller(),
                &groups,
                status,
                &body.unwrap_or_default(),
            ),
            other => {
                self.pending = other;
                Verdict::Pause
            }
        }
    }
}

impl Flow {
    /// Sends the uniform denial, logs why, counts it.
    fn deny<H: HttpHost>(&self, host: &H, denial: Denial, subject: Option<&str>) {
        let r = challenged(denial, &self.request_id, self.challenges(host));
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        host.send_reply(r.status, headers, &r.body);
        host.log(
            Level::Info,
            &format!(
                "autoid: deny status={} reason={} route={:?} subject={:?} request_id={}",
                r.status,
                denial.reason(),
                self.route,
                subject.unwrap_or("-"),
                self.request_id
            ),
        );
        if let Some(state) = &self.state {
            state.count(host, Counter::Denied);
            state.count_name(host, &denied_name(denial));
        }
    }

    /// The 401 challenges of the request's API: a proof's if it accepts proofs, Basic's if it
    /// accepts passwords on this connection (a proof's for a request with no API).
    fn challenges<'s, H: HttpHost>(&'s self, host: &H) -> Challenges<'s> {
        let Some(state) = self.state.as_deref() else {
            return Challenges {
                proof_header: None,
                basic_realm: None,
            };
        };
        let proof_header = Some(state.config.proof_header.as_str());
        match state.config.apis.get(&self.route) {
            Some(api) => Challenges {
                proof_header: proof_header.filter(|_| api.proof),
                basic_realm: api
                    .basic
                    .as_ref()
                    .filter(|b| self.transport_allows(host, b))
                    .map(|b| b.realm.as_str()),
            },
            None => Challenges {
                proof_header,
                basic_realm: None,
            },
        }
    }

    /// Verifies the proof. Its nonce is not claimed here: only a request that will be allowed
    /// claims one ([`Flow::claim`]), so a subject without rights cannot fill the replay table.
    fn verify<H: HttpHost>(
        &self,
        host: &H,
        state: &State,
        header: &str,
        request: &Request<'_>,
    ) -> Result<Verified, Stop> {
        let now_ms = host.now_ms();
        let now = now_ms / 1000;
        self.verified_at.set(now);
        let mut cache = CacheAdapter {
            host,
            state,
            now,
            now_ms,
            held: &self.held,
            tally: Tally::default(),
        };
        let verified = verify_or_ask(
            &state.config.keyring,
            &state.config.limits,
            header,
            request,
            now,
            &mut cache,
        );
        // Counted here, the step that looked the session up and spent the unwraps.
        cache
            .tally
            .count(host, state, !self.lookup_counted.replace(true));
        let verified = verified?;
        state
            .entropy
            .borrow_mut()
            .verified(&verified.epoch, &verified.subject);
        Ok(verified)
    }

    /// Decides with known groups: `Continue` after claiming the nonce and injecting (the request
    /// goes upstream), or `Pause` after a denial.
    fn decide<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        caller: Caller<'_>,
        groups: Option<&[String]>,
    ) -> Verdict {
        let subject = caller.subject();
        let Some(groups) = groups else {
            self.deny(
                host,
                Denial::Forbidden(Forbid::UnknownSubject),
                Some(subject),
            );
            return Verdict::Pause;
        };
        if !api.require.allows(groups) {
            self.deny(host, Denial::Forbidden(Forbid::NotInGroups), Some(subject));
            return Verdict::Pause;
        }
        self.with_credentials(host, state, api, caller, groups)
    }

    /// Authorizes a verified subject: `Continue` when decided and allowed, `Pause` otherwise
    /// (denied with a local reply, or waiting for the agent).
    fn authorize<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api_name: &str,
        verified: Verified,
    ) -> Verdict {
        let subject = verified.subject.as_str();
        let Some(api) = self.route_api(host, state, api_name, subject) else {
            return Verdict::Pause;
        };
        match &state.config.groups {
            Groups::Static(map) => {
                let groups = map.get(subject).map(Vec::as_slice);
                self.decide(host, state, api, Caller::Proof(&verified), groups)
            }
            Groups::Directory(directory) => {
                self.ask_directory(host, state, api_name, api, directory, verified)
            }
        }
    }

    fn headers_phase<H: HttpHost>(&mut self, host: &H, end_of_stream: bool) -> Verdict {
        // Names are matched as bytes; only the values the filter reads are turned into text,
        // each against its grammar where it is read: any other header is carried, never decoded.
        let headers = host.request_headers();
        let request_id = headers
            .iter()
            .find(|(k, _)| k == b"x-request-id")
            .map(|(_, v)| sanitize_request_id(v))
            .filter(|id| !id.is_empty());
        self.request_id = request_id.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            host.random(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        });
        let Some(state) = self.state.clone() else {
            self.deny(host, Denial::Unavailable(Unavailable::NotConfigured), None);
            return Verdict::Pause;
        };
        let (api, path) = match self.route(host, &state, &headers) {
            Ok(routed) => routed,
            Err(denial) => {
                self.deny(host, denial, None);
                return Verdict::Pause;
            }
        };
        let proof_header = state.config.proof_header.as_str();
        let mut proofs = headers::values(&headers, proof_header);
        // The proof's grammar is ASCII: a value that is not even UTF-8 is malformed.
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => Err(Reject::Missing),
            (Some(_), Some(_)) => Err(Reject::Duplicate),
            (Some(v), None) => std::str::from_utf8(v).map_err(|_| Reject::Malformed),
        };
        self.request_done = end_of_stream;
        if let Some(basic) = &api.basic {
            // An API that takes passwords never passes the client's `Authorization` upstream.
            let mut auths = headers::values(&headers, "authorization");
            let (first, second) = (auths.next(), auths.next());
            if first.is_some() {
                self.strip.push("authorization".to_owned());
            }
            // A proof wins where the API takes one and the request carries one.
            if !(api.proof && proof != Err(Reject::Missing)) {
                // An `Authorization` that is not UTF-8 counts as a malformed Basic one.
                let first = first.map(std::str::from_utf8);
                let basic_sent = first.is_some_and(|v| v.is_ok_and(basic::is_basic) || v.is_err());
                if !self.transport_allows(host, basic) && (basic_sent || !api.proof) {
                    self.deny(host, Denial::Forbidden(Forbid::PlainHttp), None);
                    return Verdict::Pause;
                }
                return match (first, second) {
                    (Some(Ok(value)), None) if basic_sent => {
                        self.basic(host, &state, api, basic, value)
                    }
                    (Some(_), _) if basic_sent => {
                        self.deny(host, Denial::Password(Password::Malformed), None);
                        Verdict::Pause
                    }
                    _ => {
                        self.deny(host, Denial::Unauthorized(Reject::Missing), None);
                        Verdict::Pause
                    }
                };
            }
        }
        let proof = match proof {
            Ok(p) => p,
            Err(r) => {
                self.deny(host, Denial::Unauthorized(r), None);
                return Verdict::Pause;
            }
        };
        // The proof binds the method and authority as text: bytes that are not UTF-8 cannot be
        // what any proof binds, and the answer is the uniform 401.
        let (Ok(method), Ok(authority)) = (
            pseudo(&headers, ":method").map_or(Ok(""), std::str::from_utf8),
            pseudo(&headers, ":authority").map_or(Ok(""), std::str::from_utf8),
        ) else {
            self.deny(host, Denial::Unauthorized(Reject::Malformed), None);
            return Verdict::Pause;
        };
        let request = Request {
            method,
            authority,
            path,
        };
        let verified = self.verify(host, &state, proof, &request);
        self.verified(host, &state, verified, proof, &request)
    }

    /// Goes on from a verification: denies, asks the agent for the session, waits for the body
    /// a proof binds, or authorizes.
    fn verified<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        verified: Result<Verified, Stop>,
        proof: &str,
        request: &Request<'_>,
    ) -> Verdict {
        let verified = match verified {
            Ok(v) => v,
            Err(Stop::Rejected(r)) => {
                self.deny(host, Denial::Unauthorized(r), None);
                return Verdict::Pause;
            }
            Err(Stop::AskAgent { ticket_checked }) => {
                return self.ask_agent(host, state, proof, request, ticket_checked);
            }
            Err(Stop::AskStream { epoch, subject }) => {
                return self.ask_stream(host, state, proof, request, epoch, subject);
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
                self.body_complete(host)
            } else {
                Verdict::Pause
            };
        }
        self.authorize(host, state, &route, verified)
    }

    /// The whole body is buffered (its last data arrived, or the trailers did): checks it
    /// against the proof's digest, then authorizes.
    fn body_complete<H: HttpHost>(&mut self, host: &H) -> Verdict {
        let Pending::Body { api, verified } = std::mem::take(&mut self.pending) else {
            return Verdict::Pause;
        };
        let Some(state) = self.state.clone() else {
            return Verdict::Pause;
        };
        if self.body_seen > MAX_BODY_BYTES {
            self.deny(host, Denial::BodyTooLarge, Some(&verified.subject));
            return Verdict::Pause;
        }
        let body = if self.body_seen == 0 {
            Vec::new()
        } else {
            host.request_body(self.body_seen).unwrap_or_default()
        };
        if let Some(expected) = verified.body_digest
            && let Err(r) = check_body(&expected, &body)
        {
            self.deny(host, Denial::Unauthorized(r), Some(&verified.subject));
            return Verdict::Pause;
        }
        self.authorize(host, &state, &api, verified)
    }
}
