//! Session unwrapping for the filter: the gateway's private keys live here, not in Envoy. Each
//! RSA-OAEP unwrap runs on the blocking pool, a bounded number at a time; past the queue bound a
//! request is shed (503) instead of waiting without limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoid_protocol::Reject;
use autoid_protocol::keys::GatewayKey;
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

/// The gateway's private keys and the bounded pool that uses them.
#[derive(Debug)]
pub struct Sessions {
    keys: Vec<Arc<GatewayKey>>,
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
        self.keys.iter().map(|k| k.kid()).collect()
    }

    /// Unwraps `wrapped` under `kid`: the 40-byte session plaintext.
    pub async fn unwrap(&self, kid: &str, wrapped: Vec<u8>) -> Result<[u8; 40], Refusal> {
        let key = self
            .keys
            .iter()
            .find(|k| k.kid() == kid)
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
            tokio::task::spawn_blocking(move || key.unwrap_session(&wrapped))
                .await
                .map_err(|_| Refusal::Overloaded)?
                .map(|s| s.to_bytes())
                .map_err(|r| match r {
                    Reject::UnknownKey => Refusal::UnknownKey,
                    _ => Refusal::Unwrap,
                })
        }
        .await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

fn load_key(kid: &str, file: &Path) -> Result<GatewayKey, Error> {
    let pem = std::fs::read_to_string(file).map_err(|source| Error::ReadFile {
        what: "session key",
        file: file.to_owned(),
        source,
    })?;
    GatewayKey::from_pem(kid, &pem)
        .map_err(|e| Error::config("session_keys", file.display(), e.to_string()))
}
