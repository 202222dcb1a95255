//! The fleet claim (`replay.scope: "fleet"`): a request allowed and claimed locally asks the
//! agent to claim its nonce in the fleet's Redis, and goes upstream only once the fleet says the
//! nonce is new. What the answer means is [`crate::fleet_batch`]'s; what a failure does is
//! `replay.on_fleet_failure`'s.
//!
//! Claims are batched per worker ([`crate::fleet_batch::Batcher`]). A request joins the worker's
//! queue and pauses. The batch is always sent from the root context — on the root's
//! `on_queue_ready` after a request kicked the worker's shared queue, or right after the
//! previous batch answered — because the proxy-wasm Rust SDK routes a callout's answer to the
//! context that was running when it was dispatched, and drops it if that context is gone: a
//! batch sent from the request that happened to trigger it would be lost with that request.
//! (Envoy itself makes every callout the root context's: proxy-wasm-cpp-host's `http_call`
//! dispatches on `root_context()`, so none is cancelled when a stream ends.) When the answer
//! comes, the root enters each waiting request's context (`set_effective_context`) and lets it
//! go upstream or answers it locally; a request that ended meanwhile is skipped.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use autoid_protocol::Reject;
use autoid_protocol::agent_api::REPLAY_PATH;
use autoid_protocol::config::FleetFailure;
use autoid_protocol::verify::Verified;

use super::{Flow, Pending};
use crate::callout::{self, agent_headers, bearer};
use crate::fleet_batch::{Answer, Batcher, Join, Waiting, batch_answers, batch_body, keep_until};
use crate::host::{Host, HttpHost, Level, Verdict};
use crate::metrics::Counter;
use crate::reply::{Denial, Unavailable};
use crate::state::State;

/// What a request enqueues to wake the root. Not empty: the SDK reads an empty value dequeued as
/// none, which would end the drain with the queue still holding kicks.
const KICK: &[u8] = b"k";
/// The most kicks the root drains per wake-up (each wake-up is for one kick; a bound all the same).
const MAX_KICKS_DRAINED: usize = 1024;

/// A request allowed and claimed locally: its proof, its groups, the agent's header values.
type Claimed<'a> = (&'a Verified, &'a [String], &'a [(String, String)]);

/// How the worker finds a request waiting for the fleet again: its context id (to enter it) and
/// its flow (gone once the proxy deleted the context).
#[derive(Debug, Clone)]
pub struct Waiter {
    context: u32,
    flow: Weak<RefCell<Flow>>,
}

/// A fleet claim waiting in the worker's batcher.
pub type FleetClaim = Waiting<Waiter>;

/// The fleet claims of one worker's requests (fleet scope): queued, and the batch in flight. The
/// worker owns it and shares it with each request ([`super::Shared`]); a request joins it, the
/// root context sends and answers its batches.
#[derive(Debug)]
pub struct FleetClaims {
    batcher: RefCell<Batcher<Waiter>>,
    /// The shared queue whose `on_queue_ready` wakes the root to send the claims.
    queue: u32,
    /// When the degraded fleet replay was last logged (Unix seconds): at most once a second.
    degraded_logged_at: Cell<u64>,
}

impl Flow {
    /// Lets the worker find `flow` (the request of `context`) when its fleet claim is answered.
    pub fn attach(flow: &Rc<RefCell<Flow>>, context: u32) {
        if let Ok(mut f) = flow.try_borrow_mut() {
            f.waiter = Some(Waiter {
                context,
                flow: Rc::downgrade(flow),
            });
        }
    }

    /// Queues the fleet claim of a locally claimed nonce and pauses until the batch carrying it
    /// is answered; the failure policy when it cannot be queued.
    pub(super) fn claim_fleet<H: HttpHost>(
        &mut self,
        host: &H,
        state: &State,
        verified: &Verified,
        groups: &[String],
        values: &[(String, String)],
    ) -> Verdict {
        let (Some(waiter), Some(fleet)) = (self.waiter.clone(), self.fleet.clone()) else {
            // Configuration guarantees an agent (and the worker a queue) in fleet scope, and
            // the proxy context attaches every flow; fail closed all the same.
            self.deny(
                host,
                Denial::Unavailable(Unavailable::ReplayFleet),
                Some(&verified.subject),
            );
            return Verdict::Pause;
        };
        let skew = state.config.limits.max_skew_secs;
        let claim = Waiting {
            nonce: verified.nonce,
            expires_at: verified.timestamp.saturating_add(skew + 1),
            keep_until: keep_until(verified.timestamp, skew),
            waiter,
        };
        let join = fleet.batcher.borrow_mut().join(claim);
        state.count(host, Counter::ReplayFleetClaims);
        if join == Join::Kick && host.enqueue(fleet.queue, KICK).is_err() {
            host.log(
                Level::Warn,
                "autoid: fleet replay: the worker's queue refused the kick",
            );
            // Nothing is in flight: what waits is this claim alone (an earlier one would have
            // kicked, and been taken back the same way).
            fleet.batcher.borrow_mut().kick_failed();
            return self.fleet_failed(host, state, (verified, groups, values));
        }
        self.pending = Pending::Fleet {
            verified: verified.clone(),
            groups: groups.to_vec(),
            values: values.to_vec(),
        };
        Verdict::Pause
    }

    /// The fleet decided this request's claim (the root context entered it): upstream when the
    /// nonce is new to the fleet, 401 `replay` when another replica (or this one, before a
    /// restart) claimed it, 401 `stale` when the proof expired before its claim reached the
    /// fleet (refused, never won unrecorded), else the failure policy. `Pause` too when nothing was waiting.
    fn fleet_decided<H: HttpHost>(&mut self, host: &H, answer: Answer, status: &str) -> Verdict {
        let Some(state) = self.state.clone() else {
            return Verdict::Pause;
        };
        let Pending::Fleet {
            verified,
            groups,
            values,
        } = std::mem::take(&mut self.pending)
        else {
            return Verdict::Pause;
        };
        let claimed = (&verified, groups.as_slice(), values.as_slice());
        match answer {
            Answer::Claimed => self.forward_claimed(host, &state, claimed),
            Answer::Replay => {
                state.count(host, Counter::ReplaysRejected);
                self.deny(
                    host,
                    Denial::Unauthorized(Reject::Replay),
                    Some(&verified.subject),
                );
                Verdict::Pause
            }
            Answer::Stale => {
                self.deny(
                    host,
                    Denial::Unauthorized(Reject::Stale),
                    Some(&verified.subject),
                );
                Verdict::Pause
            }
            Answer::Failed => {
                host.log(
                    Level::Warn,
                    &format!(
                        "autoid: fleet replay claim failed ({status}) request_id={}",
                        self.request_id
                    ),
                );
                self.fleet_failed(host, &state, claimed)
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
                let now = host.now_ms() / 1000;
                if self.fleet.as_ref().is_some_and(|f| f.degraded_log_due(now)) {
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
        let Some(api) = self.route_api(host, state, &self.route, &verified.subject) else {
            return Verdict::Pause;
        };
        self.forward(host, state, api, &verified.subject, groups, values)
    }
}

/// The worker's side of the batches, run in the root context.
impl FleetClaims {
    /// The claims of a worker in fleet scope, with the worker's own shared queue: `None`, logged,
    /// when the host gives none.
    pub fn new<H: Host>(host: &H) -> Option<FleetClaims> {
        // The queue's name is this worker's alone: Envoy keys queues by VM id and name across
        // every worker, and the last to register a name gets its wake-ups.
        let mut id = [0u8; 8];
        let name = host.random(&mut id).then(|| {
            format!(
                "autoid.fleet.{}",
                id.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        });
        let Some(queue) = name.and_then(|n| host.register_queue(&n)) else {
            host.log(
                Level::Error,
                "autoid: no shared queue for the fleet replay claims at configure",
            );
            return None;
        };
        Some(FleetClaims {
            batcher: RefCell::new(Batcher::default()),
            queue,
            degraded_logged_at: Cell::new(0),
        })
    }

    /// Whether the degraded fleet replay should be logged now (once a second at most), and
    /// notes that it was.
    fn degraded_log_due(&self, now: u64) -> bool {
        let due = self.degraded_logged_at.get() != now;
        self.degraded_logged_at.set(now);
        due
    }

    /// Sends the queued claims, as many batches as it takes to empty the queue while none is
    /// in flight (one, unless a dispatch fails). Call it from the root context only.
    pub fn send<H: HttpHost>(&self, host: &H, state: &State, root: u32) {
        let Some(agent) = &state.config.agent else {
            return;
        };
        let timeout = Duration::from_millis(state.config.replay.fleet_timeout_ms);
        loop {
            let next = self
                .batcher
                .borrow_mut()
                .next_batch(|w| w.flow.strong_count() > 0);
            let Some(batch) = next else {
                return;
            };
            let body = batch_body(&batch);
            let auth = bearer(agent);
            let mut headers = agent_headers(agent, "POST", REPLAY_PATH, auth.as_deref());
            headers.push(("content-type", "application/json"));
            match host.dispatch(&agent.callout.cluster, headers, Some(&body), timeout) {
                Ok(token) => {
                    state.count(host, Counter::ReplayFleetBatches);
                    self.batcher.borrow_mut().sent(token, host.now_ms(), batch);
                    return;
                }
                Err(_) => {
                    host.log(
                        Level::Warn,
                        &format!(
                            "autoid: fleet replay batch could not be dispatched to cluster {:?}",
                            agent.callout.cluster
                        ),
                    );
                    let failed = vec![Answer::Failed; batch.len()];
                    deliver(host, batch, &failed, "not dispatched");
                    // Back to the root before the next dispatch.
                    let _ = host.enter(root);
                }
            }
        }
    }

    /// A callout answered in the root context: `true` if it was the fleet batch in flight, whose
    /// requests are then decided, and the next batch sent.
    pub fn answered<H: HttpHost>(
        &self,
        host: &H,
        state: &State,
        root: u32,
        token: u32,
        body_size: usize,
    ) -> bool {
        let Some(batch) = self.batcher.borrow_mut().answered(token) else {
            return false;
        };
        let (status, body) = callout::reply(host, body_size);
        let answers = batch_answers(status, &body.unwrap_or_default(), batch.len());
        let status = status.map_or_else(|| "no answer".to_owned(), |s| format!("status {s}"));
        deliver(host, batch, &answers, &status);
        let _ = host.enter(root);
        self.send(host, state, root);
        true
    }

    /// The root's queue woke it up: sends what waits (the kick itself carries nothing).
    pub fn kicked<H: HttpHost>(&self, host: &H, state: &State, root: u32, queue: u32) {
        if self.queue != queue {
            return;
        }
        for _ in 0..MAX_KICKS_DRAINED {
            if host.dequeue(queue).is_none() {
                break;
            }
        }
        self.send(host, state, root);
    }

    /// The tick: a batch unanswered well past its timeout (an answer the host lost) fails, so
    /// the worker's claims never stall behind it.
    pub fn tick<H: HttpHost>(&self, host: &H, state: &State, root: u32) {
        let after = state.config.replay.fleet_timeout_ms.saturating_add(2000);
        let overdue = self.batcher.borrow_mut().overdue(host.now_ms(), after);
        if let Some(batch) = overdue {
            host.log(
                Level::Warn,
                "autoid: fleet replay batch unanswered past its timeout: failed",
            );
            let failed = vec![Answer::Failed; batch.len()];
            deliver(host, batch, &failed, "lost");
            let _ = host.enter(root);
        }
        if self.batcher.borrow().has_queued() {
            self.send(host, state, root);
        }
    }
}

/// Decides every request of a batch with its answer, each in its own context: resumed when it
/// may go upstream. A request the proxy no longer has is skipped.
fn deliver<H: HttpHost>(host: &H, batch: Vec<FleetClaim>, answers: &[Answer], status: &str) {
    for (claim, answer) in batch.into_iter().zip(answers) {
        let Some(flow) = claim.waiter.flow.upgrade() else {
            continue;
        };
        if host.enter(claim.waiter.context).is_err() {
            continue;
        }
        let Ok(mut flow) = flow.try_borrow_mut() else {
            continue;
        };
        if flow.fleet_decided(host, *answer, status) == Verdict::Continue {
            host.resume_request();
        }
    }
}
