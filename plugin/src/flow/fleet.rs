//! The fleet claim (`replay.scope: "fleet"`): a request allowed and claimed locally asks the
//! agent to claim its nonce in the fleet's Redis, and goes upstream only once the fleet says the
//! nonce is new. What the answer means is [`crate::fleet`]'s; what a failure does is
//! `replay.on_fleet_failure`'s.

use std::time::Duration;

use autoid_protocol::Reject;
use autoid_protocol::config::FleetFailure;
use autoid_protocol::directory::REPLAY_PATH;
use autoid_protocol::verify::Verified;

use super::{Flow, Pending};
use crate::fleet::{Answer, answer, claim_body};
use crate::host::{HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Forbid, Unavailable};
use crate::worker::State;

/// A request allowed and claimed locally: its proof, its groups, the agent's header values.
type Claimed<'a> = (&'a Verified, &'a [String], &'a [(String, String)]);

impl Flow {
    /// Sends the fleet claim of a locally claimed nonce: `Pause` until the agent answers, or
    /// the failure policy when the callout cannot be sent.
    pub(super) fn claim_fleet<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        verified: &Verified,
        groups: &[String],
        values: &[(String, String)],
    ) -> Verdict {
        let Some(agent) = &state.config.agent else {
            // Configuration guarantees an agent in fleet scope; fail closed all the same.
            self.deny(
                host,
                Denial::Unavailable(Unavailable::ReplayFleet),
                Some(&verified.subject),
            );
            return Verdict::Pause;
        };
        let expires = verified
            .timestamp
            .saturating_add(state.config.limits.max_skew_secs + 1);
        let body = claim_body(&verified.nonce, expires);
        let timeout = Duration::from_millis(state.config.replay.fleet_timeout_ms);
        if !self.post_to_agent_within(host, agent, REPLAY_PATH, &body, timeout) {
            return self.fleet_failed(host, state, (verified, groups, values));
        }
        state.count(host, Counter::ReplayFleetClaims);
        self.pending = Pending::Fleet {
            verified: verified.clone(),
            groups: groups.to_vec(),
            values: values.to_vec(),
        };
        Verdict::Pause
    }

    /// The agent answered the fleet claim: upstream when the nonce is new to the fleet, 401
    /// `replay` when another replica (or this one, before a restart) claimed it, else the
    /// failure policy.
    pub(super) fn fleet_answer<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        claimed: Claimed<'_>,
        status: Option<u32>,
        body: &[u8],
    ) -> Verdict {
        let verified = claimed.0;
        match answer(status, body) {
            Answer::Claimed => self.forward_claimed(host, state, claimed),
            Answer::Replay => {
                state.count(host, Counter::ReplaysRejected);
                self.deny(
                    host,
                    Denial::Unauthorized(Reject::Replay),
                    Some(&verified.subject),
                );
                Verdict::Pause
            }
            Answer::Failed => {
                host.log(
                    Level::Warn,
                    &format!(
                        "autoid: fleet replay claim failed (status {}) request_id={}",
                        status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                        self.request_id
                    ),
                );
                self.fleet_failed(host, state, claimed)
            }
        }
    }

    /// The fleet did not answer usably: 503 `replay_fleet` (the default), or, when the
    /// operator opted in (`on_fleet_failure: "local"`), the local claim alone decides.
    fn fleet_failed<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        claimed: Claimed<'_>,
    ) -> Verdict {
        let verified = claimed.0;
        state.count(host, Counter::ReplayFleetFailures);
        match state.config.replay.on_fleet_failure {
            FleetFailure::Deny => {
                self.deny(
                    host,
                    Denial::Unavailable(Unavailable::ReplayFleet),
                    Some(&verified.subject),
                );
                Verdict::Pause
            }
            FleetFailure::Local => {
                state.count(host, Counter::ReplayFleetDegraded);
                if state.degraded_log_due(host.now_ms() / 1000) {
                    host.log(
                        Level::Warn,
                        "autoid: fleet replay unavailable: accepting on the local replay check alone (replay.on_fleet_failure \"local\"; a proof may be accepted once per replica meanwhile)",
                    );
                }
                self.forward_claimed(host, state, claimed)
            }
        }
    }

    /// Sends a request the fleet (or the fallback) let through upstream, with what it was
    /// allowed with.
    fn forward_claimed<H: HttpHost>(
        &self,
        host: &H,
        state: &State,
        claimed: Claimed<'_>,
    ) -> Verdict {
        let (verified, groups, values) = claimed;
        let Some(api) = state.config.apis.get(&self.route) else {
            self.deny(
                host,
                Denial::Forbidden(Forbid::UnknownRoute),
                Some(&verified.subject),
            );
            return Verdict::Pause;
        };
        self.forward(host, state, api, &verified.subject, groups, values)
    }
}
