//! Fleet replay claims in Redis (`POST /v1/replay`): one `SET key 1 NX PX ms` per nonce (a
//! filter's batch of claims goes out as one pipeline: one round trip), so a nonce is claimed once
//! across every gateway replica that shares the Redis.
//!
//! A claim is won only by the `SET` that recorded it: a proof already expired when its claim
//! reaches the agent is refused ([`Claim::Stale`]) with nothing sent, never reported won. A
//! recorded claim lives until its [`Lifetime::keep_until`], in milliseconds rounded up, so that
//! no replica whose clock lags this one's by up to the skew window can accept the proof again
//! (docs/FLEET.md, "How long a claim is kept").
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
    /// First sighting across the fleet: recorded until its `keep_until`.
    Fresh,
    /// Claimed before (by any replica), still live.
    Replay,
    /// The proof had expired when the claim was made: refused, nothing recorded.
    Stale,
    /// Redis did not answer within the timeout, or failed.
    Unavailable,
}

/// How long a claim counts: when its proof turns stale, and until when the fleet remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The proof is refused as stale from this second on (Unix seconds): a claim made at or
    /// after it is refused.
    pub expires_at: u64,
    /// The nonce is remembered until this second (Unix seconds, on the claimer's clock); never
    /// less than `expires_at`.
    pub keep_until: u64,
}

impl Lifetime {
    /// A lifetime remembered until `keep_until`, or until `expires_at` when that is later (or
    /// `keep_until` is unknown: a filter from before it).
    pub fn new(expires_at: u64, keep_until: Option<u64>) -> Lifetime {
        Lifetime {
            expires_at,
            keep_until: keep_until.map_or(expires_at, |k| k.max(expires_at)),
        }
    }

    /// How long Redis must keep a claim made at `now_ms` (Unix milliseconds): from `now_ms` to
    /// `keep_until` exactly, in milliseconds (no rounding can shorten it), at least 1. `None`
    /// when the proof has expired (`now_ms` at or past `expires_at`): the claim is refused,
    /// never recorded.
    pub fn keep_ms(&self, now_ms: u64) -> Option<u64> {
        let expires_ms = self.expires_at.saturating_mul(1000);
        if now_ms >= expires_ms {
            return None;
        }
        // keep_until ≥ expires_at, so this is at least 1 ms.
        Some(self.keep_until.saturating_mul(1000) - now_ms)
    }
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

    /// Claims `nonce` for `lifetime`, at `now_ms` (Unix milliseconds, this agent's clock).
    pub async fn claim(&self, nonce: &[u8; 16], lifetime: Lifetime, now_ms: u64) -> Claim {
        let Some(keep_ms) = lifetime.keep_ms(now_ms) else {
            // Expired before it was claimed: refused, and nothing to record.
            return Claim::Stale;
        };
        let mut conn = self.conn.clone();
        let cmd = self.set_nx(nonce, keep_ms);
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

    /// `SET <key> 1 NX PX <keep_ms>`: records `nonce` for `keep_ms` milliseconds unless it is
    /// recorded already.
    fn set_nx(&self, nonce: &[u8; 16], keep_ms: u64) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(nonce))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(keep_ms);
        cmd
    }

    /// Claims every `(nonce, lifetime)` of a batch, at `now_ms`, in one pipelined round trip
    /// (one `SET NX PX` each, answered in order): a verdict per claim, or `None` when Redis did
    /// not answer the whole pipeline within the timeout (then no claim's fate is known to the
    /// caller; any that Redis executed stay claimed, which only refuses a retry of them).
    pub async fn claim_batch(
        &self,
        claims: &[([u8; 16], Lifetime)],
        now_ms: u64,
    ) -> Option<Vec<Claim>> {
        let mut verdicts = vec![Claim::Stale; claims.len()];
        let mut pipe = redis::pipe();
        // Which verdict each command answers: expired proofs send nothing (as in `claim`).
        let mut sent = Vec::with_capacity(claims.len());
        for (i, (nonce, lifetime)) in claims.iter().enumerate() {
            let Some(keep_ms) = lifetime.keep_ms(now_ms) else {
                continue;
            };
            pipe.add_command(self.set_nx(nonce, keep_ms));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A proof made at 1 000 with a 60 s skew: stale from 1 061, kept until 1 121.
    const LIFE: Lifetime = Lifetime {
        expires_at: 1_061,
        keep_until: 1_121,
    };

    #[test]
    fn a_claim_at_or_past_its_expiry_is_refused_not_won_unrecorded() {
        // The last millisecond the proof is valid: recorded, until keep_until exactly.
        assert_eq!(LIFE.keep_ms(1_060_999), Some(60_001));
        // Its remaining life is zero, or less: refused (the old rule answered Fresh here).
        assert_eq!(LIFE.keep_ms(1_061_000), None);
        assert_eq!(LIFE.keep_ms(1_061_001), None);
        assert_eq!(LIFE.keep_ms(u64::MAX), None);
        // With nothing beyond the expiry to keep: still at least a millisecond while valid.
        let bare = Lifetime::new(1_061, None);
        assert_eq!(bare.keep_ms(1_060_999), Some(1));
        assert_eq!(bare.keep_ms(1_061_000), None);
    }

    #[test]
    fn less_than_a_second_left_is_kept_to_the_millisecond_never_rounded_down() {
        // Whole seconds would have made this 0 (gone at once) or 1 (then it ends at a time that
        // depends on where in its second the claim fell). In milliseconds the key ends exactly
        // at keep_until, wherever in the second it was claimed.
        let bare = Lifetime::new(1_061, Some(1_061));
        for now_ms in [1_060_001, 1_060_500, 1_060_999] {
            let keep = bare.keep_ms(now_ms).unwrap();
            assert!((1..1_000).contains(&keep), "{now_ms}: {keep}");
            assert_eq!(now_ms + keep, 1_061_000, "{now_ms}");
        }
        for now_ms in [1_000_000, 1_030_123, 1_060_999] {
            assert_eq!(now_ms + LIFE.keep_ms(now_ms).unwrap(), 1_121_000);
        }
    }

    #[test]
    fn keep_until_is_never_shorter_than_the_expiry_and_huge_values_saturate() {
        assert_eq!(Lifetime::new(1_061, Some(5)).keep_until, 1_061);
        assert_eq!(Lifetime::new(1_061, Some(1_121)).keep_until, 1_121);
        let far = Lifetime::new(u64::MAX, Some(u64::MAX));
        assert_eq!(far.keep_ms(0), Some(u64::MAX));
    }
}
