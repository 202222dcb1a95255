//! Fleet replay claims in Redis (`POST /v1/replay`): one `SET key 1 NX EX ttl` per nonce (a
//! filter's batch of claims goes out as one pipeline: one round trip), the
//! expiry the proof's remaining validity, so a nonce is claimed once across every gateway replica
//! that shares the Redis, and Redis forgets it when the proof could no longer be accepted anyway.
//!
//! One multiplexed connection per agent ([`redis::aio::ConnectionManager`]): concurrent claims
//! are pipelined on it, and it reconnects by itself after Redis comes back. Keys are
//! `<prefix>:n:<base64url nonce>`, single-key commands only, so they spread over a Redis
//! Cluster's slots. Every claim is bounded by the configured timeout: a Redis that is down or
//! slow answers [`Claim::Unavailable`] (the filter's failure policy decides), never a hang.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Client;
use redis::aio::ConnectionManager;
use tracing::warn;

use crate::config::{ReplayConfig, read_secret};
use crate::error::Error;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sighting across the fleet: recorded until the proof's expiry.
    Fresh,
    /// Claimed before (by any replica), still live.
    Replay,
    /// Redis did not answer within the timeout, or failed.
    Unavailable,
}

/// The fleet's replay store.
pub struct FleetReplay {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Where Redis is, without credentials (for logs).
    endpoint: String,
}

impl std::fmt::Debug for FleetReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetReplay")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FleetReplay {
    /// A store for `config`, with the password read from its `password_file` (if any). Connects
    /// lazily: the agent starts while Redis is down, and claims fail with `Unavailable` until it
    /// is up. Call it within a Tokio runtime (the connection's driver is spawned on it).
    pub fn new(config: &ReplayConfig) -> Result<FleetReplay, Error> {
        let password = match &config.password_file {
            Some(f) => Some(read_secret("the Redis password", f)?),
            None => None,
        };
        let mut info: redis::ConnectionInfo =
            config
                .redis_url
                .as_str()
                .parse()
                .map_err(|e: redis::RedisError| {
                    Error::config("replay.redis_url", &config.redis_url, e.to_string())
                })?;
        if let Some(p) = password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let endpoint = info.addr().to_string();
        let client = Client::open(info)
            .map_err(|e| Error::config("replay.redis_url", &config.redis_url, e.to_string()))?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| Error::config("replay.redis_url", &config.redis_url, e.to_string()))?;
        Ok(FleetReplay {
            conn,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            endpoint,
        })
    }

    /// Where Redis is (no credentials).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Redis key of a nonce.
    pub fn key(&self, nonce: &[u8; 16]) -> String {
        format!("{}:n:{}", self.prefix, URL_SAFE_NO_PAD.encode(nonce))
    }

    /// Claims `nonce` until `expires_at` (Unix seconds) as seen at `now`.
    pub async fn claim(&self, nonce: &[u8; 16], expires_at: u64, now: u64) -> Claim {
        let ttl = expires_at.saturating_sub(now);
        if ttl == 0 {
            // The proof is already stale: it cannot be accepted again, nothing to record.
            return Claim::Fresh;
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(nonce)).arg(1).arg("NX").arg("EX").arg(ttl);
        let set = cmd.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(self.timeout, set).await {
            Ok(Ok(Some(_))) => Claim::Fresh,
            Ok(Ok(None)) => Claim::Replay,
            Ok(Err(e)) => {
                warn!(redis = %self.endpoint, error = %e, "replay claim failed");
                Claim::Unavailable
            }
            Err(_) => {
                warn!(redis = %self.endpoint, timeout_ms = self.timeout.as_millis() as u64, "replay claim timed out");
                Claim::Unavailable
            }
        }
    }

    /// Claims every `(nonce, expires_at)` of a batch, as seen at `now`, in one pipelined round
    /// trip (one `SET NX EX` each, answered in order): a verdict per claim, or `None` when Redis
    /// did not answer the whole pipeline within the timeout (then no claim's fate is known to
    /// the caller; any that Redis executed stay claimed, which only refuses a retry of them).
    pub async fn claim_batch(&self, claims: &[([u8; 16], u64)], now: u64) -> Option<Vec<Claim>> {
        let mut verdicts = vec![Claim::Fresh; claims.len()];
        let mut pipe = redis::pipe();
        // Which verdict each command answers: stale proofs send nothing (as in `claim`).
        let mut sent = Vec::with_capacity(claims.len());
        for (i, (nonce, expires_at)) in claims.iter().enumerate() {
            let ttl = expires_at.saturating_sub(now);
            if ttl == 0 {
                continue;
            }
            pipe.cmd("SET")
                .arg(self.key(nonce))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl);
            sent.push(i);
        }
        if sent.is_empty() {
            return Some(verdicts);
        }
        let mut conn = self.conn.clone();
        let query = pipe.query_async::<Vec<Option<String>>>(&mut conn);
        match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(answers)) if answers.len() == sent.len() => {
                for (i, answer) in sent.into_iter().zip(answers) {
                    verdicts[i] = if answer.is_some() {
                        Claim::Fresh
                    } else {
                        Claim::Replay
                    };
                }
                Some(verdicts)
            }
            Ok(Ok(answers)) => {
                warn!(redis = %self.endpoint, sent = sent.len(), answered = answers.len(), "replay batch: Redis answered a different number of commands");
                None
            }
            Ok(Err(e)) => {
                warn!(redis = %self.endpoint, error = %e, claims = claims.len(), "replay batch failed");
                None
            }
            Err(_) => {
                warn!(redis = %self.endpoint, timeout_ms = self.timeout.as_millis() as u64, claims = claims.len(), "replay batch timed out");
                None
            }
        }
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_)))
    }
}
