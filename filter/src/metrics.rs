//! The filter's counters, defined once per worker at configure time.

use std::collections::HashMap;

use crate::host::Host;
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
    /// Nonces claimed into a replay bucket at least three quarters full.
    ReplayNearFull,
    /// Fleet replay claims sent to the agent (`replay.scope: "fleet"`).
    ReplayFleetClaims,
    /// Fleet replay batches sent to the agent: claims / batches is the mean batch size.
    ReplayFleetBatches,
    /// Fleet replay claims that failed (no usable answer, or not dispatched).
    ReplayFleetFailures,
    /// Requests let through on the local check alone while the fleet failed (opt-in).
    ReplayFleetDegraded,
    /// Callouts to the agent.
    DirectoryCallouts,
    /// Decisions answered from the cache.
    DirectoryCacheHits,
    /// Callouts that failed (timeout, status, malformed reply).
    DirectoryFailures,
    /// Stale decisions served because the agent failed.
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
    /// Requests whose agent-supplied credentials came from the cache (fresh).
    CredentialsCacheHits,
    /// Requests that waited for a credentials callout (nothing usable cached).
    CredentialsCallouts,
    /// Background refreshes of cached credentials (the root context's tick).
    CredentialsRefreshes,
    /// Credentials callouts or refreshes that failed (no answer, status, malformed reply).
    CredentialsFailures,
    /// Requests served expired credentials within the stale window.
    CredentialsStaleServed,
    /// HTTP Basic passwords sent to the agent to bind.
    BasicBinds,
    /// HTTP Basic passwords decided by a bind the worker remembered.
    BasicCacheHits,
    /// HTTP Basic checks the agent did not answer usably (not dispatched, timeout, status).
    BasicFailures,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 29] = [
        Counter::Allowed,
        Counter::Denied,
        Counter::SessionHitLocal,
        Counter::SessionHitShared,
        Counter::SessionMiss,
        Counter::RsaUnwraps,
        Counter::ReplaysRejected,
        Counter::ReplayNearFull,
        Counter::ReplayFleetClaims,
        Counter::ReplayFleetBatches,
        Counter::ReplayFleetFailures,
        Counter::ReplayFleetDegraded,
        Counter::DirectoryCallouts,
        Counter::DirectoryCacheHits,
        Counter::DirectoryFailures,
        Counter::DirectoryStaleServed,
        Counter::EntropyFilesKept,
        Counter::AgentSessionCallouts,
        Counter::AgentSessionFailures,
        Counter::AgentStreamCallouts,
        Counter::AgentStreamFailures,
        Counter::CredentialsCacheHits,
        Counter::CredentialsCallouts,
        Counter::CredentialsRefreshes,
        Counter::CredentialsFailures,
        Counter::CredentialsStaleServed,
        Counter::BasicBinds,
        Counter::BasicCacheHits,
        Counter::BasicFailures,
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
            Counter::ReplayNearFull => "autoid_replay_near_full",
            Counter::ReplayFleetClaims => "autoid_replay_fleet_claims",
            Counter::ReplayFleetBatches => "autoid_replay_fleet_batches",
            Counter::ReplayFleetFailures => "autoid_replay_fleet_failures",
            Counter::ReplayFleetDegraded => "autoid_replay_fleet_degraded",
            Counter::DirectoryCallouts => "autoid_directory_callouts",
            Counter::DirectoryCacheHits => "autoid_directory_cache_hits",
            Counter::DirectoryFailures => "autoid_directory_failures",
            Counter::DirectoryStaleServed => "autoid_directory_stale_served",
            Counter::EntropyFilesKept => "autoid_entropy_files_kept",
            Counter::AgentSessionCallouts => "autoid_agent_session_callouts",
            Counter::AgentSessionFailures => "autoid_agent_session_failures",
            Counter::AgentStreamCallouts => "autoid_agent_stream_callouts",
            Counter::AgentStreamFailures => "autoid_agent_stream_failures",
            Counter::CredentialsCacheHits => "autoid_credentials_cache_hits",
            Counter::CredentialsCallouts => "autoid_credentials_callouts",
            Counter::CredentialsRefreshes => "autoid_credentials_refreshes",
            Counter::CredentialsFailures => "autoid_credentials_failures",
            Counter::CredentialsStaleServed => "autoid_credentials_stale_served",
            Counter::BasicBinds => "autoid_basic_binds",
            Counter::BasicCacheHits => "autoid_basic_cache_hits",
            Counter::BasicFailures => "autoid_basic_failures",
        }
    }
}

/// The per-reason denial counter's name.
pub fn denied_name(denial: Denial) -> String {
    format!("autoid_denied_{}", denial.reason())
}

/// The host's ids of the counters a worker defined.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    /// Defines every counter named.
    pub fn define<'a, H: Host + ?Sized>(
        host: &H,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Metrics {
        let mut ids = HashMap::new();
        for name in names {
            if let Some(id) = host.define_counter(name) {
                ids.insert(name.to_owned(), id);
            }
        }
        Metrics { ids }
    }

    /// Adds `n` to a counter (unknown names are ignored).
    pub fn add<H: Host + ?Sized>(&self, host: &H, name: &str, n: u64) {
        if let Some(id) = self.ids.get(name) {
            host.add_to_counter(*id, n);
        }
    }
}
