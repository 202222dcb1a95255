//! The session cache as `verify` sees it: the worker's map and shared data, the session held for
//! the request until its proof verifies, the entropy cache, and the cold-path budget (per source,
//! then per worker). What a verification did that is counted (session lookups, unwraps allowed)
//! is kept in a [`Tally`] that the authenticate step counts ([`super::Flow`]'s `verify`).

use std::cell::RefCell;

use autoid_protocol::entropy::EpochParams;
use autoid_protocol::header::Proof;
use autoid_protocol::intervals::Interval;
use autoid_protocol::verify::{KnownEpoch, SessionCache, SessionKey};

use crate::host::HttpHost;
use crate::metrics::Counter;
use crate::ratelimit::source_key;
use crate::session_cache::Hit;
use crate::state::State;

/// A session unwrapped for one request (locally or by the agent) that no proof has verified
/// under yet, with the cap the agent set on it (its key's retirement, its session TTL).
pub(crate) struct Held {
    kid: String,
    wrapped: Box<[u8]>,
    session: SessionKey,
    cap: Option<u64>,
}

impl Held {
    /// Holds `session`, unwrapped from this full-form proof (a compact one holds nothing).
    pub(super) fn new(proof: &Proof, session: SessionKey, cap: Option<u64>) -> Option<Held> {
        Some(Held {
            kid: proof.kid().to_owned(),
            wrapped: proof.wrapped()?.into(),
            session,
            cap,
        })
    }

    fn of(&self, proof: &Proof) -> bool {
        self.kid == proof.kid() && proof.wrapped() == Some(&self.wrapped[..])
    }
}

/// What one verification did that the worker counts.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Session lookups found in the worker's own map.
    hits_local: u32,
    /// Session lookups found in shared data.
    hits_shared: u32,
    /// Session lookups found nowhere (not in the caches, not held for this request).
    misses: u32,
    /// RSA unwraps the cold-path budget allowed.
    unwraps: u32,
}

impl Tally {
    /// Counts what the verification did: the session lookup only when `lookup` (the request's
    /// first verification; later ones, with the agent's answer, look the same session up again).
    pub(super) fn count<H: HttpHost>(&self, host: &H, state: &State, lookup: bool) {
        let lookups = if lookup {
            [self.hits_local, self.hits_shared, self.misses]
        } else {
            [0; 3]
        };
        for (counter, n) in [
            (Counter::SessionHitLocal, lookups[0]),
            (Counter::SessionHitShared, lookups[1]),
            (Counter::SessionMiss, lookups[2]),
            (Counter::RsaUnwraps, self.unwraps),
        ] {
            for _ in 0..n {
                state.count(host, counter);
            }
        }
    }
}

/// The caches one verification reads, at one clock reading.
pub(super) struct CacheAdapter<'a, H> {
    pub(super) host: &'a H,
    pub(super) state: &'a State,
    pub(super) now: u64,
    pub(super) now_ms: u64,
    /// The request's held session.
    pub(super) held: &'a RefCell<Option<Held>>,
    /// What the verification did, counted once it returns.
    pub(super) tally: Tally,
}

impl<H: HttpHost> CacheAdapter<'_, H> {
    /// Caches a session until its lifetime ends, or until `cap` (the agent retires its key)
    /// if that comes first.
    fn put_until(&mut self, proof: &Proof, session: &SessionKey, cap: Option<u64>) {
        let lifetime_end = session
            .issued_at()
            .saturating_add(self.state.config.limits.session_lifetime_secs);
        let expires = cap.map_or(lifetime_end, |cap| cap.min(lifetime_end));
        // Only a full-form proof opens a session; a compact one names a session already held.
        let Some(wrapped) = proof.wrapped() else {
            return;
        };
        self.state.sessions.borrow_mut().put(
            self.host.store(),
            proof.kid(),
            wrapped,
            session,
            expires,
        );
    }

    /// One cold-path token: the source's share first (a source past it never touches the
    /// worker's budget), then the worker's.
    fn cold_budget(&self) -> bool {
        let source = source_key(self.host.source_address().as_deref());
        self.state
            .cold_sources
            .borrow_mut()
            .try_take(source, self.now_ms)
            && self.state.cold_path.borrow_mut().try_take(self.now_ms)
    }
}

impl<H: HttpHost> SessionCache for CacheAdapter<'_, H> {
    fn get(&mut self, proof: &Proof) -> Option<SessionKey> {
        let found = self.state.sessions.borrow_mut().get(
            self.host.store(),
            proof.kid(),
            proof.session(),
            self.now,
        );
        // A miss is counted by `held`, which verification asks next: a session this request
        // already holds (the agent's answer, asked for on an earlier pass) was not missed again.
        match &found {
            Some((_, Hit::Local)) => self.tally.hits_local += 1,
            Some((_, Hit::Shared)) => self.tally.hits_shared += 1,
            None => {}
        }
        found.map(|(key, _)| key)
    }

    /// Caches a session a proof verified under, until the cap the agent set on it if any.
    fn put(&mut self, proof: &Proof, session: &SessionKey) {
        let cap = self
            .held
            .borrow_mut()
            .take()
            .filter(|h| h.of(proof))
            .and_then(|h| h.cap);
        self.put_until(proof, session, cap);
    }

    fn held(&mut self, proof: &Proof) -> Option<SessionKey> {
        let held = self
            .held
            .borrow()
            .as_ref()
            .filter(|h| h.of(proof))
            .map(|h| h.session.clone());
        self.tally.misses += u32::from(held.is_none());
        held
    }

    fn hold(&mut self, proof: &Proof, session: &SessionKey) {
        *self.held.borrow_mut() = Held::new(proof, session.clone(), None);
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
        self.tally.unwraps += u32::from(allowed);
        allowed
    }

    /// A v3 unwrap: possession checked here, or by the agent before its RSA.
    fn allow_checked_unwrap(&mut self) -> bool {
        let allowed = self.state.checked_path.borrow_mut().try_take(self.now_ms);
        self.tally.unwraps += u32::from(allowed);
        allowed
    }

    /// A subject-key callout spends the same budget as an unwrap: anyone can open a session
    /// (the public key is public) and name many subjects.
    ///
    /// The stream a request's own new session needs comes with that session's token: the
    /// session held for this request spent one on its unwrap (with keys and epochs both at the
    /// agent, as deployed, every new session asks for both), so one request spends at most one.
    fn allow_stream(&mut self) -> bool {
        if self.held.borrow().is_some() {
            return true;
        }
        self.cold_budget()
    }
}
