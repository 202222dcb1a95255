//! `replay`: the replay cache's sizes and where a nonce must be unique.

use super::check::positive;
use super::error::{ConfigError, err};
use super::raw::RawReplay;

/// The replay cache: per generation (of a ring of 16, each a few seconds of traffic),
/// `buckets` shared-data keys of at most `slots_per_bucket` nonces each; and, in fleet scope, a
/// claim in the fleet's Redis through the agent after the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Shared-data keys per generation.
    pub buckets: u32,
    /// Nonces per key; a bucket full of its generation's nonces fails closed.
    pub slots_per_bucket: u32,
    /// Where a nonce must be unique.
    pub scope: ReplayScope,
    /// How long the fleet claim may take (the agent's callout), in milliseconds.
    pub fleet_timeout_ms: u64,
    /// What a request gets when the fleet claim fails.
    pub on_fleet_failure: FleetFailure,
    /// Local scope: proofs made before this Envoy process started are refused (a restart would
    /// otherwise accept again every proof the old process accepted within the skew window).
    pub restart_fence: bool,
}

/// Where a nonce must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayScope {
    /// In this Envoy process (every worker; shared data).
    Local,
    /// Across every gateway sharing the agent's Redis: claimed there after the local check.
    Fleet,
}

/// What a request gets when the fleet claim fails (Redis or the agent down or slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetFailure {
    /// 503 (fail closed): the default.
    Deny,
    /// The local claim alone decides (counted in `autoid_replay_fleet_degraded`, logged): a
    /// proof may then be accepted once per replica.
    Local,
}

/// Default of `replay.fleet_timeout_ms`: above the agent's own Redis timeout (100 ms).
pub const DEFAULT_FLEET_TIMEOUT_MS: u64 = 250;

/// `replay`; fleet scope needs the agent.
pub(super) fn replay(raw: RawReplay, has_agent: bool) -> Result<ReplayConfig, ConfigError> {
    let replay = ReplayConfig {
        buckets: positive("replay.buckets", raw.buckets, 4096, 1 << 20)?,
        slots_per_bucket: positive("replay.slots_per_bucket", raw.slots_per_bucket, 256, 4096)?,
        scope: match raw.scope.as_deref() {
            None | Some("local") => ReplayScope::Local,
            Some("fleet") => ReplayScope::Fleet,
            Some(other) => {
                return Err(err(
                    "replay.scope",
                    format!("{other:?}: expected \"local\" or \"fleet\""),
                ));
            }
        },
        fleet_timeout_ms: match raw.fleet_timeout_ms {
            None => DEFAULT_FLEET_TIMEOUT_MS,
            Some(ms @ 1..=10_000) => ms,
            Some(ms) => {
                return Err(err(
                    "replay.fleet_timeout_ms",
                    format!("{ms} is out of range (1 to 10000)"),
                ));
            }
        },
        on_fleet_failure: match raw.on_fleet_failure.as_deref() {
            None | Some("deny") => FleetFailure::Deny,
            Some("local") => FleetFailure::Local,
            Some(other) => {
                return Err(err(
                    "replay.on_fleet_failure",
                    format!("{other:?}: expected \"deny\" or \"local\""),
                ));
            }
        },
        restart_fence: raw.restart_fence.unwrap_or(true),
    };
    if replay.scope == ReplayScope::Fleet && !has_agent {
        return Err(err(
            "replay.scope",
            "\"fleet\" claims nonces through the agent: configure `agent`",
        ));
    }

    Ok(replay)
}
