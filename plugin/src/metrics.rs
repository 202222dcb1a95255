//! The filter's counters, defined once per worker at configure time.

use crate::reply::Denial;

/// Counters other than the per-reason denials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests that went upstream.
    Allowed,
    /// Requests denied (any reason; per reason in `autoid_denied_<reason>`).
    Denied,
    /// Sessions found in this worker's map.
    SessionHitLocal,
    /// Sessions found in shared data.
    SessionHitShared,
    /// Sessions not cached.
    SessionMiss,
    /// RSA-OAEP unwraps performed.
    RsaUnwraps,
    /// Replays rejected.
    ReplaysRejected,
    /// Callouts to the directory bridge.
    DirectoryCallouts,
    /// Decisions answered from the cache.
    DirectoryCacheHits,
    /// Callouts that failed (timeout, status, malformed reply).
    DirectoryFailures,
    /// Stale decisions served because the bridge failed.
    DirectoryStaleServed,
    /// Hot subjects' entropy files materialized in a worker's memory.
    EntropyFilesKept,
    /// Sessions sent to the agent to unwrap.
    AgentSessionCallouts,
    /// Agent session callouts that failed (no answer, overload, malformed reply).
    AgentSessionFailures,
    /// Subject keys asked of the agent (epochs it holds).
    AgentStreamCallouts,
    /// Agent subject-key callouts that failed (no answer, an error status, malformed reply).
    AgentStreamFailures,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 16] = [
        Counter::Allowed,
        Counter::Denied,
        Counter::SessionHitLocal,
        Counter::SessionHitShared,
        Counter::SessionMiss,
        Counter::RsaUnwraps,
        Counter::ReplaysRejected,
        Counter::DirectoryCallouts,
        Counter::DirectoryCacheHits,
        Counter::DirectoryFailures,
        Counter::DirectoryStaleServed,
        Counter::EntropyFilesKept,
        Counter::AgentSessionCallouts,
        Counter::AgentSessionFailures,
        Counter::AgentStreamCallouts,
        Counter::AgentStreamFailures,
    ];

    /// The metric name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Allowed => "autoid_requests_allowed",
            Counter::Denied => "autoid_requests_denied",
            Counter::SessionHitLocal => "autoid_session_cache_hit_local",
            Counter::SessionHitShared => "autoid_session_cache_hit_shared",
            Counter::SessionMiss => "autoid_session_cache_miss",
            Counter::RsaUnwraps => "autoid_rsa_unwraps",
            Counter::ReplaysRejected => "autoid_replays_rejected",
            Counter::DirectoryCallouts => "autoid_directory_callouts",
            Counter::DirectoryCacheHits => "autoid_directory_cache_hits",
            Counter::DirectoryFailures => "autoid_directory_failures",
            Counter::DirectoryStaleServed => "autoid_directory_stale_served",
            Counter::EntropyFilesKept => "autoid_entropy_files_kept",
            Counter::AgentSessionCallouts => "autoid_agent_session_callouts",
            Counter::AgentSessionFailures => "autoid_agent_session_failures",
            Counter::AgentStreamCallouts => "autoid_agent_stream_callouts",
            Counter::AgentStreamFailures => "autoid_agent_stream_failures",
        }
    }
}

/// The per-reason denial counter's name.
pub fn denied_name(denial: Denial) -> String {
    format!("autoid_denied_{}", denial.reason())
}
