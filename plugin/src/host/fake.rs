//! A recording host for native tests: it plays one request (headers, body, route, peer, a
//! callout's answer) over an in-memory store and keeps what the filter asked of it (header
//! edits, local replies, callouts, logs, counters).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: failing loudly is the point

use std::cell::{Cell, RefCell};
use std::time::Duration;

use serde_json::Value;

use crate::host::{Host, HostError, HttpHost, Level};
use crate::store::Store;
use crate::store::memory::MemoryStore;

/// The start of the host's clock (Unix seconds).
pub const START_SECS: u64 = 1_800_000_000;
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
    pub source: Option<String>,
    /// Whether the downstream connection is TLS.
    pub tls: bool,
    /// The request headers as they stand (edited by the filter).
    pub headers: RefCell<Vec<(String, String)>>,
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
}

impl FakeHost {
    pub fn new(route: &str) -> Self {
        FakeHost {
            now_ms: Cell::new(START_SECS * 1000),
            route: Some(route.to_owned()),
            source: Some("10.0.0.7:50000".to_owned()),
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
        self.replies.borrow_mut().clear();
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
}

impl HttpHost for FakeHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.headers.borrow().clone()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        if self.refuse_edits && value.is_some() {
            return Err(HostError);
        }
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
        self.source.clone()
    }

    fn downstream_tls(&self) -> bool {
        self.tls
    }
}
