//! The gateway's side: each step on its own, so the filter can put caches between them, and
//! [`verify`] to run them all in the documented order.
//!
//! Order: size cap, grammar ([`Proof::parse`]), key id, session (cache; else, for v3, the
//! possession ticket, then the RSA-OAEP unwrap, held for the request and cached only once the
//! proof verifies), session age, AES-GCM open (v3: the payload says what the ticket said),
//! timestamp window, epoch, the subject's stream (local or the agent's), intervals and digest,
//! constant-time compare.

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use subtle::ConstantTimeEq;

use crate::entropy::{Epoch, EpochParams, SubjectStream};
use crate::header::{IV_LEN, NONCE_LEN, Payload, Proof};
use crate::intervals::{Bindings, Interval, Intervals};
use crate::keys::GatewayKey;
use crate::policy::{DEFAULT_MAX_SKEW_SECS, DEFAULT_SESSION_LIFETIME_SECS};
pub use crate::session::SessionKey;
use crate::ticket::Ticket;
use crate::{Reject, Request};

/// Time limits the gateway enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Accepted clock difference each way, seconds.
    pub max_skew_secs: u64,
    /// How long a session lives after `issued_at`, seconds.
    pub session_lifetime_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            session_lifetime_secs: DEFAULT_SESSION_LIFETIME_SECS,
        }
    }
}

impl SessionKey {
    /// Rejects a session older than its lifetime or issued further ahead than the skew.
    pub fn check_age(&self, now: u64, limits: &Limits) -> Result<(), Reject> {
        if self.issued_at() > now.saturating_add(limits.max_skew_secs)
            || now.saturating_sub(self.issued_at()) > limits.session_lifetime_secs
        {
            return Err(Reject::SessionExpired);
        }
        Ok(())
    }

    /// Opens the sealed payload; the associated data binds the version, kid and request.
    pub fn open(&self, proof: &Proof, request: &Request<'_>) -> Result<Payload, Reject> {
        let aad = proof.associated_data(request).ok_or(Reject::Malformed)?;
        let (iv, ciphertext) = proof.sealed().split_at(IV_LEN);
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Reject::Malformed)?;
        let plaintext = self
            .cipher()
            .decrypt(
                &iv.into(),
                AeadPayload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| Reject::Open)?;
        Payload::from_bytes(&plaintext)
    }
}

/// An epoch as the gateway knows it: with its master secret, or only its public parameters (the
/// agent holds the secret and hands out per-subject keys).
#[derive(Debug, Clone, Copy)]
pub enum KnownEpoch<'a> {
    /// The gateway holds the secret and derives streams itself.
    Local(&'a Epoch),
    /// The agent holds the secret.
    Agent(&'a EpochParams),
}

impl<'a> KnownEpoch<'a> {
    /// The public parameters.
    pub fn params(&self) -> &'a EpochParams {
        match self {
            KnownEpoch::Local(e) => e.params(),
            KnownEpoch::Agent(p) => p,
        }
    }

    /// The subject's stream, when the gateway can derive it (a local epoch).
    pub fn local_stream(&self, subject: &str) -> Option<SubjectStream> {
        match self {
            KnownEpoch::Local(e) => Some(e.stream(subject)),
            KnownEpoch::Agent(_) => None,
        }
    }
}

/// The gateway's secrets: private keys by key id, epochs by id. Both lists are small.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<GatewayKey>,
    /// Key ids whose private key only the agent holds: their sessions are unwrapped there.
    agent_kids: Vec<String>,
    /// Every key id not in `keys` is the agent's (key rotation at the agent).
    any_agent_key: bool,
    epochs: Vec<Epoch>,
    /// Epochs whose secret only the agent holds: it hands out per-subject keys.
    agent_epochs: Vec<EpochParams>,
    /// Every epoch id not listed is the agent's (epoch rotation at the agent).
    any_agent_epoch: bool,
}

impl Keyring {
    /// A keyring from its keys and epochs.
    pub fn new(keys: Vec<GatewayKey>, epochs: Vec<Epoch>) -> Self {
        Keyring {
            keys,
            agent_kids: Vec::new(),
            any_agent_key: false,
            epochs,
            agent_epochs: Vec::new(),
            any_agent_epoch: false,
        }
    }

    /// Also accepts these epochs, whose secrets the agent holds.
    pub fn with_agent_epochs(mut self, epochs: Vec<EpochParams>) -> Self {
        self.agent_epochs = epochs;
        self
    }

    /// Also asks the agent for subjects' streams under any epoch id it does not list, taking the
    /// epoch's public parameters from the agent's reply.
    pub fn with_any_agent_epoch(mut self, any: bool) -> Self {
        self.any_agent_epoch = any;
        self
    }

    /// Whether an epoch id it does not list may be the agent's (`agent.any_epoch`): its public
    /// parameters come with the agent's stream.
    pub fn unlisted_epoch_at_agent(&self, id: &str) -> bool {
        self.any_agent_epoch && self.known_epoch(id).is_none()
    }

    /// The epoch with this id, local or the agent's.
    pub fn known_epoch(&self, id: &str) -> Option<KnownEpoch<'_>> {
        self.epoch(id).map(KnownEpoch::Local).or_else(|| {
            self.agent_epochs
                .iter()
                .find(|e| e.id() == id)
                .map(KnownEpoch::Agent)
        })
    }

    /// Every epoch's public parameters, local and the agent's.
    pub fn epoch_params(&self) -> impl Iterator<Item = &EpochParams> {
        self.epochs
            .iter()
            .map(Epoch::params)
            .chain(self.agent_epochs.iter())
    }

    /// Also accepts these key ids, whose private keys the agent holds.
    pub fn with_agent_keys(mut self, kids: Vec<String>) -> Self {
        self.agent_kids = kids;
        self
    }

    /// Also sends sessions under any key id it holds no private key for to the agent.
    pub fn with_any_agent_key(mut self, any: bool) -> Self {
        self.any_agent_key = any;
        self
    }

    /// Whether the agent holds (or, with `any_agent_key`, may hold) this key id's private key.
    pub fn held_by_agent(&self, kid: &str) -> bool {
        self.agent_kids.iter().any(|k| k == kid) || (self.any_agent_key && self.key(kid).is_none())
    }

    /// The key with this id.
    pub fn key(&self, kid: &str) -> Option<&GatewayKey> {
        self.keys.iter().find(|k| k.kid() == kid)
    }

    /// The epoch with this id.
    pub fn epoch(&self, id: &str) -> Option<&Epoch> {
        self.epochs.iter().find(|e| e.id() == id)
    }

    /// The cold path: RSA-OAEP unwrap of the proof's session (milliseconds; cache the result).
    /// A compact proof carries no wrapped key: [`Reject::UnknownSession`].
    pub fn unwrap_session(&self, proof: &Proof) -> Result<SessionKey, Reject> {
        let key = self.key(proof.kid()).ok_or(Reject::UnknownKey)?;
        key.unwrap_session(proof.wrapped().ok_or(Reject::UnknownSession)?)
    }

    /// Checks a v3 possession ticket before any RSA (docs/PROTOCOL.md §12): its time window, its
    /// epoch, and its tag against the digest recomputed from the subject's intervals. `Ok(true)`
    /// when checked, `Ok(false)` when the subject's stream is not at hand here (an agent-held
    /// epoch): the agent checks it then, before its unwrap.
    pub fn check_ticket(
        &self,
        proof: &Proof,
        ticket: &Ticket,
        request: &Request<'_>,
        now: u64,
        limits: &Limits,
        cache: &mut dyn SessionCache,
    ) -> Result<bool, Reject> {
        if ticket.timestamp > now.saturating_add(limits.max_skew_secs) {
            return Err(Reject::Future);
        }
        if now.saturating_sub(ticket.timestamp) > limits.max_skew_secs {
            return Err(Reject::Stale);
        }
        let session_id = proof.session_id().ok_or(Reject::Malformed)?;
        let learned;
        let epoch = match self.known_epoch(&ticket.epoch) {
            Some(epoch) => epoch,
            None if self.any_agent_epoch => {
                match cache.agent_epoch(&ticket.epoch, &ticket.subject) {
                    Some(params) => {
                        learned = params;
                        KnownEpoch::Agent(&learned)
                    }
                    None => return Ok(false),
                }
            }
            None => return Err(Reject::UnknownEpoch),
        };
        let params = epoch.params();
        let intervals = Intervals::derive(
            &ticket.bindings(*request),
            params.file_size(),
            params.interval_count(),
        );
        let Some(bytes) = cache.intervals(epoch, &ticket.subject, intervals.offsets()) else {
            return Ok(false);
        };
        ticket.check_tag(&intervals.digest(&bytes), &session_id)?;
        Ok(true)
    }

    /// Recomputes the digest from the subject's intervals (read through `cache`, which may keep
    /// recent subjects' streams or whole files) and compares in constant time. The stream of a
    /// subject under an agent-held epoch that `cache` does not hold stops with
    /// [`Stop::AskStream`], after the cold-path budget ([`SessionCache::allow_stream`]) allowed it.
    pub fn check_entropy(
        &self,
        payload: &Payload,
        request: &Request<'_>,
        cache: &mut dyn SessionCache,
    ) -> Result<(), Stop> {
        // An epoch it does not list (`agent.any_epoch`) is known by the parameters the agent
        // sent with a stream the cache holds; nothing depends on them before that (the payload's
        // grammar does not), so without such a stream the agent is asked first.
        let learned;
        let epoch = match self.known_epoch(&payload.epoch) {
            Some(epoch) => epoch,
            None if self.any_agent_epoch => {
                match cache.agent_epoch(&payload.epoch, &payload.subject) {
                    Some(params) => {
                        learned = params;
                        KnownEpoch::Agent(&learned)
                    }
                    None => {
                        if !cache.allow_stream() {
                            return Err(Reject::RateLimited.into());
                        }
                        return Err(Stop::AskStream {
                            epoch: payload.epoch.clone(),
                            subject: payload.subject.clone(),
                        });
                    }
                }
            }
            None => return Err(Reject::UnknownEpoch.into()),
        };
        let params = epoch.params();
        let bindings = Bindings {
            subject: &payload.subject,
            epoch: &payload.epoch,
            nonce: &payload.nonce,
            timestamp: payload.timestamp,
            request: *request,
        };
        let intervals = Intervals::derive(&bindings, params.file_size(), params.interval_count());
        let Some(bytes) = cache.intervals(epoch, &payload.subject, intervals.offsets()) else {
            if !cache.allow_stream() {
                return Err(Reject::RateLimited.into());
            }
            return Err(Stop::AskStream {
                epoch: payload.epoch.clone(),
                subject: payload.subject.clone(),
            });
        };
        let expected = intervals.digest(&bytes);
        if bool::from(expected.ct_eq(&payload.digest)) {
            Ok(())
        } else {
            Err(Reject::Entropy.into())
        }
    }
}

/// The sealed payload must say what the ticket said (time, nonce, epoch, subject): else
/// [`Reject::Payload`].
fn check_ticket_matches(ticket: &Ticket, payload: &Payload) -> Result<(), Reject> {
    if ticket.timestamp != payload.timestamp
        || ticket.nonce != payload.nonce
        || ticket.epoch != payload.epoch
        || ticket.subject != payload.subject
    {
        return Err(Reject::Payload);
    }
    Ok(())
}

/// Rejects a timestamp outside `now ± max_skew`.
pub fn check_time(payload: &Payload, now: u64, limits: &Limits) -> Result<(), Reject> {
    if payload.timestamp > now.saturating_add(limits.max_skew_secs) {
        return Err(Reject::Future);
    }
    if now.saturating_sub(payload.timestamp) > limits.max_skew_secs {
        return Err(Reject::Stale);
    }
    Ok(())
}

/// Where [`verify`] looks for and keeps unwrapped sessions, and reads the subject's entropy.
///
/// Sessions are looked up by the proof itself, so a cache may match on the wrapped bytes and
/// only compute [`Proof::session_id`] (a SHA-256 over them) when it has to.
pub trait SessionCache {
    /// The cached session for this proof's kid and session part (its wrapped key, or in the
    /// compact form its reference), if any.
    fn get(&mut self, proof: &Proof) -> Option<SessionKey>;
    /// Remembers a session freshly unwrapped from this proof, once a proof under it has fully
    /// verified (opened, in time, its entropy digest right): anyone can wrap a session with the
    /// public key, so a session no proof has verified under is never cached (it could evict a
    /// client's working session).
    fn put(&mut self, proof: &Proof, session: &SessionKey);
    /// A session unwrapped for this request (this proof) that no proof has verified under yet:
    /// held by the caller for the request only ([`SessionCache::hold`], or the agent's answer),
    /// judged by the same checks as a cached one and cached only once the proof verifies.
    fn held(&mut self, _proof: &Proof) -> Option<SessionKey> {
        None
    }
    /// Holds a session just unwrapped from this proof for the rest of the request (a verification
    /// that stops to ask the agent for a stream finds it again), without caching it.
    fn hold(&mut self, _proof: &Proof, _session: &SessionKey) {}
    /// Whether a cold-path RSA unwrap may run now (a rate limit); `false` rejects the proof
    /// with [`Reject::RateLimited`] before any RSA work.
    fn allow_unwrap(&mut self) -> bool {
        true
    }
    /// Whether an unwrap of a v3 session whose possession ticket was checked (or will be, by the
    /// agent, before its RSA) may start now: its own budget, which unchecked (v1, v2) unwraps
    /// never spend. By default the same as [`SessionCache::allow_unwrap`].
    fn allow_checked_unwrap(&mut self) -> bool {
        self.allow_unwrap()
    }
    /// Whether a cold-path callout for a subject's stream may start now (the same budget as
    /// unwraps by default); `false` rejects the proof with [`Reject::RateLimited`].
    fn allow_stream(&mut self) -> bool {
        self.allow_unwrap()
    }
    /// The public parameters of an epoch the keyring does not list, from the agent's reply to a
    /// stream of this subject that the cache holds (`agent.any_epoch`); `None`: ask the agent.
    fn agent_epoch(&mut self, _epoch: &str, _subject: &str) -> Option<EpochParams> {
        None
    }
    /// The subject's entropy at these offsets under `epoch`, or `None` when the stream is not at
    /// hand (an agent-held epoch whose subject key the cache does not hold). By default derived
    /// from a local epoch's stream (HKDF, an AES key schedule, one AES block per interval); a
    /// cache may keep recent subjects' streams (including those the agent handed over), or a few
    /// hot subjects' whole files.
    fn intervals(
        &mut self,
        epoch: KnownEpoch<'_>,
        subject: &str,
        offsets: &[u64],
    ) -> Option<Vec<Interval>> {
        epoch.local_stream(subject).map(|s| s.intervals_at(offsets))
    }
}

/// No cache: every proof pays the RSA unwrap.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

impl SessionCache for NoCache {
    fn get(&mut self, _: &Proof) -> Option<SessionKey> {
        None
    }
    fn put(&mut self, _: &Proof, _: &SessionKey) {}
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The subject proven.
    pub subject: String,
    /// The epoch of its entropy.
    pub epoch: String,
    /// The gateway key id the session was wrapped for.
    pub kid: String,
    /// The proof's nonce: the caller checks it against its replay cache.
    pub nonce: [u8; NONCE_LEN],
    /// The proof's timestamp.
    pub timestamp: u64,
    /// Whether the session came from the cache (no RSA).
    pub session_cached: bool,
    /// The body digest the proof binds, if any: the caller must check the body against it.
    pub body_digest: Option<[u8; 32]>,
}

/// Why [`verify_or_ask`] stopped short of a verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The proof is refused.
    Rejected(Reject),
    /// The session is not cached and its key is the agent's: ask the agent to unwrap it (the
    /// cold-path budget allowed it), hold the session for the request, and verify again.
    AskAgent {
        /// v3: whether the possession ticket was checked here (else the agent checks it before
        /// its RSA; `false` for v1 and v2, which have none).
        ticket_checked: bool,
    },
    /// The session opened, but the subject's stream under this agent-held epoch is not cached:
    /// ask the agent for the subject's key (the cold-path budget allowed it), put the stream in
    /// the cache, and verify again.
    AskStream {
        /// The epoch id (the payload's; a listed agent-held epoch, or with `agent.any_epoch` one
        /// the filter does not list).
        epoch: String,
        /// The subject (the payload's; canonical).
        subject: String,
    },
}

impl From<Reject> for Stop {
    fn from(r: Reject) -> Self {
        Stop::Rejected(r)
    }
}

/// Verifies a header value for a request at `now`, using and filling `cache`. A key id only the
/// agent holds is [`Reject::UnknownKey`] here, a stream only the agent can key
/// [`Reject::UnknownEpoch`]; the gateway uses [`verify_or_ask`].
pub fn verify(
    keyring: &Keyring,
    limits: &Limits,
    header: &str,
    request: &Request<'_>,
    now: u64,
    cache: &mut dyn SessionCache,
) -> Result<Verified, Reject> {
    verify_or_ask(keyring, limits, header, request, now, cache).map_err(|s| match s {
        Stop::Rejected(r) => r,
        Stop::AskAgent { .. } => Reject::UnknownKey,
        Stop::AskStream { .. } => Reject::UnknownEpoch,
    })
}

/// [`verify`], except that a session to unwrap under a key the agent holds stops with
/// [`Stop::AskAgent`] (after the same checks and budget as a local unwrap), and a subject's
/// stream under an epoch the agent holds, not in `cache`, with [`Stop::AskStream`]. The agent's
/// answer comes back through [`SessionCache::held`]: the same checks as any session, then
/// [`SessionCache::put`] once the proof verified.
pub fn verify_or_ask(
    keyring: &Keyring,
    limits: &Limits,
    header: &str,
    request: &Request<'_>,
    now: u64,
    cache: &mut dyn SessionCache,
) -> Result<Verified, Stop> {
    let proof = Proof::parse(header)?;
    let at_agent = keyring.held_by_agent(proof.kid());
    if keyring.key(proof.kid()).is_none() && !at_agent {
        return Err(Reject::UnknownKey.into());
    }
    let (session, session_cached) = match cache.get(&proof) {
        Some(session) => (session, true),
        None => match cache.held(&proof) {
            Some(session) => (session, false),
            None => {
                // A compact proof names a session it cannot open: no budget spent, no unwrap.
                if proof.wrapped().is_none() {
                    return Err(Reject::UnknownSession.into());
                }
                let ticket_checked = match proof.ticket() {
                    // v3: possession first, here when the subject's stream is at hand, else
                    // by the agent before its RSA (it holds the epochs); from its own budget.
                    Some(ticket) => {
                        let checked =
                            keyring.check_ticket(&proof, ticket, request, now, limits, cache)?;
                        if !cache.allow_checked_unwrap() {
                            return Err(Reject::RateLimited.into());
                        }
                        if !checked && !at_agent {
                            // A local key, the stream at the agent: the stream first.
                            return Err(Stop::AskStream {
                                epoch: ticket.epoch.clone(),
                                subject: ticket.subject.clone(),
                            });
                        }
                        checked
                    }
                    None => {
                        if !cache.allow_unwrap() {
                            return Err(Reject::RateLimited.into());
                        }
                        false
                    }
                };
                if at_agent {
                    return Err(Stop::AskAgent { ticket_checked });
                }
                let session = keyring.unwrap_session(&proof)?;
                cache.hold(&proof, &session);
                (session, false)
            }
        },
    };
    // A session fresh from an unwrap (here or at the agent) is judged as a cached one.
    session.check_age(now, limits)?;
    let payload = session.open(&proof, request)?;
    if let Some(ticket) = proof.ticket() {
        check_ticket_matches(ticket, &payload)?;
    }
    check_time(&payload, now, limits)?;
    keyring.check_entropy(&payload, request, cache)?;
    if !session_cached {
        cache.put(&proof, &session);
    }
    Ok(Verified {
        subject: payload.subject,
        epoch: payload.epoch,
        kid: proof.kid().to_owned(),
        nonce: payload.nonce,
        timestamp: payload.timestamp,
        session_cached,
        body_digest: payload.body_digest,
    })
}

/// Checks a body against the digest a proof binds.
pub fn check_body(expected: &[u8; 32], body: &[u8]) -> Result<(), Reject> {
    use sha2::Digest;
    let actual: [u8; 32] = sha2::Sha256::digest(body).into();
    if bool::from(actual.ct_eq(expected)) {
        Ok(())
    } else {
        Err(Reject::Body)
    }
}
