//! The autoid entropy-proof protocol, version 1.
//!
//! A caller proves possession of its secret *entropy file* to a gateway. Per request it derives
//! intervals of that file from a fresh nonce and the request it is about to send, hashes them with
//! SHA-256, and seals the digest with AES-256-GCM under a session key wrapped once per session
//! with the gateway's RSA key (RSA-OAEP-SHA256). The gateway recomputes the same digest from the
//! subject's file, which it derives on demand from an epoch master secret instead of storing it.
//!
//! This crate is pure: no I/O, no clock, no randomness of its own (callers pass `now` and a
//! CSPRNG). It builds for `wasm32-wasip1` (the filter) and natively (the CLI and tests).
//! The byte-level specification is `docs/PROTOCOL.md`; the filter's configuration types are in
//! [`config`].
//!
//! - [`keys`]: RSA key pairs with key ids, PEM in and out.
//! - [`entropy`]: epochs, per-subject entropy streams and entropy files.
//! - [`intervals`]: the intervals a proof must cover, derived from its nonce and bindings.
//! - [`header`]: the `v1.<kid>.<wrapped>.<sealed>` header grammar and size caps.
//! - [`client`]: sessions and proofs (the caller's side).
//! - [`verify`]: the gateway's side, step by step and as one call.
//! - [`config`]: the filter's configuration, parsed in two steps and validated.

#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod entropy;
mod error;
pub mod header;
pub mod intervals;
pub mod keys;
pub mod verify;
mod wire;

pub use error::{Error, Reject};

/// Protocol constants and the defaults every party agrees on.
pub mod policy {
    /// The only protocol version this crate speaks.
    pub const VERSION: &str = "v1";
    /// Default number of intervals a proof covers: with a fraction f of a file a thief succeeds
    /// with probability f^k per attempt, so k = 64 puts f = 1/2 at 2^-64 (docs/PROTOCOL.md).
    pub const DEFAULT_INTERVAL_COUNT: u32 = 64;
    /// The smallest interval count an epoch may use (f = 1/2 needs 2^32 attempts).
    pub const MIN_INTERVAL_COUNT: u32 = 32;
    /// The largest interval count an epoch may use (bounds gateway work per request).
    pub const MAX_INTERVAL_COUNT: u32 = 256;
    /// Interval length in bytes: half an AES block of the subject's stream. A missing interval
    /// costs a thief 2^64 guesses; the digest hashes 64 × 8 bytes (9 SHA-256 compressions).
    pub const INTERVAL_LEN: u32 = 8;
    /// Default entropy file size: 1 MiB.
    pub const DEFAULT_FILE_SIZE: u64 = 1 << 20;
    /// Smallest entropy file an epoch may use.
    pub const MIN_FILE_SIZE: u64 = 4096;
    /// Largest entropy file an epoch may use (256 MiB): keeps the modulo bias of the 32-bit slot
    /// words at most 2^-7 per slot (docs/PROTOCOL.md §5).
    pub const MAX_FILE_SIZE: u64 = 1 << 28;
    /// Default accepted clock difference, each way, in seconds.
    pub const DEFAULT_MAX_SKEW_SECS: u64 = 60;
    /// Default session lifetime in seconds, counted from the session's `issued_at`.
    pub const DEFAULT_SESSION_LIFETIME_SECS: u64 = 3600;
    /// Default RSA modulus size for new gateway keys.
    pub const DEFAULT_RSA_BITS: usize = 3072;
    /// Hard cap on the header value, checked before anything else.
    pub const MAX_HEADER_LEN: usize = 2048;
    /// Longest subject, in bytes.
    pub const MAX_SUBJECT_LEN: usize = 128;
    /// Longest key id or epoch id, in bytes.
    pub const MAX_ID_LEN: usize = 32;
    /// Longest method, authority or path a proof binds, in bytes.
    pub const MAX_BINDING_LEN: usize = 8192;
}

/// What a proof binds the request to. The gateway takes these from the request it received;
/// the client from the request it is about to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, as sent (`GET`).
    pub method: &'a str,
    /// The authority (HTTP/1 `Host`, HTTP/2 `:authority`), compared ASCII case-insensitively.
    pub authority: &'a str,
    /// The path with its query, as sent (`/v1/payments?limit=10`).
    pub path: &'a str,
}

/// Checks an identifier (key id, epoch id): 1 to 32 bytes of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= policy::MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a subject: 1 to 128 bytes of UTF-8 without control characters.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= policy::MAX_SUBJECT_LEN
        && !subject.chars().any(char::is_control)
}
