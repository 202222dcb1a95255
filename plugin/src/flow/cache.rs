//! The session cache as `verify` sees it: the worker's map and shared data, the entropy cache,
//! and the cold-path budget (per source, then per worker).

use autoid_protocol::entropy::EpochParams;
use autoid_protocol::header::Proof;
use autoid_protocol::intervals::Interval;
use autoid_protocol::verify::{KnownEpoch, SessionCache, SessionKey};

use crate::host::HttpHost;
use crate::metrics::Counter;
use crate::ratelimit::source_key;
use crate::sessions::Hit;
use crate::worker::State;

/// The caches one verification reads, at one clock reading.
pub(super) struct CacheAdapter<'a, H> {
    pub(super) host: &'a H,
    pub(super) state: &'a State,
    pub(super) now: u64,
    pub(super) now_ms: u64,
}

impl<H: HttpHost> CacheAdapter<'_, H> {
    /// Caches a session until its lifetime ends, or until `cap` (the agent retires its key)
    /// if that comes first.
    pub(super) fn put_until(&mut self, proof: &Proof, session: &SessionKey, cap: Option<u64>) {
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
        let counter = match &found {
            Some((_, Hit::Local)) => Counter::SessionHitLocal,
            Some((_, Hit::Shared)) => Counter::SessionHitShared,
            None => Counter::SessionMiss,
        };
        self.state.count(self.host, counter);
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
            self.state.count(self.host, Counter::RsaUnwraps);
        }
        allowed
    }

    /// A subject-key callout spends the same budget as an unwrap: anyone can open a session
    /// (the public key is public) and name many subjects.
    fn allow_stream(&mut self) -> bool {
        self.cold_budget()
    }
}
