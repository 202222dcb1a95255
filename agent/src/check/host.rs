//! The filter's host in the agent: one per check worker thread, what Envoy is to one of its
//! workers. Each check request is a context with its own headers and body; callouts to the
//! filter configuration's agent cluster are served in-process by the agent's router, and their
//! answers come back as [`Event`]s to the context that was current when they were made (the root
//! for fleet batches and credential refreshes, else the request's flow), as proxy-wasm delivers
//! them. Single-threaded (`Rc`, `RefCell`): the worker runs one callback at a time.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoid_filter::Flow;
use autoid_filter::headers::Header;
use autoid_filter::host::{Host, HostError, HttpHost, Level};
use autoid_filter::store::Store;
use axum::Router;
use axum::body::Body;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tracing::{error, info, warn};

use super::store::{Counters, SharedStore};

/// The root context's id.
pub const ROOT: u32 = 0;
/// The most bytes of a callout answer read (the filter reads far less).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What happens to the worker besides new checks: a callout answered, a queue got a value.
#[derive(Debug)]
pub enum Event {
    /// The callout `token`, made from context `owner`, answered (`status` `None`: no answer).
    Callout {
        token: u32,
        owner: u32,
        status: Option<u32>,
        body: Vec<u8>,
    },
    /// Something was enqueued on `queue`.
    Queue(u32),
}

/// A request's outcome.
#[derive(Debug)]
pub enum Outcome {
    /// The request goes on: the headers the filter set, and those it removed.
    Allowed {
        set: Vec<(String, String)>,
        removed: Vec<String>,
    },
    /// The filter answered locally.
    Reply {
        status: u32,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// What the check request gives the flow.
#[derive(Debug)]
pub struct Described {
    /// Headers, pseudo-headers first, as bytes (a client may send any byte).
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub route: String,
    /// `ip:port` (port 0: the gateway sends the address alone).
    pub source: String,
    pub tls: bool,
}

/// One request in the worker.
#[derive(Debug)]
struct Context {
    request: Described,
    /// Headers the filter set, in order (the last value of a name wins).
    set: Vec<(String, String)>,
    /// Headers the filter removed (and did not set again).
    removed: Vec<String>,
    reply: Option<Outcome>,
    resumed: bool,
    flow: Rc<RefCell<Flow>>,
    done: Option<oneshot::Sender<Outcome>>,
}

/// The host of one check worker.
#[derive(Debug, Clone)]
pub struct NativeHost {
    inner: Rc<Inner>,
}

struct Inner {
    store: Arc<SharedStore>,
    counters: Arc<Counters>,
    /// The filter configuration's agent clusters: callouts to them are served by `router`.
    clusters: RefCell<Vec<String>>,
    router: Router,
    events: mpsc::UnboundedSender<Event>,
    current: Cell<u32>,
    contexts: RefCell<HashMap<u32, Context>>,
    next_context: Cell<u32>,
    next_token: Cell<u32>,
    /// The callout answer being delivered.
    answer: RefCell<(Option<u32>, Vec<u8>)>,
    queues: RefCell<HashMap<u32, VecDeque<Vec<u8>>>>,
    queue_names: RefCell<HashMap<String, u32>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("clusters", &self.clusters)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl NativeHost {
    pub fn new(
        store: Arc<SharedStore>,
        counters: Arc<Counters>,
        router: Router,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        NativeHost {
            inner: Rc::new(Inner {
                store,
                counters,
                clusters: RefCell::new(Vec::new()),
                router,
                events,
                current: Cell::new(ROOT),
                contexts: RefCell::new(HashMap::new()),
                next_context: Cell::new(ROOT),
                next_token: Cell::new(0),
                answer: RefCell::new((None, Vec::new())),
                queues: RefCell::new(HashMap::new()),
                queue_names: RefCell::new(HashMap::new()),
            }),
        }
    }

    /// The clusters whose callouts the agent serves itself (none: every callout fails).
    pub fn set_clusters(&self, clusters: Vec<String>) {
        *self.inner.clusters.borrow_mut() = clusters;
    }

    /// Makes the root context current (the worker's own callbacks).
    pub fn enter_root(&self) {
        self.inner.current.set(ROOT);
    }

    /// Opens a context for `request`, current from now on: its id.
    pub fn open(
        &self,
        request: Described,
        flow: Rc<RefCell<Flow>>,
        done: oneshot::Sender<Outcome>,
    ) -> u32 {
        let mut id = self.inner.next_context.get().wrapping_add(1);
        while id == ROOT || self.inner.contexts.borrow().contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.inner.next_context.set(id);
        self.inner.contexts.borrow_mut().insert(
            id,
            Context {
                request,
                set: Vec::new(),
                removed: Vec::new(),
                reply: None,
                resumed: false,
                flow,
                done: Some(done),
            },
        );
        self.inner.current.set(id);
        id
    }

    /// The flow of `context`, made current; `None` when the context is gone.
    pub fn flow_of(&self, context: u32) -> Option<Rc<RefCell<Flow>>> {
        let flow = self.inner.contexts.borrow().get(&context)?.flow.clone();
        self.inner.current.set(context);
        Some(flow)
    }

    /// The request body's length of `context`.
    pub fn body_len(&self, context: u32) -> usize {
        self.inner
            .contexts
            .borrow()
            .get(&context)
            .map_or(0, |c| c.request.body.len())
    }

    /// Whether `context` still waits (no local reply, not resumed).
    pub fn waiting(&self, context: u32) -> bool {
        self.inner
            .contexts
            .borrow()
            .get(&context)
            .is_some_and(|c| c.reply.is_none() && !c.resumed)
    }

    /// The flow let the request of `context` go on.
    pub fn allow(&self, context: u32) {
        if let Some(c) = self.inner.contexts.borrow_mut().get_mut(&context) {
            c.resumed = true;
        }
    }

    /// The answer being delivered to a callout callback.
    pub fn deliver(&self, status: Option<u32>, body: Vec<u8>) {
        *self.inner.answer.borrow_mut() = (status, body);
    }

    /// Answers every decided request and forgets it; forgets those whose caller gave up.
    pub fn settle(&self) {
        let mut contexts = self.inner.contexts.borrow_mut();
        let finished: Vec<u32> = contexts
            .iter()
            .filter(|(_, c)| {
                c.reply.is_some()
                    || c.resumed
                    || c.done.as_ref().is_none_or(oneshot::Sender::is_closed)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in finished {
            let Some(mut c) = contexts.remove(&id) else {
                continue;
            };
            let outcome = match c.reply.take() {
                Some(reply) => reply,
                None if c.resumed => Outcome::Allowed {
                    set: std::mem::take(&mut c.set),
                    removed: std::mem::take(&mut c.removed),
                },
                // The caller gave up: nothing to answer.
                None => continue,
            };
            if let Some(done) = c.done.take() {
                let _ = done.send(outcome);
            }
        }
    }

    /// Runs `f` on the current request's context (`None` at the root, or when it is gone).
    fn with_current<T>(&self, f: impl FnOnce(&mut Context) -> T) -> Option<T> {
        let current = self.inner.current.get();
        if current == ROOT {
            return None;
        }
        self.inner.contexts.borrow_mut().get_mut(&current).map(f)
    }

    /// Serves one callout with the agent's router, then tells the worker.
    async fn serve(
        router: Router,
        request: axum::http::Request<Body>,
        timeout: Duration,
    ) -> (Option<u32>, Vec<u8>) {
        let answered = tokio::time::timeout(timeout, async move {
            let response = router.oneshot(request).await.ok()?;
            let status = u32::from(response.status().as_u16());
            let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
                .await
                .ok()?;
            Some((Some(status), body.to_vec()))
        })
        .await;
        match answered {
            Ok(Some(answer)) => answer,
            // Envoy delivers a failed or timed-out callout with no status and no body.
            Ok(None) | Err(_) => (None, Vec::new()),
        }
    }
}

/// The callout as an HTTP request to the router: pseudo-headers become the request line and
/// `host`.
fn callout_request(
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Option<axum::http::Request<Body>> {
    let mut builder = axum::http::Request::builder();
    for (name, value) in headers {
        builder = match *name {
            ":method" => builder.method(*value),
            ":path" => builder.uri(*value),
            ":authority" => builder.header("host", *value),
            n if n.starts_with(':') => builder,
            n => builder.header(n, *value),
        };
    }
    builder
        .body(Body::from(body.map(<[u8]>::to_vec).unwrap_or_default()))
        .ok()
}

impl Host for NativeHost {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn log(&self, level: Level, message: &str) {
        match level {
            Level::Info => info!(target: "autoid_agent::check", "{message}"),
            Level::Warn => warn!(target: "autoid_agent::check", "{message}"),
            Level::Error => error!(target: "autoid_agent::check", "{message}"),
        }
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        self.inner.counters.define(name)
    }

    fn add_to_counter(&self, id: u32, n: u64) {
        self.inner.counters.add(id, n);
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        if !self.inner.clusters.borrow().iter().any(|c| c == cluster) {
            return Err(HostError);
        }
        let request = callout_request(&headers, body).ok_or(HostError)?;
        let token = self.inner.next_token.get().wrapping_add(1).max(1);
        self.inner.next_token.set(token);
        let owner = self.inner.current.get();
        let router = self.inner.router.clone();
        let events = self.inner.events.clone();
        tokio::task::spawn_local(async move {
            let (status, body) = NativeHost::serve(router, request, timeout).await;
            let _ = events.send(Event::Callout {
                token,
                owner,
                status,
                body,
            });
        });
        Ok(token)
    }

    fn callout_status(&self) -> Option<u32> {
        self.inner.answer.borrow().0
    }

    fn callout_body(&self, len: usize) -> Option<Vec<u8>> {
        let answer = self.inner.answer.borrow();
        Some(answer.1[..len.min(answer.1.len())].to_vec())
    }

    fn register_queue(&self, name: &str) -> Option<u32> {
        let mut names = self.inner.queue_names.borrow_mut();
        let next = u32::try_from(names.len()).ok()?.checked_add(1)?;
        let id = *names.entry(name.to_owned()).or_insert(next);
        self.inner.queues.borrow_mut().entry(id).or_default();
        Some(id)
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        let mut queues = self.inner.queues.borrow_mut();
        let q = queues.get_mut(&queue).ok_or(HostError)?;
        q.push_back(value.to_vec());
        self.inner
            .events
            .send(Event::Queue(queue))
            .map_err(|_| HostError)
    }

    fn dequeue(&self, queue: u32) -> Option<Vec<u8>> {
        self.inner.queues.borrow_mut().get_mut(&queue)?.pop_front()
    }

    fn enter(&self, context: u32) -> Result<(), HostError> {
        if context != ROOT && !self.inner.contexts.borrow().contains_key(&context) {
            return Err(HostError);
        }
        self.inner.current.set(context);
        Ok(())
    }
}

impl HttpHost for NativeHost {
    fn request_headers(&self) -> Vec<Header> {
        self.with_current(|c| {
            let mut headers: Vec<Header> = c
                .request
                .headers
                .iter()
                .filter(|(k, _)| {
                    !c.removed
                        .iter()
                        .any(|r| r.as_bytes().eq_ignore_ascii_case(k))
                        && !c
                            .set
                            .iter()
                            .any(|(s, _)| s.as_bytes().eq_ignore_ascii_case(k))
                })
                .cloned()
                .collect();
            headers.extend(
                c.set
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
            );
            headers
        })
        .unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.with_current(|c| {
            c.set.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            c.removed.retain(|k| !k.eq_ignore_ascii_case(name));
            match value {
                Some(v) => c.set.push((name.to_ascii_lowercase(), v.to_owned())),
                None => c.removed.push(name.to_ascii_lowercase()),
            }
        })
        .ok_or(HostError)
    }

    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        self.with_current(|c| c.request.body[..len.min(c.request.body.len())].to_vec())
    }

    fn resume_request(&self) {
        self.with_current(|c| c.resumed = true);
    }

    fn send_reply(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        self.with_current(|c| {
            if c.reply.is_none() {
                c.reply = Some(Outcome::Reply {
                    status,
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    body: body.to_vec(),
                });
            }
        });
    }

    fn route_name(&self) -> Option<String> {
        self.with_current(|c| c.request.route.clone())
            .filter(|r| !r.is_empty())
    }

    fn source_address(&self) -> Option<String> {
        self.with_current(|c| c.request.source.clone())
    }

    fn downstream_tls(&self) -> bool {
        self.with_current(|c| c.request.tls).unwrap_or(false)
    }
}
