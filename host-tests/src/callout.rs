//! What a filter's HTTP callout sends and what the scripted or real cluster answers: shared by
//! the callout hostcalls (`http_call`) and the real HTTP client (`http_client`).

use std::time::Duration;

/// A callout as the filter dispatched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    /// The Envoy cluster named by the filter.
    pub cluster: String,
    /// The headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The timeout the filter asked for.
    pub timeout: Duration,
}

impl CalloutRequest {
    /// The first value of a header (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a scripted cluster answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutReply {
    /// The HTTP status, delivered as the `:status` pseudo-header.
    pub status: u16,
    /// Response headers (the harness adds `:status` first), as bytes: a server may send any.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The response body.
    pub body: Vec<u8>,
}

impl CalloutReply {
    /// A reply with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name.as_bytes(), value.as_bytes())
    }

    /// Adds a header whose name and value are any bytes.
    pub fn header_bytes(mut self, name: &[u8], value: &[u8]) -> Self {
        self.headers.push((name.to_vec(), value.to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}
