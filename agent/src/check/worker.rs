//! One check worker: an OS thread with a current-thread runtime and a `LocalSet`, owning one
//! filter [`Worker`] over a [`NativeHost`], as one Envoy worker owns one VM's root context. It
//! takes checks and reconfigurations from its channel, callout answers and queue wake-ups from
//! the host, and ticks on the filter's period.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use autoid_filter::host::Verdict;
use autoid_filter::{Flow, TICK, Worker};
use axum::Router;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::host::{Described, Event, NativeHost, Outcome, ROOT};
use super::store::{Counters, SharedStore};

/// What a worker is asked.
#[derive(Debug)]
pub enum Job {
    /// Decide this request.
    Check(Described, oneshot::Sender<Outcome>),
    /// Apply this filter configuration (JSON) and the clusters served in-process; answers
    /// whether it applied.
    Configure {
        bytes: Arc<Vec<u8>>,
        clusters: Vec<String>,
        applied: oneshot::Sender<bool>,
    },
}

/// Starts a worker thread named `name`: its job channel.
pub fn spawn(
    name: String,
    store: Arc<SharedStore>,
    counters: Arc<Counters>,
    router: Router,
) -> std::io::Result<mpsc::UnboundedSender<Job>> {
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    std::thread::Builder::new().name(name).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "check worker: no runtime; its checks answer 503");
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, run(jobs, store, counters, router));
    })?;
    Ok(jobs_tx)
}

async fn run(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    store: Arc<SharedStore>,
    counters: Arc<Counters>,
    router: Router,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let host = NativeHost::new(store, counters, router, events_tx);
    let mut worker = Worker::new(ROOT);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(Job::Check(request, done)) => check(&host, &worker, request, done),
                Some(Job::Configure { bytes, clusters, applied }) => {
                    host.enter_root();
                    let mut fresh = Worker::new(ROOT);
                    let ok = fresh.configure(&host, &bytes);
                    if ok {
                        host.set_clusters(clusters);
                        worker = fresh;
                    }
                    let _ = applied.send(ok);
                }
                None => break,
            },
            Some(event) = events.recv() => on_event(&host, &mut worker, event),
            _ = tick.tick() => {
                host.enter_root();
                worker.tick(&host);
            }
        }
        host.settle();
    }
}

/// Plays a request's headers and body to a new flow.
fn check(host: &NativeHost, worker: &Worker, request: Described, done: oneshot::Sender<Outcome>) {
    let flow = Rc::new(RefCell::new(Flow::new(worker.state())));
    let body = !request.body.is_empty();
    let id = host.open(request, flow.clone(), done);
    Flow::attach(&flow, id);
    let verdict = match flow.try_borrow_mut() {
        Ok(mut f) => f.on_request_headers(host, !body),
        Err(_) => return,
    };
    if verdict == Verdict::Continue {
        host.allow(id);
        return;
    }
    if body && host.waiting(id) {
        let len = host.body_len(id);
        let Some(flow) = host.flow_of(id) else {
            return;
        };
        let verdict = match flow.try_borrow_mut() {
            Ok(mut f) => f.on_request_body(host, len, true),
            Err(_) => return,
        };
        if verdict == Verdict::Continue {
            host.allow(id);
        }
    }
}

/// A callout answered or a queue woke the root.
fn on_event(host: &NativeHost, worker: &mut Worker, event: Event) {
    match event {
        Event::Callout {
            token,
            owner,
            status,
            body,
        } => {
            let len = body.len();
            host.deliver(status, body);
            if owner == ROOT {
                host.enter_root();
                worker.on_callout(host, token, len);
            } else if let Some(flow) = host.flow_of(owner) {
                // The proxy-wasm SDK drops an answer whose context is gone: so does this.
                let verdict = match flow.try_borrow_mut() {
                    Ok(mut f) => f.on_callout(host, len),
                    Err(_) => Verdict::Pause,
                };
                if verdict == Verdict::Continue {
                    host.allow(owner);
                }
            }
            host.deliver(None, Vec::new());
        }
        Event::Queue(queue) => {
            host.enter_root();
            worker.on_queue_ready(host, queue);
        }
    }
}
