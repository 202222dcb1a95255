//! Session unwrapping for the filter: the gateway's private keys live here, not in Envoy. Each
//! RSA-OAEP unwrap runs on the blocking pool, a bounded number at a time; past the queue bound a
//! request is shed (503) instead of waiting without limit.
//!
//! The RSA decryption is AWS-LC's (`aws-lc-rs`): constant-time, blinded, about five times faster
//! than the pure-Rust `rsa` crate here (docs/PROTOCOL.md, "Side channels"). The key files are
//! parsed and checked by the protocol crate first (key id grammar, allowed sizes), so the agent
//! accepts exactly the keys `autoid keygen` writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoid_protocol::keys::{GatewayKey, oaep_label};
use autoid_protocol::verify::SessionKey;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use tokio::sync::Semaphore;

use crate::error::Error;

/// Unwraps waiting or running at once, beyond which requests are shed.
pub const MAX_QUEUED: usize = 256;

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

/// One gateway key, loaded into AWS-LC, with its OAEP label.
struct UnwrapKey {
    kid: String,
    key: OaepPrivateDecryptingKey,
    label: Vec<u8>,
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

/// The gateway's private keys and the bounded pool that uses them.
#[derive(Debug)]
pub struct Sessions {
    keys: Vec<Arc<UnwrapKey>>,
    running: Arc<Semaphore>,
    queued: AtomicUsize,
}

impl Sessions {
    /// Keys by id, from PEM files (PKCS#8).
    pub fn load(files: &[(String, PathBuf)]) -> Result<Sessions, Error> {
        let mut keys = Vec::with_capacity(files.len());
        for (kid, file) in files {
            keys.push(Arc::new(load_key(kid, file)?));
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Sessions {
            keys,
            running: Arc::new(Semaphore::new(threads)),
            queued: AtomicUsize::new(0),
        })
    }

    /// The key ids served.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// Unwraps `wrapped` under `kid`: the 40-byte session plaintext.
    pub async fn unwrap(&self, kid: &str, wrapped: Vec<u8>) -> Result<[u8; 40], Refusal> {
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .ok_or(Refusal::UnknownKey)?;
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
            tokio::task::spawn_blocking(move || key.unwrap(&wrapped))
                .await
                .map_err(|_| Refusal::Overloaded)?
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
