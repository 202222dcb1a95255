//! The crate's error type and the gateway's rejection reasons.

/// Errors of key handling, entropy files and proof making.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be parsed or encoded.
    #[error("key {what}: {detail}")]
    Key {
        /// Which key or operation.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// An RSA operation failed.
    #[error("rsa: {0}")]
    Rsa(String),
    /// A malformed epoch or entropy file.
    #[error("{what}: {detail}")]
    Format {
        /// Which file or field.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A value outside what the protocol allows.
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// The value (never a secret).
        value: String,
    },
}

/// Why the gateway rejected a proof. The caller sees one uniform 401; logs and metrics see this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// No proof header.
    Missing,
    /// More than one proof header.
    Duplicate,
    /// The header is longer than the hard cap.
    Oversized,
    /// The header does not follow the grammar (parts, base64url, lengths).
    Malformed,
    /// A version other than `v1` and `v2`.
    UnsupportedVersion,
    /// The key id names no key in the keyring.
    UnknownKey,
    /// RSA-OAEP unwrapping failed, or the unwrapped session is malformed.
    Unwrap,
    /// A compact (v2) proof names a session the gateway does not hold: the client resends the
    /// full form (the one reason the 401 tells the client, docs/PROTOCOL.md §11).
    UnknownSession,
    /// Too many cold-path unwraps right now.
    RateLimited,
    /// The session is older than its lifetime, or issued in the future.
    SessionExpired,
    /// AES-GCM authentication failed: tampered, wrong key, or other bindings.
    Open,
    /// The sealed payload is malformed.
    Payload,
    /// The proof's timestamp is older than the skew window.
    Stale,
    /// The proof's timestamp is further ahead than the skew window.
    Future,
    /// The epoch names no epoch in the keyring.
    UnknownEpoch,
    /// The subject is not a valid subject.
    Subject,
    /// The digest does not match the subject's entropy.
    Entropy,
    /// The body does not match the digest the proof binds.
    Body,
    /// The nonce was seen before.
    Replay,
}

impl Reject {
    /// Every reason, for metrics and tests.
    pub const ALL: [Reject; 19] = [
        Reject::Missing,
        Reject::Duplicate,
        Reject::Oversized,
        Reject::Malformed,
        Reject::UnsupportedVersion,
        Reject::UnknownKey,
        Reject::Unwrap,
        Reject::UnknownSession,
        Reject::RateLimited,
        Reject::SessionExpired,
        Reject::Open,
        Reject::Payload,
        Reject::Stale,
        Reject::Future,
        Reject::UnknownEpoch,
        Reject::Subject,
        Reject::Entropy,
        Reject::Body,
        Reject::Replay,
    ];

    /// A stable snake_case code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Duplicate => "duplicate",
            Reject::Oversized => "oversized",
            Reject::Malformed => "malformed",
            Reject::UnsupportedVersion => "unsupported_version",
            Reject::UnknownKey => "unknown_key",
            Reject::Unwrap => "unwrap",
            Reject::UnknownSession => "unknown_session",
            Reject::RateLimited => "rate_limited",
            Reject::SessionExpired => "session_expired",
            Reject::Open => "open",
            Reject::Payload => "payload",
            Reject::Stale => "stale",
            Reject::Future => "future",
            Reject::UnknownEpoch => "unknown_epoch",
            Reject::Subject => "subject",
            Reject::Entropy => "entropy",
            Reject::Body => "body",
            Reject::Replay => "replay",
        }
    }
}

impl core::fmt::Display for Reject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.code())
    }
}
