//! The last steps of an allowed request: claim the proof's nonce (the replay table shared by the
//! worker's process; in fleet scope, then the fleet's), then forward it upstream with the
//! client's copies of managed headers stripped and the API's values injected.

use autoid_protocol::Reject;
use autoid_protocol::config::{Api, ReplayScope};
use autoid_protocol::verify::Verified;

use super::{Caller, Flow};
use crate::host::{HttpHost, Verdict};
use crate::metrics::Counter;
use crate::replay::{Insert, fenced};
use crate::reply::{Denial, Unavailable};
use crate::state::State;

impl Flow {
    /// Claims the proof's nonce in the replay table shared by every worker (atomic: of two
    /// requests carrying the same proof, one claims it). In local scope a proof made before
    /// this Envoy process started, or in its first second, is refused first (the restart fence).
    pub(super) fn claim<H: HttpHost>(
        &self,
        host: &H,
        state: &State,
        verified: &Verified,
    ) -> Result<(), Denial> {
        if let Some(fence) = state.fence
            && fenced(verified.timestamp, fence)
        {
            return Err(Denial::Fenced);
        }
        // Claimed at the claim's own second (a decision may have waited for a callout since the
        // proof was verified): a proof that expired meanwhile is refused, never won unrecorded.
        let now = (host.now_ms() / 1000).max(self.verified_at.get());
        let expires = verified
            .timestamp
            .saturating_add(state.config.limits.max_skew_secs + 1);
        match state
            .replay
            .insert(host.store(), &verified.nonce, expires, now)
        {
            Insert::Fresh { fill } => {
                if u64::from(fill) * 4 >= u64::from(state.replay.slots()) * 3 {
                    state.count(host, Counter::ReplayNearFull);
                }
                Ok(())
            }
            Insert::Replay => {
                state.count(host, Counter::ReplaysRejected);
                Err(Denial::Unauthorized(Reject::Replay))
            }
            Insert::Stale => Err(Denial::Unauthorized(Reject::Stale)),
            Insert::Full | Insert::Unavailable => {
                Err(Denial::Unavailable(Unavailable::ReplayCache))
            }
        }
    }

    /// Lets an authorized request go upstream: claims a proof's nonce (in the fleet too, in
    /// fleet scope: the request then waits for that answer), then [`Flow::forward`]s it.
    pub(super) fn admit<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        api: &Api,
        caller: Caller<'_>,
        groups: &[String],
        agent_values: &[(String, String)],
    ) -> Verdict {
        let verified = match caller {
            Caller::Proof(v) => v,
            Caller::Password(subject) => {
                return self.forward(host, state, api, subject, groups, agent_values);
            }
        };
        if let Err(denial) = self.claim(host, state, verified) {
            self.deny(host, denial, Some(&verified.subject));
            return Verdict::Pause;
        }
        if state.config.replay.scope == ReplayScope::Fleet {
            return self.claim_fleet(host, state, verified, groups, agent_values);
        }
        self.forward(host, state, api, &verified.subject, groups, agent_values)
    }

    /// Sends a claimed request upstream: strips the proof and client copies of managed headers,
    /// injects the API's values (`agent_values`: from the agent).
    pub(super) fn forward<H: HttpHost>(
        &self,
        host: &H,
        state: &State,
        api: &Api,
        subject: &str,
        groups: &[String],
        agent_values: &[(String, String)],
    ) -> Verdict {
        // The proof and any client copy of a header the filter manages never go upstream. Every
        // edit is tried; if the host refused one, the request does not go upstream half-edited.
        let mut edited = host
            .set_request_header(&state.config.proof_header, None)
            .is_ok();
        for name in &self.strip {
            edited &= host.set_request_header(name, None).is_ok();
        }
        for (name, value) in api.inject.iter().chain(agent_values) {
            edited &= host.set_request_header(name, Some(value)).is_ok();
        }
        if let Some(name) = &api.subject_header {
            edited &= host.set_request_header(name, Some(subject)).is_ok();
        }
        if let Some(name) = &api.groups_header {
            edited &= host
                .set_request_header(name, Some(&groups.join(",")))
                .is_ok();
        }
        if !edited {
            self.deny(host, Denial::Unavailable(Unavailable::Host), Some(subject));
            return Verdict::Pause;
        }
        state.count(host, Counter::Allowed);
        Verdict::Continue
    }
}
