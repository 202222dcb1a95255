//! A recording host for native tests: it plays one request (headers, body, route, peer, a
//! callout's answer) over an in-memory store and keeps what the filter asked of it (header
//! edits, local replies, callouts, logs, counters). For requests that wait together (fleet
//! batches) it holds several requests by context id, one of them current, and switches between
//! them as Envoy's effective context does; the root context is [`ROOT`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: failing loudly is the point

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::headers::Header;
use crate::host::{Host, HostError, HttpHost, Level};
use crate::store::Store;
use crate::store::memory::MemoryStore;

/// The start of the host's clock (Unix seconds).
pub const START_SECS: u64 = 1_800_000_000;
/// The root context's id.
pub const ROOT: u32 = 0;
/// The one shared queue the fake host registers.
pub const QUEUE: u32 = 7;

/// A request the fake host holds while another is current.
#[derive(Debug, Default)]
pub struct Parked {
    headers: Vec<(String, String)>,
    replies: Vec<Reply>,
}

/// The authority requests are made to.
pub const AUTHORITY: &str = "api.example.com";

/// A callout the filter dispatched.
#[derive(Debug)]
pub struct Callout {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Callout {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local reply the filter sent.
#[derive(Debug)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Every value of the header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A host that plays one request and records what the filter asked of it.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub now_ms: Cell<u64>,
    pub route: Option<String>,
    /// The client's address (`ip:port`); tests may move it between requests.
    pub source: RefCell<Option<String>>,
    /// Whether the downstream connection is TLS.
    pub tls: bool,
    /// The request headers as they stand (edited by the filter).
    pub headers: RefCell<Vec<(String, String)>>,
    /// Headers the request carries after `headers` that are not text (any bytes a client sent).
    pub raw_headers: RefCell<Vec<Header>>,
    pub body: RefCell<Vec<u8>>,
    pub store: MemoryStore,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub replies: RefCell<Vec<Reply>>,
    pub callouts: RefCell<Vec<Callout>>,
    /// The reply the next callout answer carries: status and body.
    pub answer: RefCell<(Option<u32>, Vec<u8>)>,
    pub refuse_dispatch: bool,
    pub refuse_edits: bool,
    pub counters: RefCell<Vec<(String, u64)>>,
    /// The context the request state above belongs to ([`ROOT`] too for the only request of a
    /// test that never opens another).
    pub current: Cell<u32>,
    /// The other requests, by context id.
    pub parked: RefCell<HashMap<u32, Parked>>,
    /// The contexts resumed with `resume_request`, in order.
    pub resumed: RefCell<Vec<u32>>,
    /// What was enqueued on [`QUEUE`] and not yet dequeued.
    pub queued: RefCell<Vec<Vec<u8>>>,
    pub refuse_enqueue: bool,
}

impl FakeHost {
    pub fn new(route: &str) -> Self {
        FakeHost {
            now_ms: Cell::new(START_SECS * 1000),
            route: Some(route.to_owned()),
            source: RefCell::new(Some("10.0.0.7:50000".to_owned())),
            ..FakeHost::default()
        }
    }

    /// Starts a request: `GET AUTHORITY path` with `extra` headers.
    pub fn request(&self, path: &str, extra: &[(&str, &str)]) {
        let mut headers = vec![
            (":method".to_owned(), "GET".to_owned()),
            (":authority".to_owned(), AUTHORITY.to_owned()),
            (":path".to_owned(), path.to_owned()),
            ("x-request-id".to_owned(), "req-1".to_owned()),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        *self.headers.borrow_mut() = headers;
        self.raw_headers.borrow_mut().clear();
        self.replies.borrow_mut().clear();
    }

    /// Sets the bytes of the request header `name` (every copy), as a client may send them.
    pub fn set_raw(&self, name: &[u8], value: &[u8]) {
        self.headers
            .borrow_mut()
            .retain(|(k, _)| !k.as_bytes().eq_ignore_ascii_case(name));
        self.raw_headers
            .borrow_mut()
            .push((name.to_vec(), value.to_vec()));
    }

    /// Makes `context` the current request, new and empty (the current one is parked).
    pub fn open(&self, context: u32) {
        self.park();
        self.current.set(context);
    }

    /// The request of `context` ended (the client went away): the host no longer knows it.
    pub fn reset(&self, context: u32) {
        if self.current.get() == context {
            self.headers.borrow_mut().clear();
            self.replies.borrow_mut().clear();
            self.current.set(ROOT);
        } else {
            self.parked.borrow_mut().remove(&context);
        }
    }

    /// Makes `context` current for the test's own assertions.
    pub fn switch(&self, context: u32) {
        self.enter(context).expect("a context the host knows");
    }

    fn park(&self) {
        let parked = Parked {
            headers: std::mem::take(&mut *self.headers.borrow_mut()),
            replies: std::mem::take(&mut *self.replies.borrow_mut()),
        };
        if self.current.get() != ROOT {
            self.parked.borrow_mut().insert(self.current.get(), parked);
        }
    }

    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .borrow()
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// The one local reply sent.
    pub fn reply(&self) -> std::cell::Ref<'_, Reply> {
        let replies = self.replies.borrow();
        assert_eq!(replies.len(), 1, "one local reply: {replies:?}");
        std::cell::Ref::map(replies, |r| &r[0])
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn random(&self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }

    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut counters = self.counters.borrow_mut();
        counters.push((name.to_owned(), 0));
        u32::try_from(counters.len() - 1).ok()
    }

    fn add_to_counter(&self, id: u32, n: u64) {
        self.counters.borrow_mut()[id as usize].1 += n;
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        body: Option<&[u8]>,
        _timeout: Duration,
    ) -> Result<u32, HostError> {
        if self.refuse_dispatch {
            return Err(HostError);
        }
        let mut callouts = self.callouts.borrow_mut();
        callouts.push(Callout {
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
        });
        Ok(u32::try_from(callouts.len()).unwrap())
    }

    fn callout_status(&self) -> Option<u32> {
        self.answer.borrow().0
    }

    fn callout_body(&self, len: usize) -> Option<Vec<u8>> {
        let answer = self.answer.borrow();
        Some(answer.1[..len.min(answer.1.len())].to_vec())
    }

    fn register_queue(&self, _name: &str) -> Option<u32> {
        Some(QUEUE)
    }

    fn enqueue(&self, queue: u32, value: &[u8]) -> Result<(), HostError> {
        if self.refuse_enqueue || queue != QUEUE {
            return Err(HostError);
        }
        self.queued.borrow_mut().push(value.to_vec());
        Ok(())
    }

    fn dequeue(&self, queue: u32) -> Option<Vec<u8>> {
        let mut queued = self.queued.borrow_mut();
        (queue == QUEUE && !queued.is_empty()).then(|| queued.remove(0))
    }

    fn enter(&self, context: u32) -> Result<(), HostError> {
        if context == self.current.get() {
            return Ok(());
        }
        let next = if context == ROOT {
            Parked::default()
        } else {
            self.parked.borrow_mut().remove(&context).ok_or(HostError)?
        };
        self.park();
        *self.headers.borrow_mut() = next.headers;
        *self.replies.borrow_mut() = next.replies;
        self.current.set(context);
        Ok(())
    }
}

impl HttpHost for FakeHost {
    fn request_headers(&self) -> Vec<Header> {
        let text = self.headers.borrow();
        let text = text
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        text.chain(self.raw_headers.borrow().iter().cloned())
            .collect()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        if self.refuse_edits && value.is_some() {
            return Err(HostError);
        }
        self.raw_headers
            .borrow_mut()
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_owned()));
        }
        Ok(())
    }

    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        let body = self.body.borrow();
        Some(body[..len.min(body.len())].to_vec())
    }

    fn resume_request(&self) {
        self.resumed.borrow_mut().push(self.current.get());
    }

    fn send_reply(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) {
        self.replies.borrow_mut().push(Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        });
    }

    fn route_name(&self) -> Option<String> {
        self.route.clone()
    }

    fn source_address(&self) -> Option<String> {
        self.source.borrow().clone()
    }

    fn downstream_tls(&self) -> bool {
        self.tls
    }
}
