//! A session: the unwrapped key the gateway caches, its id (the cache key) and the compact
//! form's reference to it. The gateway's steps over a session (age, AES-GCM open) are in
//! [`crate::verify`].

use aes_gcm::{Aes256Gcm, KeyInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of the wrapped session plaintext: a 32-byte key and a u64be `issued_at`.
pub const SESSION_PLAINTEXT_LEN: usize = 40;

const SESSION_ID_LABEL: &[u8] = b"autoid/v1 session-id";

/// A session's cache key: `SHA-256("autoid/v1 session-id" || lp16(kid) || wrapped)`.
pub type SessionId = [u8; 32];

/// Bytes of a session reference.
pub const SESSION_REF_LEN: usize = 16;

/// A session's reference in the compact form: the first 16 bytes of its [`SessionId`].
pub type SessionRef = [u8; SESSION_REF_LEN];

/// A session's reference: the first 16 bytes of its id.
pub fn session_ref(id: &SessionId) -> SessionRef {
    let mut r = [0u8; SESSION_REF_LEN];
    r.copy_from_slice(&id[..SESSION_REF_LEN]);
    r
}

/// Computes a session's cache key.
pub fn session_id(kid: &str, wrapped: &[u8]) -> SessionId {
    let mut h = Sha256::new();
    h.update(SESSION_ID_LABEL);
    crate::wire::digest_lp16(&mut h, kid.as_bytes());
    h.update(wrapped);
    h.finalize().into()
}

/// An unwrapped session key, as the gateway caches it, with its AES-GCM key schedule ready.
#[derive(Clone)]
pub struct SessionKey {
    key: [u8; 32],
    issued_at: u64,
    cipher: Aes256Gcm,
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.key.ct_eq(&other.key)) && self.issued_at == other.issued_at
    }
}

impl Eq for SessionKey {}

impl core::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionKey")
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// When the client opened the session (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// The AES-GCM key schedule, ready.
    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    /// The 40-byte cache encoding: `key || u64be(issued_at)`.
    pub fn to_bytes(&self) -> [u8; SESSION_PLAINTEXT_LEN] {
        let mut out = [0u8; SESSION_PLAINTEXT_LEN];
        out[..32].copy_from_slice(&self.key);
        out[32..].copy_from_slice(&self.issued_at.to_be_bytes());
        out
    }

    /// Parses the 40-byte encoding (the wrapped plaintext has the same layout).
    pub fn from_bytes(bytes: &[u8]) -> Option<SessionKey> {
        if bytes.len() != SESSION_PLAINTEXT_LEN {
            return None;
        }
        let key: [u8; 32] = bytes[..32].try_into().ok()?;
        let issued_at = u64::from_be_bytes(bytes[32..].try_into().ok()?);
        let cipher = Aes256Gcm::new(&key.into());
        Some(SessionKey {
            key,
            issued_at,
            cipher,
        })
    }
}
