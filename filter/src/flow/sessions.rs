//! Sessions and subjects' keys the worker does not hold, asked of the autoid agent: a session to
//! unwrap (the key is the agent's), a subject's key in an epoch the agent holds. The proof is
//! verified again with each answer; a session is cached only once a proof under it verified.

use std::time::Duration;

use autoid_protocol::agent_api::{
    BoundRequest, SessionReply, SessionRequest, StreamReply, StreamRequest,
};
use autoid_protocol::config::{Agent, DEFAULT_AGENT_SESSION_TTL_SECS, MAX_ENTROPY_CACHE_BYTES};
use autoid_protocol::entropy::{EpochParams, SubjectKey};
use autoid_protocol::header::Proof;
use autoid_protocol::verify::{KnownEpoch, SessionKey, Stop};
use autoid_protocol::{Reject, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Asked, Flow, Held, Pending};
use crate::callout::{agent_headers, bearer};
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Unavailable};
use crate::state::State;

impl Flow {
    /// POSTs a JSON body to the agent within its timeout: whether the callout was dispatched.
    pub(super) fn post_to_agent<H: HttpHost>(
        &self,
        host: &H,
        agent: &Agent,
        path: &str,
        body: &[u8],
    ) -> bool {
        let timeout = Duration::from_millis(agent.callout.timeout_ms);
        self.post_to_agent_within(host, agent, path, body, timeout)
    }

    /// POSTs a JSON body to the agent within `timeout`: whether the callout was dispatched (a
    /// failure to dispatch is logged).
    pub(super) fn post_to_agent_within<H: HttpHost>(
        &self,
        host: &H,
        agent: &Agent,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> bool {
        let auth = bearer(agent);
        let mut headers = agent_headers(agent, "POST", path, auth.as_deref());
        headers.push(("content-type", "application/json"));
        let sent = host
            .dispatch(&agent.callout.cluster, headers, Some(body), timeout)
            .is_ok();
        if !sent {
            host.log(
                Level::Warn,
                &format!(
                    "autoid: callout {path} could not be dispatched to cluster {:?} request_id={}",
                    agent.callout.cluster, self.request_id
                ),
            );
        }
        sent
    }

    /// Sends the proof's wrapped session to the agent (the key is the agent's): `Pause` until it
    /// answers, or a 503 when the callout cannot be sent.
    pub(super) fn ask_agent<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        proof: &str,
        request: &Request<'_>,
        ticket_checked: bool,
    ) -> Verdict {
        let parsed = Proof::parse(proof).ok();
        let (Some(agent), Some(parsed), Some(wrapped)) = (
            &state.config.agent,
            parsed.as_ref(),
            parsed.as_ref().and_then(Proof::wrapped),
        ) else {
            self.deny(host, Denial::Unavailable(Unavailable::Agent), None);
            return Verdict::Pause;
        };
        // A v3 proof: the agent checks its possession ticket before the RSA.
        let ticket = parsed
            .ticket()
            .map(|t| URL_SAFE_NO_PAD.encode(t.to_bytes()));
        let body = serde_json::to_vec(&SessionRequest {
            kid: parsed.kid().to_owned(),
            wrapped: URL_SAFE_NO_PAD.encode(wrapped),
            request: ticket.as_ref().map(|_| BoundRequest {
                method: request.method.to_owned(),
                authority: request.authority.to_owned(),
                path: request.path.to_owned(),
            }),
            ticket,
            ticket_checked,
        })
        .unwrap_or_default();
        if !self.post_to_agent(host, agent, "/v1/sessions", &body) {
            state.count(host, Counter::AgentSessionFailures);
            self.deny(host, Denial::Unavailable(Unavailable::Dispatch), None);
            return Verdict::Pause;
        }
        state.count(host, Counter::AgentSessionCallouts);
        self.pending = Pending::Session {
            asked: Asked::new(proof, request),
        };
        Verdict::Pause
    }

    /// Asks the agent for the subject's key in an epoch it holds (the proof's session opened,
    /// and the cold-path budget allowed the callout): `Pause` until it answers, or a 503 when
    /// the callout cannot be sent.
    pub(super) fn ask_stream<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        proof: &str,
        request: &Request<'_>,
        epoch: String,
        subject: String,
    ) -> Verdict {
        let Some(agent) = &state.config.agent else {
            self.deny(
                host,
                Denial::Unavailable(Unavailable::Agent),
                Some(&subject),
            );
            return Verdict::Pause;
        };
        let body = serde_json::to_vec(&StreamRequest {
            epoch: epoch.clone(),
            subject: subject.clone(),
        })
        .unwrap_or_default();
        if !self.post_to_agent(host, agent, "/v1/streams", &body) {
            state.count(host, Counter::AgentStreamFailures);
            self.deny(
                host,
                Denial::Unavailable(Unavailable::Dispatch),
                Some(&subject),
            );
            return Verdict::Pause;
        }
        state.count(host, Counter::AgentStreamCallouts);
        self.pending = Pending::Stream {
            asked: Asked::new(proof, request),
            epoch,
            subject,
        };
        Verdict::Pause
    }

    /// The agent answered a subject-key callout: keeps the stream and verifies again, or denies
    /// (401 when the agent does not know the epoch, 503 when it did not answer usably).
    pub(super) fn stream_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        asked: &Asked,
        (epoch, subject): (&str, &str),
        status: Option<u32>,
        body: &[u8],
    ) -> Verdict {
        let request = asked.request();
        let verified = match status {
            Some(200) => match keep_stream(host, state, epoch, subject, body) {
                Ok(()) => match self.verify(host, state, &asked.proof, &request) {
                    // The stream was just kept: asking again means it could not be.
                    Err(Stop::AskAgent { .. } | Stop::AskStream { .. }) => None,
                    other => Some(other),
                },
                Err(why) => {
                    host.log(Level::Warn, &format!(
                        "autoid: unusable subject key from the agent: {why} epoch={epoch} subject={subject:?} request_id={}",
                        self.request_id
                    ));
                    None
                }
            },
            Some(404) => Some(Err(Stop::Rejected(Reject::UnknownEpoch))),
            _ => None,
        };
        match verified {
            Some(v) => self.verified(host, state, v, &asked.proof, &request),
            None => {
                state.count(host, Counter::AgentStreamFailures);
                host.log(Level::Warn, &format!(
                    "autoid: the agent did not hand over a subject key (status {}) epoch={epoch} subject={subject:?} request_id={}",
                    status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                    self.request_id
                ));
                self.deny(host, Denial::Unavailable(Unavailable::Agent), Some(subject));
                Verdict::Pause
            }
        }
    }

    /// The agent answered a session callout: holds the session for this request and verifies
    /// again (the session is judged as a cached one, and cached only once the proof verifies),
    /// or denies (401 when the agent refused the key or the unwrap, 503 when it did not answer
    /// usably).
    pub(super) fn session_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        asked: &Asked,
        status: Option<u32>,
        body: &[u8],
    ) -> Verdict {
        let request = asked.request();
        let verified = match (status, parse_session(body)) {
            (Some(200), Some((session, expires_at))) => {
                if let Ok(proof) = Proof::parse(&asked.proof) {
                    let now = host.now_ms() / 1000;
                    // Kept (once a proof under it verified) until the key retires, and asked
                    // again after the agent's session TTL so a retirement set later reaches
                    // this session too.
                    let ttl = state
                        .config
                        .agent
                        .as_ref()
                        .map_or(DEFAULT_AGENT_SESSION_TTL_SECS, |a| a.session_ttl_secs);
                    let recheck = now.saturating_add(ttl);
                    let cap = expires_at.map_or(recheck, |at| at.min(recheck));
                    *self.held.borrow_mut() = Held::new(&proof, session, Some(cap));
                }
                match self.verify(host, state, &asked.proof, &request) {
                    // The session is held for this proof: asking again means it could not be.
                    Err(Stop::AskAgent { .. }) => None,
                    other => Some(other),
                }
            }
            (Some(404), _) => Some(Err(Stop::Rejected(Reject::UnknownKey))),
            (Some(422), _) => Some(Err(Stop::Rejected(refusal(body)))),
            _ => None,
        };
        match verified {
            Some(v) => self.verified(host, state, v, &asked.proof, &request),
            None => {
                state.count(host, Counter::AgentSessionFailures);
                host.log(
                    Level::Warn,
                    &format!(
                        "autoid: the agent did not unwrap a session (status {}) request_id={}",
                        status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                        self.request_id
                    ),
                );
                self.deny(host, Denial::Unavailable(Unavailable::Agent), None);
                Verdict::Pause
            }
        }
    }
}

/// Why the agent refused a session (its 422): the possession ticket (`entropy`, `stale`,
/// `future`, `unknown_epoch`), else the unwrap itself.
fn refusal(body: &[u8]) -> Reject {
    #[derive(serde::Deserialize)]
    struct Refused {
        error: String,
    }
    match serde_json::from_slice::<Refused>(body).map(|r| r.error) {
        Ok(e) if e == "entropy" => Reject::Entropy,
        Ok(e) if e == "stale" => Reject::Stale,
        Ok(e) if e == "future" => Reject::Future,
        Ok(e) if e == "unknown_epoch" => Reject::UnknownEpoch,
        _ => Reject::Unwrap,
    }
}

/// The session plaintext in the agent's 200 reply, and when its key retires.
pub(super) fn parse_session(body: &[u8]) -> Option<(SessionKey, Option<u64>)> {
    let reply: SessionReply = serde_json::from_slice(body).ok()?;
    let bytes = URL_SAFE_NO_PAD.decode(reply.session).ok()?;
    Some((SessionKey::from_bytes(&bytes)?, reply.expires_at))
}

/// Keeps the stream of the agent's 200 reply for (epoch, subject): the key must be 16 bytes and
/// the epoch's parameters the ones configured — or, for an epoch the filter does not list
/// (`agent.any_epoch`), valid parameters whose file fits the entropy cache's per-worker cap. Kept
/// for the reply's `ttl_secs`, at most `agent.max_stream_ttl_secs`, and never past the epoch's
/// `expires_at`. The error says what was wrong, never the key.
pub(super) fn keep_stream<H: HttpHost>(
    host: &H,
    state: &State,
    epoch: &str,
    subject: &str,
    body: &[u8],
) -> Result<(), String> {
    let reply: StreamReply =
        serde_json::from_slice(body).map_err(|e| format!("malformed reply ({e})"))?;
    let key = SubjectKey::from_base64(&reply.key).ok_or("the key is not 16 bytes of base64url")?;
    let keyring = &state.config.keyring;
    let params = match keyring.known_epoch(epoch) {
        Some(KnownEpoch::Agent(params)) => {
            if (reply.file_size, reply.interval_count)
                != (params.file_size(), params.interval_count())
            {
                return Err(format!(
                    "the agent's epoch has file_size {} and interval_count {}, the configuration {} and {}",
                    reply.file_size,
                    reply.interval_count,
                    params.file_size(),
                    params.interval_count()
                ));
            }
            params.clone()
        }
        None if keyring.unlisted_epoch_at_agent(epoch) => {
            let params = EpochParams::new(epoch, reply.file_size, reply.interval_count)
                .map_err(|e| format!("the agent's epoch parameters are invalid ({e})"))?;
            let files = u64::from(state.config.entropy_cache.files);
            if files.saturating_mul(params.file_size()) > MAX_ENTROPY_CACHE_BYTES {
                return Err(format!(
                    "the agent's epoch has file_size {}: {files} such files exceed the entropy cache's per-worker cap",
                    params.file_size()
                ));
            }
            params
        }
        _ => return Err("not an agent-held epoch".to_owned()),
    };
    let max = state
        .config
        .agent
        .as_ref()
        .map_or(0, |a| a.max_stream_ttl_secs);
    let ttl = reply.ttl_secs.min(max);
    if ttl == 0 {
        return Err("ttl_secs is 0".to_owned());
    }
    let now = host.now_ms() / 1000;
    let until = now.saturating_add(ttl);
    let until = reply.expires_at.map_or(until, |at| at.min(until));
    if until <= now {
        return Err("the epoch has retired (expires_at)".to_owned());
    }
    state
        .entropy
        .borrow_mut()
        .insert(&params, subject, key.stream(), Some(until));
    Ok(())
}
