//! What a worker is handed (a request as the gateway sees it) and what becomes of it.

use crate::state::{HeaderMap, Properties};

/// A request as the gateway hands it to a worker.
#[derive(Debug)]
pub(crate) struct StreamInput {
    pub headers: HeaderMap,
    /// The body as it arrives, one `proxy_on_request_body` per chunk (empty: no body).
    pub body: Vec<Vec<u8>>,
    pub trailers: HeaderMap,
    pub properties: Properties,
    pub response_headers: HeaderMap,
    pub response_body: Option<Vec<u8>>,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request went upstream.
    Upstream {
        /// The request headers after the filter ran, pseudo-headers included.
        headers: Vec<(String, String)>,
        /// The request body after the filter ran.
        body: Vec<u8>,
        /// The response headers after the filter ran (`:status` first).
        response_headers: Vec<(String, String)>,
    },
    /// The filter answered with `proxy_send_local_response`.
    LocalReply {
        /// The HTTP status.
        status: u32,
        /// The headers the filter gave.
        headers: Vec<(String, String)>,
        /// The body the filter gave.
        body: Vec<u8>,
        /// The status code details the filter gave.
        details: String,
    },
    /// The filter closed (reset) the stream with `proxy_close_stream`.
    Reset,
    /// The request failed closed: the VM trapped (or was already dead), or the filter left the
    /// request paused with nothing pending.
    FailClosed {
        /// Why.
        reason: String,
    },
    /// The request hangs until Envoy's stream timeout: the filter paused the headers of a
    /// request with more to come, and Envoy (without `allow_on_headers_stop_iteration`)
    /// delivers nothing more until the filter resumes it.
    Stalled {
        /// Where it stopped.
        reason: String,
    },
}

impl Outcome {
    /// The first value of a header: a request header sent upstream, or a local reply header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = match self {
            Outcome::Upstream { headers, .. } | Outcome::LocalReply { headers, .. } => headers,
            _ => return None,
        };
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The local reply's status, if the filter answered.
    pub fn local_status(&self) -> Option<u32> {
        match self {
            Outcome::LocalReply { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request went upstream.
    pub fn is_upstream(&self) -> bool {
        matches!(self, Outcome::Upstream { .. })
    }
}

/// Envoy's own local reply when the data a filter buffers (`StopIterationAndBuffer`) grows past
/// the connection's buffer limit.
pub(crate) fn payload_too_large() -> Outcome {
    Outcome::LocalReply {
        status: 413,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: b"Payload Too Large".to_vec(),
        details: "request_payload_too_large".into(),
    }
}
