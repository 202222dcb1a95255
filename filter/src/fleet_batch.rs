//! Fleet replay (`replay.scope: "fleet"`): after the local claim, the nonce is claimed again in the
//! fleet's Redis through the agent (`POST /v1/replay`), so a proof is accepted once across every
//! gateway replica sharing that Redis, and still refused after any replica restarts.
//!
//! The local table stays the first, cheap filter (a replay on the same Envoy never leaves it);
//! only a nonce new to this Envoy costs the callout. What the callout's answer means is decided
//! here; the request flow sends it and acts on the answer.
//!
//! Claims are batched per worker ([`Batcher`]): at most one claim callout is in flight; claims
//! that arrive meanwhile wait in a queue and go out together, as one batch, the moment the
//! answer comes back. A claim that finds nothing in flight goes out at once (no timer: no added
//! latency at low load). Each callout costs Envoy's worker about the same CPU whatever it
//! carries, so under load the cost per request falls with the batch size.

use std::collections::VecDeque;

use autoid_protocol::agent_api::{
    MAX_REPLAY_BATCH, ReplayBatchReply, ReplayBatchRequest, ReplayRequest, ReplayVerdict,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The fleet's answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// First sighting across the fleet.
    Claimed,
    /// Claimed before, by some replica.
    Replay,
    /// The proof expired before its claim reached the fleet: refused, nothing recorded.
    Stale,
    /// No usable answer (the agent or Redis down or slow, an error status, a malformed reply):
    /// the failure policy decides (`replay.on_fleet_failure`).
    Failed,
}

/// The most claims one batch carries (the agent takes up to
/// [`MAX_REPLAY_BATCH`](autoid_protocol::agent_api::MAX_REPLAY_BATCH)).
pub const MAX_BATCH: usize = 128;
const _: () = assert!(MAX_BATCH <= MAX_REPLAY_BATCH);

/// One request's claim waiting for the fleet: its nonce, its lifetime, and who waits (`W`: how
/// the worker finds the request again when the answer comes).
#[derive(Debug)]
pub struct Waiting<W> {
    pub nonce: [u8; 16],
    /// When the proof turns stale: a claim reaching the fleet at or after it is refused.
    pub expires_at: u64,
    /// Until when the fleet remembers the nonce ([`keep_until`]).
    pub keep_until: u64,
    pub waiter: W,
}

/// Until when the fleet must remember the nonce of a proof made at `timestamp` (Unix seconds,
/// on this replica's clock), for a skew window of `max_skew_secs` each way.
///
/// This replica accepts the proof until `timestamp + skew + 1` (its expiry). A replica whose
/// clock lags this one's by `d` accepts it until `d` later on this clock, and Redis's expiry is
/// counted from this replica's claim, on this replica's clock: so the claim is kept `skew` past
/// the expiry, covering every replica whose clock lags this one's by up to the skew window
/// (docs/FLEET.md, "How long a claim is kept").
pub fn keep_until(timestamp: u64, max_skew_secs: u64) -> u64 {
    timestamp
        .saturating_add(max_skew_secs.saturating_mul(2))
        .saturating_add(1)
}

/// What a claim joining the [`Batcher`] asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Nothing is in flight and nobody asked yet: the caller must get the worker to send the
    /// queue (the root context sends it, so the callout outlives the request that asked).
    Kick,
    /// A batch is in flight or a send is already asked for: the claim goes with the next one.
    Queued,
}

/// A batch sent and not yet answered.
#[derive(Debug)]
struct InFlight<W> {
    token: u32,
    sent_at_ms: u64,
    claims: Vec<Waiting<W>>,
}

/// One worker's fleet claims: those queued and the one batch in flight. Plain bookkeeping: the
/// caller dispatches, answers and resumes.
#[derive(Debug)]
pub struct Batcher<W> {
    queue: VecDeque<Waiting<W>>,
    in_flight: Option<InFlight<W>>,
    /// A send of the queue was asked for and has not happened yet.
    kicked: bool,
}

impl<W> Default for Batcher<W> {
    fn default() -> Self {
        Batcher {
            queue: VecDeque::new(),
            in_flight: None,
            kicked: false,
        }
    }
}

impl<W> Batcher<W> {
    /// Queues a claim: [`Join::Kick`] when the caller must ask for a send.
    pub fn join(&mut self, claim: Waiting<W>) -> Join {
        self.queue.push_back(claim);
        if self.in_flight.is_some() || self.kicked {
            return Join::Queued;
        }
        self.kicked = true;
        Join::Kick
    }

    /// The send asked for by [`Join::Kick`] could not be asked: takes back what waits for it
    /// (nothing else can send it), for the caller to fail.
    pub fn kick_failed(&mut self) -> Vec<Waiting<W>> {
        self.kicked = false;
        if self.in_flight.is_some() {
            return Vec::new();
        }
        self.queue.drain(..).collect()
    }

    /// The next batch to send, when nothing is in flight: up to [`MAX_BATCH`] of the oldest
    /// queued claims whose request is still there (`alive`; the others are dropped unsent).
    pub fn next_batch(&mut self, alive: impl Fn(&W) -> bool) -> Option<Vec<Waiting<W>>> {
        self.kicked = false;
        if self.in_flight.is_some() {
            return None;
        }
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(claim) = self.queue.pop_front() else {
                break;
            };
            if alive(&claim.waiter) {
                batch.push(claim);
            }
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// `claims` went out as the callout `token` at `now_ms`.
    pub fn sent(&mut self, token: u32, now_ms: u64, claims: Vec<Waiting<W>>) {
        self.in_flight = Some(InFlight {
            token,
            sent_at_ms: now_ms,
            claims,
        });
    }

    /// The callout `token` answered: its claims, if it is the batch in flight.
    pub fn answered(&mut self, token: u32) -> Option<Vec<Waiting<W>>> {
        match &self.in_flight {
            Some(f) if f.token == token => self.in_flight.take().map(|f| f.claims),
            _ => None,
        }
    }

    /// The batch in flight, if it was sent more than `after_ms` before `now_ms`: taken back as
    /// failed. A safety net only: the host answers every callout by its timeout, so this finds
    /// something only if an answer got lost.
    pub fn overdue(&mut self, now_ms: u64, after_ms: u64) -> Option<Vec<Waiting<W>>> {
        match &self.in_flight {
            Some(f) if now_ms.saturating_sub(f.sent_at_ms) > after_ms => {
                self.in_flight.take().map(|f| f.claims)
            }
            _ => None,
        }
    }

    /// Whether claims wait to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// The body of a batch: every claim, in order.
pub fn batch_body<W>(claims: &[Waiting<W>]) -> Vec<u8> {
    let request = ReplayBatchRequest {
        claims: claims
            .iter()
            .map(|c| ReplayRequest {
                nonce: URL_SAFE_NO_PAD.encode(c.nonce),
                expires_at: c.expires_at,
                keep_until: Some(c.keep_until),
            })
            .collect(),
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

/// Reads the agent's answer to a batch of `count` claims: 200 with exactly one verdict per claim
/// gives each its own; anything else (an error status, no answer, a malformed or short reply)
/// fails them all.
pub fn batch_answers(status: Option<u32>, body: &[u8], count: usize) -> Vec<Answer> {
    if status == Some(200)
        && let Ok(reply) = serde_json::from_slice::<ReplayBatchReply>(body)
        && reply.verdicts.len() == count
    {
        return reply
            .verdicts
            .into_iter()
            .map(|v| match v {
                ReplayVerdict::Claimed => Answer::Claimed,
                ReplayVerdict::Replay => Answer::Replay,
                ReplayVerdict::Stale => Answer::Stale,
            })
            .collect();
    }
    vec![Answer::Failed; count]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(n: u8) -> Waiting<u8> {
        Waiting {
            nonce: [n; 16],
            expires_at: 1_700_000_061,
            keep_until: 1_700_000_121,
            waiter: n,
        }
    }

    #[test]
    fn one_batch_is_in_flight_and_what_arrives_meanwhile_goes_out_next() {
        let mut b = Batcher::default();
        assert_eq!(b.join(waiting(1)), Join::Kick, "idle: send at once");
        assert_eq!(
            b.join(waiting(2)),
            Join::Queued,
            "a send is already asked for"
        );
        let first = b.next_batch(|_| true).unwrap();
        assert_eq!(first.len(), 2);
        b.sent(7, 0, first);
        assert!(b.next_batch(|_| true).is_none(), "one batch in flight");
        for n in 3..6 {
            assert_eq!(b.join(waiting(n)), Join::Queued);
        }
        assert!(b.answered(8).is_none(), "not the batch in flight");
        assert_eq!(b.answered(7).unwrap().len(), 2);
        // Request 4 was reset while it waited: dropped unsent.
        let next = b.next_batch(|w| *w != 4).unwrap();
        assert_eq!(next.iter().map(|w| w.waiter).collect::<Vec<_>>(), [3, 5]);
        b.sent(9, 1000, next);
        assert!(b.overdue(1500, 1000).is_none());
        assert_eq!(b.overdue(2001, 1000).unwrap().len(), 2);
        assert_eq!(b.join(waiting(6)), Join::Kick, "idle again");
        assert_eq!(b.kick_failed().len(), 1);
        assert!(!b.has_queued());
    }

    #[test]
    fn a_batch_is_at_most_max_batch_claims() {
        let mut b = Batcher::default();
        for n in 0..=u8::try_from(MAX_BATCH).unwrap() {
            b.join(waiting(n));
        }
        assert_eq!(b.next_batch(|_| true).unwrap().len(), MAX_BATCH);
        assert!(b.has_queued());
    }

    #[test]
    fn a_batch_answer_gives_each_claim_its_verdict_or_fails_them_all() {
        let claims = [waiting(1), waiting(2)];
        let body: ReplayBatchRequest = serde_json::from_slice(&batch_body(&claims)).unwrap();
        assert_eq!(body.claims.len(), 2);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&body.claims[1].nonce).unwrap(),
            [2; 16]
        );
        assert_eq!(body.claims[1].keep_until, Some(1_700_000_121));
        let ok = br#"{"verdicts":["claimed","replay"]}"#;
        assert_eq!(
            batch_answers(Some(200), ok, 2),
            [Answer::Claimed, Answer::Replay]
        );
        let stale = br#"{"verdicts":["stale","claimed"]}"#;
        assert_eq!(
            batch_answers(Some(200), stale, 2),
            [Answer::Stale, Answer::Claimed]
        );
        for (status, body) in [
            (Some(200), &br#"{"verdicts":["claimed"]}"#[..]),
            (Some(200), b"not json"),
            (Some(503), br#"{"error":"replay_unavailable"}"#),
            (None, b""),
        ] {
            assert_eq!(batch_answers(status, body, 2), [Answer::Failed; 2]);
        }
    }

    #[test]
    fn a_claim_is_kept_a_skew_window_past_the_proofs_expiry() {
        // Made at 1 000, ±60 s: stale from 1 061 here, accepted until 1 121 (on this clock) by a
        // replica whose clock lags 60 s.
        assert_eq!(keep_until(1_000, 60), 1_121);
        assert_eq!(keep_until(1_000, 1), 1_003);
        assert_eq!(keep_until(u64::MAX - 1, 600), u64::MAX);
    }
}
