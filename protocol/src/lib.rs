//! The autoid entropy-proof protocol, versions 1, 2 and 3 (docs/PROTOCOL.md; v2 adds the compact
//! warm form, v3 the possession ticket).
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
//! - [`header`]: the header grammar (`v1.<kid>.<wrapped>.<sealed>`, v2's compact form, v3's
//!   ticket) and size caps.
//! - [`session`]: the unwrapped session key, its id and its compact-form reference.
//! - [`ticket`]: v3's possession ticket, checked before an RSA unwrap.
//! - [`client`]: sessions and proofs (the caller's side).
//! - [`verify`]: the gateway's side, step by step and as one call.
//! - [`config`]: the filter's configuration, parsed in two steps and validated.
//! - [`check`]: the headers of the gateway↔agent check contract.
//! - [`agent_api`]: the filter↔agent JSON contract (every `/v1/` endpoint the filter calls),
//!   one type each, serialized by one side and parsed by the other.
//!
//! Names: [`valid_subject`] is the one subject grammar, [`valid_group_name`] the one group-name
//! grammar.

#![forbid(unsafe_code)]

pub mod agent_api;
pub mod check;
pub mod client;
pub mod config;
pub mod entropy;
mod error;
pub mod header;
pub mod intervals;
pub mod keys;
pub mod path;
pub mod session;
pub mod ticket;
pub mod verify;
mod wire;

pub use error::{Error, Reject};

/// Protocol constants and the defaults every party agrees on.
pub mod policy {
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
    /// RSA modulus sizes the protocol accepts.
    pub const ALLOWED_BITS: [usize; 3] = [2048, 3072, 4096];
    /// Bytes of a proof nonce.
    pub const NONCE_LEN: usize = 16;
    /// Hard cap on the header value, checked before anything else.
    pub const MAX_HEADER_LEN: usize = 2048;
    /// Largest request body a gateway buffers to check a body-bound proof (1 MiB); a larger one
    /// gets 413. The rendered Envoy buffers up to twice this per connection, so the filter's
    /// limit, with its uniform reply, is the one a client meets.
    pub const MAX_BODY_BYTES: usize = 1 << 20;
    /// Longest subject, in bytes (the grammar is [`valid_subject`](crate::valid_subject)).
    pub const MAX_SUBJECT_LEN: usize = 64;
    /// Longest group name, in bytes (the grammar is [`valid_group_name`](crate::valid_group_name)).
    pub const MAX_GROUP_NAME_LEN: usize = 256;
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

/// The subject grammar, for messages: what [`valid_subject`] accepts.
pub const SUBJECT_RULE: &str = "a subject is 1 to 64 bytes of lowercase ASCII letters, digits, \
     '.', '_', '-' and '@', starting and ending with a letter or digit";

/// Checks that a subject is canonical (docs/PROTOCOL.md, "Subjects"): 1 to 64 bytes of
/// `[a-z0-9._@-]`, the first and last a letter or digit.
///
/// There is exactly one spelling per subject: LDAP matches `uid` ignoring case and surrounding
/// spaces, so `ALICE`, ` alice` or `alİce` would otherwise reach alice's entry while being other
/// subjects here (other entropy, cache keys and identity headers). Anything that names a subject
/// (entropy issuing, proofs, the agent, static groups) refuses a non-canonical one.
pub fn valid_subject(subject: &str) -> bool {
    let b = subject.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= policy::MAX_SUBJECT_LEN
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| edge(c) || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

/// The group-name grammar, for messages: what [`valid_group_name`] accepts.
pub const GROUP_NAME_RULE: &str = "a group name is 1 to 256 bytes of UTF-8 without ',', control \
     characters or leading and trailing whitespace";

/// Checks a group name (configured requirements, static groups, directory answers): 1 to 256
/// bytes of UTF-8, no `,` (the identity header joins names with it), no control characters, no
/// leading or trailing whitespace.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= policy::MAX_GROUP_NAME_LEN
        && name.trim() == name
        && !name.chars().any(|c| c.is_control() || c == ',')
}

/// Keeps the valid group names (in order) and returns how many were dropped.
pub fn retain_valid_group_names(groups: &mut Vec<String>) -> usize {
    let before = groups.len();
    groups.retain(|g| valid_group_name(g));
    before - groups.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_subjects() {
        for s in [
            "alice",
            "bob",
            "c",
            "7",
            "ci-runner",
            "workload-00042",
            "deploy.bot_2@ci",
            "alice@example.org",
            &"a".repeat(64),
        ] {
            assert!(valid_subject(s), "{s:?} should be canonical");
        }
    }

    #[test]
    fn non_canonical_subjects() {
        for s in [
            "",
            "ALICE",
            "Alice",
            " alice",
            "alice ",
            "al ice",
            "al\u{130}ce",  // alİce: LATIN CAPITAL LETTER I WITH DOT ABOVE
            "al\u{131}ce",  // alıce: dotless i
            "\u{ff41}lice", // fullwidth a
            "ali\u{7}ce",
            "alice\n",
            "a,b",
            "a/b",
            "a*",
            "evil*)(uid=*))(|(uid=*",
            "cn=admin,dc=example",
            "-alice",
            "alice-",
            ".alice",
            "alice.",
            "_alice",
            "@alice",
            "alice@",
            &"a".repeat(65),
        ] {
            assert!(!valid_subject(s), "{s:?} should not be canonical");
        }
        assert_eq!("a".repeat(65).len(), policy::MAX_SUBJECT_LEN + 1);
    }

    #[test]
    fn group_names() {
        for g in ["payments", "b c", "Ops EU", "é", &"g".repeat(256)] {
            assert!(valid_group_name(g), "{g:?} should be valid");
        }
        for g in [
            "",
            " ",
            "ops,admins",
            ",",
            " payments",
            "payments ",
            "\tpayments",
            "pay\nments",
            "pay\u{0}ments",
            "pay\u{85}ments", // NEL, a C1 control
            &"g".repeat(257),
        ] {
            assert!(!valid_group_name(g), "{g:?} should be invalid");
        }
        let mut groups = vec!["a".to_owned(), "ops,admins".into(), "b".into(), " c".into()];
        assert_eq!(retain_valid_group_names(&mut groups), 2);
        assert_eq!(groups, ["a", "b"]);
    }
}
