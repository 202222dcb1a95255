//! The clusters that answer a filter's callouts, and the records of the callouts made.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::callout::{CalloutReply, CalloutRequest};

/// A scripted cluster's handler.
pub type CalloutHandler = Arc<dyn Fn(&CalloutRequest) -> CalloutReply + Send + Sync>;

/// A routed cluster's choice: which cluster answers this callout.
pub type CalloutRoute = Arc<dyn Fn(&CalloutRequest) -> Cluster + Send + Sync>;

/// How the callouts to one cluster are answered.
#[derive(Clone)]
pub enum Cluster {
    /// By a closure.
    Scripted(CalloutHandler),
    /// By a real HTTP/1.1 server at this address; the callout's timeout is honoured in real time.
    Http(SocketAddr),
    /// By a real HTTP/1.1 server on this unix socket (Envoy's `pipe` cluster address).
    Unix(std::path::PathBuf),
    /// Never: every callout fails as an Envoy timeout does (no headers, no body). The virtual
    /// clock does not move.
    Timeout,
    /// By the cluster the closure picks for each callout (one service whose routes are answered
    /// by different parts, e.g. the agent's key plane and a script for its other routes).
    Routed(CalloutRoute),
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cluster::Scripted(_) => f.write_str("Scripted(..)"),
            Cluster::Http(address) => write!(f, "Http({address})"),
            Cluster::Unix(path) => write!(f, "Unix({})", path.display()),
            Cluster::Timeout => f.write_str("Timeout"),
            Cluster::Routed(_) => f.write_str("Routed(..)"),
        }
    }
}

/// How a callout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutResult {
    /// The cluster answered with this status.
    Replied {
        /// The HTTP status.
        status: u16,
    },
    /// The callout failed (timeout, connection error); the filter saw no headers and no body.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One callout a filter made, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRecord {
    /// The worker whose VM dispatched it.
    pub worker: usize,
    /// The cluster.
    pub cluster: String,
    /// The headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The timeout the filter asked for, in milliseconds.
    pub timeout_ms: u32,
    /// How it ended; `None` while unanswered (or if the VM trapped before it was answered).
    pub result: Option<CalloutResult>,
}

impl CalloutRecord {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A dispatched callout waiting for its answer.
#[derive(Debug)]
pub(crate) struct PendingCallout {
    pub token: u32,
    pub record: usize,
    pub cluster: Cluster,
    pub request: CalloutRequest,
}
