//! Session unwrapping for the filter: the gateway's private keys live here, not in Envoy. Each
//! RSA-OAEP unwrap runs on the agent's RSA threads ([`crate::rsa_pool`]: one per core, at a lower
//! CPU priority than Envoy's workers), a bounded number at a time; past the queue bound a request
//! is shed (503) instead of waiting without limit.
//!
//! Two lanes (docs/PROTOCOL.md §12): a v3 session whose possession ticket was checked (by the
//! filter, or here before the RSA) takes the main lane; a session without one (v1, v2 full
//! forms, which anyone can make with the public key) takes a small lane of its own — a token
//! bucket and at most one RSA thread — so a flood of those cannot delay checked sessions.
//!
//! The RSA decryption is AWS-LC's (`aws-lc-rs`): constant-time, blinded, about five times faster
//! than the pure-Rust `rsa` crate here (docs/PROTOCOL.md, "Side channels"). The key files are
//! parsed and checked by the protocol crate first (key id grammar, allowed sizes), so the agent
//! accepts exactly the keys `autoid keygen` writes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use autoid_filter::ratelimit::TokenBucket;
use autoid_protocol::keys::{GatewayKey, oaep_label};
use autoid_protocol::verify::SessionKey;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use tokio::sync::Semaphore;

use crate::config::SessionKeyConfig;
use crate::error::Error;
use crate::rsa_pool::RsaPool;

/// Unwraps waiting or running at once, beyond which requests are shed.
pub const MAX_QUEUED: usize = 256;
/// Unchecked unwraps (no possession ticket) started per second, at most.
pub const UNCHECKED_PER_SECOND: u32 = 200;
/// Unchecked unwraps waiting or running at once, beyond which they are shed.
pub const MAX_UNCHECKED_QUEUED: usize = 16;

/// Which lane an unwrap takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Possession checked (a v3 ticket): the main lane.
    Checked,
    /// No possession check (v1, v2): the small lane.
    Unchecked,
}

/// Why a session was not unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No key with this id here.
    UnknownKey,
    /// Not a session wrapped for this key.
    Unwrap,
    /// Too many unwraps queued.
    Overloaded,
}

/// One gateway key, loaded into AWS-LC, with its OAEP label and retirement time.
struct UnwrapKey {
    kid: String,
    key: OaepPrivateDecryptingKey,
    label: Vec<u8>,
    not_after: Option<u64>,
}

impl std::fmt::Debug for UnwrapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwrapKey")
            .field("kid", &self.kid)
            .field("bits", &self.key.key_size_bits())
            .finish_non_exhaustive()
    }
}

impl UnwrapKey {
    fn new(key: &GatewayKey) -> Result<UnwrapKey, String> {
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let private = PrivateDecryptingKey::from_pkcs8(&der).map_err(|e| e.to_string())?;
        let key_oaep = OaepPrivateDecryptingKey::new(private).map_err(|e| e.to_string())?;
        Ok(UnwrapKey {
            kid: key.kid().to_owned(),
            key: key_oaep,
            label: oaep_label(key.kid()),
            not_after: None,
        })
    }

    /// RSA-OAEP-SHA256 with the key id as label, then the session plaintext's own checks.
    fn unwrap(&self, wrapped: &[u8]) -> Option<[u8; 40]> {
        if wrapped.len() != self.key.key_size_bytes() {
            return None;
        }
        let mut out = vec![0u8; self.key.min_output_size()];
        let plaintext = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                wrapped,
                &mut out,
                Some(&self.label),
            )
            .ok()?;
        SessionKey::from_bytes(plaintext).map(|s| s.to_bytes())
    }
}

/// What an unwrap returns: the 40-byte session plaintext and, for a key being rotated out, when
/// it retires (Unix seconds).
pub type Unwrapped = ([u8; 40], Option<u64>);

/// The gateway's private keys and the bounded pool that uses them. The key set is replaced as a
/// whole on reload (SIGHUP): an unwrap sees either the old set or the new one.
#[derive(Debug)]
pub struct Sessions {
    keys: RwLock<Arc<Vec<Arc<UnwrapKey>>>>,
    /// The threads the RSA runs on.
    rsa: RsaPool,
    running: Arc<Semaphore>,
    queued: AtomicUsize,
    /// The unchecked lane: one RSA thread, a queue bound and a rate.
    unchecked_running: Arc<Semaphore>,
    unchecked_queued: AtomicUsize,
    unchecked_rate: Mutex<TokenBucket>,
    /// RSA decryptions run.
    unwraps: AtomicU64,
    /// Sessions refused before any RSA: a wrong possession ticket.
    possession_refused: AtomicU64,
    /// Unchecked sessions shed by their lane's rate or bound.
    unchecked_shed: AtomicU64,
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn load_all(keys: &[SessionKeyConfig]) -> Result<Vec<Arc<UnwrapKey>>, Error> {
    keys.iter()
        .map(|k| {
            let mut key = load_key(&k.kid, &k.private_key_file)?;
            key.not_after = k.not_after;
            Ok(Arc::new(key))
        })
        .collect()
}

impl Sessions {
    /// Keys by id, from PEM files (PKCS#8).
    pub fn load(keys: &[SessionKeyConfig]) -> Result<Sessions, Error> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rsa = RsaPool::start(threads).map_err(|source| Error::Threads {
            what: "RSA",
            source,
        })?;
        Ok(Sessions {
            keys: RwLock::new(Arc::new(load_all(keys)?)),
            rsa,
            running: Arc::new(Semaphore::new(threads)),
            queued: AtomicUsize::new(0),
            unchecked_running: Arc::new(Semaphore::new(1)),
            unchecked_queued: AtomicUsize::new(0),
            unchecked_rate: Mutex::new(TokenBucket::new(
                UNCHECKED_PER_SECOND,
                UNCHECKED_PER_SECOND,
                now_ms(),
            )),
            unwraps: AtomicU64::new(0),
            possession_refused: AtomicU64::new(0),
            unchecked_shed: AtomicU64::new(0),
        })
    }

    /// Replaces the key set with `keys`, all loaded first: on any error the old set stays.
    pub fn reload(&self, keys: &[SessionKeyConfig]) -> Result<(), Error> {
        let loaded = Arc::new(load_all(keys)?);
        match self.keys.write() {
            Ok(mut set) => *set = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(())
    }

    fn current(&self) -> Arc<Vec<Arc<UnwrapKey>>> {
        match self.keys.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key ids served now, with their retirement times.
    pub fn kids(&self) -> Vec<(String, Option<u64>)> {
        self.current()
            .iter()
            .map(|k| (k.kid.clone(), k.not_after))
            .collect()
    }

    /// Counts a session refused before any RSA (its possession ticket was wrong).
    pub fn refused_possession(&self) {
        self.possession_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        format!(
            "# HELP autoid_agent_rsa_unwraps_total RSA-OAEP decryptions run.\n\
             # TYPE autoid_agent_rsa_unwraps_total counter\n\
             autoid_agent_rsa_unwraps_total {}\n\
             # HELP autoid_agent_possession_refused_total Sessions refused before any RSA: a wrong possession ticket.\n\
             # TYPE autoid_agent_possession_refused_total counter\n\
             autoid_agent_possession_refused_total {}\n\
             # HELP autoid_agent_unchecked_shed_total Sessions without a possession ticket shed by their lane.\n\
             # TYPE autoid_agent_unchecked_shed_total counter\n\
             autoid_agent_unchecked_shed_total {}\n",
            self.unwraps.load(Ordering::Relaxed),
            self.possession_refused.load(Ordering::Relaxed),
            self.unchecked_shed.load(Ordering::Relaxed),
        )
    }

    /// Unwraps `wrapped` under `kid` in `lane`. A retired key (past its `not_after`) is unknown.
    pub async fn unwrap(
        &self,
        kid: &str,
        wrapped: Vec<u8>,
        lane: Lane,
    ) -> Result<Unwrapped, Refusal> {
        let now = now_secs();
        let key = self
            .current()
            .iter()
            .find(|k| k.kid == kid && k.not_after.is_none_or(|t| now < t))
            .cloned()
            .ok_or(Refusal::UnknownKey)?;
        match lane {
            Lane::Checked => self.run_unwrap(key, wrapped).await,
            Lane::Unchecked => {
                let allowed = match self.unchecked_rate.lock() {
                    Ok(mut b) => b.try_take(now_ms()),
                    Err(_) => false,
                };
                if !allowed
                    || self.unchecked_queued.fetch_add(1, Ordering::AcqRel) >= MAX_UNCHECKED_QUEUED
                {
                    if allowed {
                        self.unchecked_queued.fetch_sub(1, Ordering::AcqRel);
                    }
                    self.unchecked_shed.fetch_add(1, Ordering::Relaxed);
                    return Err(Refusal::Overloaded);
                }
                let result = async {
                    let _lane = self
                        .unchecked_running
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| Refusal::Overloaded)?;
                    self.run_unwrap(key, wrapped).await
                }
                .await;
                self.unchecked_queued.fetch_sub(1, Ordering::AcqRel);
                result
            }
        }
    }

    async fn run_unwrap(
        &self,
        key: Arc<UnwrapKey>,
        wrapped: Vec<u8>,
    ) -> Result<Unwrapped, Refusal> {
        let not_after = key.not_after;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Overloaded);
        }
        let result = async {
            let _permit = self
                .running
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Refusal::Overloaded)?;
            self.unwraps.fetch_add(1, Ordering::Relaxed);
            self.rsa
                .run(move || key.unwrap(&wrapped))
                .await
                .ok_or(Refusal::Overloaded)?
                .map(|plaintext| (plaintext, not_after))
                .ok_or(Refusal::Unwrap)
        }
        .await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

fn load_key(kid: &str, file: &Path) -> Result<UnwrapKey, Error> {
    let pem = std::fs::read_to_string(file).map_err(|source| Error::ReadFile {
        what: "session key",
        file: file.to_owned(),
        source,
    })?;
    GatewayKey::from_pem(kid, &pem)
        .map_err(|e| e.to_string())
        .and_then(|key| UnwrapKey::new(&key))
        .map_err(|e| Error::config("session_keys", file.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoid_protocol::keys::GatewayKey;

    fn wrap_for(key: &GatewayKey, session: &[u8; 40]) -> Vec<u8> {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        key.public().wrap(session, &mut rng).unwrap()
    }

    #[test]
    fn aws_lc_unwraps_what_the_protocol_wraps_and_refuses_the_rest() {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let key = GatewayKey::generate("gw-1", 2048, &mut rng).unwrap();
        let other = GatewayKey::generate("gw-2", 2048, &mut rng).unwrap();
        let native = UnwrapKey::new(&key).unwrap();
        let mut session = [7u8; 40];
        session[32..].copy_from_slice(&1_700_000_000u64.to_be_bytes());
        let wrapped = wrap_for(&key, &session);
        assert_eq!(native.unwrap(&wrapped), Some(session));
        // The same bytes under the key id gw-2's label, or for another key, or cut short: refused.
        assert_eq!(UnwrapKey::new(&other).unwrap().unwrap(&wrapped), None);
        let mut relabeled = native_with_kid(&key, "gw-9");
        assert_eq!(relabeled.unwrap(&wrapped), None);
        relabeled.label = oaep_label("gw-1");
        assert_eq!(relabeled.unwrap(&wrapped), Some(session));
        assert_eq!(native.unwrap(&wrapped[1..]), None);
        let mut flipped = wrapped.clone();
        flipped[10] ^= 1;
        assert_eq!(native.unwrap(&flipped), None);
    }

    fn native_with_kid(key: &GatewayKey, kid: &str) -> UnwrapKey {
        let mut k = UnwrapKey::new(key).unwrap();
        k.label = oaep_label(kid);
        k
    }
}
