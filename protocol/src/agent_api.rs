//! The filter↔agent contract (docs/AGENT.md): the JSON replies of `GET /v1/groups` and
//! `POST /v1/authenticate`, the request and reply of `POST /v1/sessions` (the agent unwraps
//! sessions for key ids whose private key only it holds), of `POST /v1/streams` (the agent
//! hands out per-subject keys of the epochs whose secret only it holds), and the reply of
//! `GET /v1/credentials/{api}` (the upstream credentials the agent resolves), one type each,
//! serialized by one side and parsed by the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The reply to `GET /v1/groups?subject=<subject>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsReply {
    /// The subject asked about, echoed byte for byte.
    pub subject: String,
    /// Whether exactly one directory entry matched.
    pub found: bool,
    /// The entry's group names, each obeying [`valid_group_name`](crate::valid_group_name)
    /// (empty when not found).
    pub groups: Vec<String>,
    /// The matched entry's own identifier (the value of the agent's `users.uid_attribute`, as
    /// stored). LDAP matches ignoring case, so it may differ from `subject`; the filter then
    /// denies. Absent when not found (and from agents older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_subject: Option<String>,
}

/// The reply to `POST /v1/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateReply {
    /// The username asked about, echoed byte for byte.
    pub subject: String,
    /// Whether the password bound as that user.
    pub authenticated: bool,
    /// The user's group names, each obeying [`valid_group_name`](crate::valid_group_name)
    /// (empty when not authenticated).
    pub groups: Vec<String>,
    /// The matched entry's own identifier, as in [`GroupsReply::entry_subject`]. Absent when not
    /// authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_subject: Option<String>,
}

/// The body of `POST /v1/sessions`: a proof's key id and RSA-OAEP-wrapped session key, and for a
/// v3 proof its possession ticket and the request it binds: the agent checks the ticket (it holds
/// the epochs) before it spends an RSA unwrap (docs/PROTOCOL.md §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The gateway key id the session was wrapped for.
    pub kid: String,
    /// The wrapped session key, base64url without padding (as in the proof).
    pub wrapped: String,
    /// v3: the proof's possession ticket, base64url without padding (as in the proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// v3: the request the proof binds, as the gateway received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BoundRequest>,
    /// v3: the filter checked the ticket itself (it holds the epoch, or the subject's stream):
    /// the agent unwraps in the possession-checked lane without checking again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ticket_checked: bool,
}

/// A request's bindings (method, authority, path), as the gateway received them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundRequest {
    /// The method, as sent.
    pub method: String,
    /// The authority, as sent.
    pub authority: String,
    /// The path and query, as sent.
    pub path: String,
}

/// The 200 reply to `POST /v1/sessions`: the unwrapped session plaintext (`key[32] ||
/// u64be(issued_at)`), base64url without padding. A refusal is 404 (`unknown_key`: no such key,
/// or retired), 422 (`unwrap`: not a session for this key) or 503 (overloaded), with
/// `{"error": code}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionReply {
    /// The session plaintext, base64url without padding.
    pub session: String,
    /// When the key that wrapped it retires (Unix seconds), if it is being rotated out: the
    /// filter keeps the session no longer than that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The path of the fleet replay claim.
pub const REPLAY_PATH: &str = "/v1/replay";

/// The agent's password check (`POST`, an [`AuthenticateReply`]).
pub const AUTHENTICATE_PATH: &str = "/v1/authenticate";

/// The body of `POST /v1/replay`: claim a proof's nonce across the fleet, recorded until
/// `keep_until` (docs/FLEET.md, "How long a claim is kept"). The answer is 200
/// `{"claimed": true}` (first sighting, recorded), 409 `{"error": "replay"}` (claimed before, by
/// any replica), 409 `{"error": "stale"}` (the proof expired before the claim reached the agent:
/// refused, nothing recorded; only to a claim that carries `keep_until`, a filter from before it
/// gets `replay`), 503 `{"error": "replay_unavailable"}` (Redis did not answer in time) or 404
/// `{"error": "no_fleet"}` (this agent has no `replay` store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The proof's 16-byte nonce, base64url without padding.
    pub nonce: String,
    /// When the proof is refused as stale (Unix seconds, `timestamp + max_skew + 1`): a claim
    /// that reaches the agent at or after it is refused, never won.
    pub expires_at: u64,
    /// Until when the fleet must remember the nonce (Unix seconds, on the claimer's clock): past
    /// the last moment any replica whose clock lags the claimer's by up to `max_skew` could still
    /// accept the proof (`timestamp + 2 × max_skew + 1`). Absent (a filter from before it): until
    /// `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_until: Option<u64>,
}

/// The batch form of `POST /v1/replay` (what the filter sends): claim every nonce, each until its
/// own `expires_at`. The answer is 200 with a [`ReplayBatchReply`], one verdict per claim in the
/// order sent; 503 `{"error": "replay_unavailable"}` when Redis did not answer the batch in time
/// (no verdict is then known, for any claim); 404 and 400 as for one claim. The agent also takes
/// a single [`ReplayRequest`] (a filter from before batching, during a rolling upgrade).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBatchRequest {
    /// The claims, at most [`MAX_REPLAY_BATCH`].
    pub claims: Vec<ReplayRequest>,
}

/// The most claims one `POST /v1/replay` may carry.
pub const MAX_REPLAY_BATCH: usize = 256;

/// One claim's verdict in a [`ReplayBatchReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayVerdict {
    /// First sighting across the fleet: recorded until its `keep_until`.
    Claimed,
    /// Claimed before, by any replica.
    Replay,
    /// The proof expired before its claim reached the agent: refused, nothing recorded (only for
    /// claims that carry `keep_until`).
    Stale,
}

/// The 200 reply to a [`ReplayBatchRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBatchReply {
    /// One verdict per claim, in the order of the request's `claims`.
    pub verdicts: Vec<ReplayVerdict>,
}

/// The body of `POST /v1/streams`: which subject's key, in which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    /// The epoch id (the proof's).
    pub epoch: String,
    /// The subject (canonical: [`valid_subject`](crate::valid_subject)).
    pub subject: String,
}

/// The 200 reply to `POST /v1/streams`: the subject's key `K` in that epoch and the epoch's public
/// parameters (the filter checks them against its own, or, for an epoch it does not list and
/// `agent.any_epoch`, takes them). A refusal is 404 (`unknown_epoch`: no such epoch, or retired) or
/// 400 (`bad_request`: not a canonical subject), with `{"error": code}`. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamReply {
    /// `K` ([`SubjectKey::to_base64`](crate::entropy::SubjectKey::to_base64)): 16 bytes,
    /// base64url without padding.
    pub key: String,
    /// The epoch's file size.
    pub file_size: u64,
    /// The epoch's interval count.
    pub interval_count: u32,
    /// How long the filter may keep the stream, in seconds (it also applies its own bound).
    pub ttl_secs: u64,
    /// When the epoch retires (Unix seconds), if it is being rotated out: the filter keeps the
    /// stream no longer than that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl core::fmt::Debug for StreamReply {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamReply")
            .field("key", &"<redacted>")
            .field("file_size", &self.file_size)
            .field("interval_count", &self.interval_count)
            .field("ttl_secs", &self.ttl_secs)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The path of the credentials callout for an API id ([`valid_id`](crate::valid_id): nothing to
/// escape).
pub fn credentials_path(api: &str) -> String {
    format!("/v1/credentials/{api}")
}

/// The 200 reply to `GET /v1/credentials/{api}`: the API's agent-supplied headers (lowercase
/// name → value, secrets) and how long the filter may use them before asking again. A failure
/// is 404 (`unknown_api`) or 503 (`credentials_unavailable`: a source failed past its stale
/// window), with `{"error": code}`. `Debug` never prints the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsReply {
    /// Header name → value.
    pub headers: BTreeMap<String, String>,
    /// Seconds the values may be used from now.
    pub ttl_secs: u64,
}

impl core::fmt::Debug for CredentialsReply {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CredentialsReply")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape() {
        let r = GroupsReply {
            subject: "carol".into(),
            found: true,
            groups: vec!["reports".into()],
            entry_subject: Some("Carol".into()),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"subject":"carol","found":true,"groups":["reports"],"entry_subject":"Carol"}"#
        );
        assert_eq!(serde_json::from_str::<GroupsReply>(&json).unwrap(), r);
        let not_found: GroupsReply =
            serde_json::from_str(r#"{"subject":"x","found":false,"groups":[]}"#).unwrap();
        assert_eq!(not_found.entry_subject, None);
        assert_eq!(
            serde_json::to_string(&not_found).unwrap(),
            r#"{"subject":"x","found":false,"groups":[]}"#
        );
        let auth = AuthenticateReply {
            subject: "alice".into(),
            authenticated: true,
            groups: vec![],
            entry_subject: Some("alice".into()),
        };
        assert_eq!(
            serde_json::to_string(&auth).unwrap(),
            r#"{"subject":"alice","authenticated":true,"groups":[],"entry_subject":"alice"}"#
        );
    }

    #[test]
    fn the_stream_wire_shape() {
        let req: StreamRequest =
            serde_json::from_str(r#"{"epoch":"e1","subject":"alice"}"#).unwrap();
        assert_eq!(req.subject, "alice");
        assert!(serde_json::from_str::<StreamRequest>(r#"{"epoch":"e1"}"#).is_err());
        let reply = StreamReply {
            key: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            file_size: 65536,
            interval_count: 64,
            ttl_secs: 300,
            expires_at: None,
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            json,
            r#"{"key":"AAAAAAAAAAAAAAAAAAAAAA","file_size":65536,"interval_count":64,"ttl_secs":300}"#
        );
        assert_eq!(serde_json::from_str::<StreamReply>(&json).unwrap(), reply);
        assert!(!format!("{reply:?}").contains("AAAA"));
        let retiring: StreamReply = serde_json::from_str(
            r#"{"key":"AAAAAAAAAAAAAAAAAAAAAA","file_size":65536,"interval_count":64,"ttl_secs":300,"expires_at":1800000000}"#,
        )
        .unwrap();
        assert_eq!(retiring.expires_at, Some(1_800_000_000));
    }

    #[test]
    fn credentials_wire_shape_and_debug_hides_values() {
        let r: CredentialsReply =
            serde_json::from_str(r#"{"headers":{"authorization":"Bearer s3cret"},"ttl_secs":30}"#)
                .unwrap();
        assert_eq!(r.ttl_secs, 30);
        assert_eq!(r.headers["authorization"], "Bearer s3cret");
        let debug = format!("{r:?}");
        assert!(
            debug.contains("authorization") && !debug.contains("s3cret"),
            "{debug}"
        );
        assert!(
            serde_json::from_str::<CredentialsReply>(r#"{"headers":{},"ttl_secs":1,"x":1}"#)
                .is_err()
        );
        assert_eq!(credentials_path("payments"), "/v1/credentials/payments");
    }
}
