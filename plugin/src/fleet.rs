//! Fleet replay (`replay.scope: "fleet"`): after the local claim, the nonce is claimed again in the
//! fleet's Redis through the agent (`POST /v1/replay`), so a proof is accepted once across every
//! gateway replica sharing that Redis, and still refused after any replica restarts.
//!
//! The local table stays the first, cheap filter (a replay on the same Envoy never leaves it);
//! only a nonce new to this Envoy costs the callout. What the callout's answer means is decided
//! here; the request flow sends it and acts on the answer.

use autoid_protocol::directory::ReplayRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The fleet's answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// First sighting across the fleet.
    Claimed,
    /// Claimed before, by some replica.
    Replay,
    /// No usable answer (the agent or Redis down or slow, an error status, a malformed reply):
    /// the failure policy decides (`replay.on_fleet_failure`).
    Failed,
}

/// The body of the claim.
pub fn claim_body(nonce: &[u8; 16], expires_at: u64) -> Vec<u8> {
    let request = ReplayRequest {
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        expires_at,
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

/// Reads the agent's answer: 200 with `{"claimed": true}` is a claim, 409 a replay, anything
/// else a failure.
pub fn answer(status: Option<u32>, body: &[u8]) -> Answer {
    #[derive(serde::Deserialize)]
    struct Claimed {
        claimed: bool,
    }
    match status {
        Some(200) => match serde_json::from_slice::<Claimed>(body) {
            Ok(Claimed { claimed: true }) => Answer::Claimed,
            _ => Answer::Failed,
        },
        Some(409) => Answer::Replay,
        _ => Answer::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_names_the_nonce_and_its_expiry() {
        let body = claim_body(&[0xfb; 16], 1_700_000_061);
        let parsed: ReplayRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.expires_at, 1_700_000_061);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parsed.nonce).unwrap(),
            vec![0xfb; 16]
        );
    }

    #[test]
    fn only_an_explicit_claim_is_a_claim() {
        assert_eq!(answer(Some(200), br#"{"claimed":true}"#), Answer::Claimed);
        assert_eq!(answer(Some(409), br#"{"error":"replay"}"#), Answer::Replay);
        for (status, body) in [
            (Some(200), &br#"{"claimed":false}"#[..]),
            (Some(200), b"not json"),
            (Some(200), b""),
            (Some(503), br#"{"error":"replay_unavailable"}"#),
            (Some(404), br#"{"error":"no_fleet"}"#),
            (None, b""),
        ] {
            assert_eq!(answer(status, body), Answer::Failed, "{status:?}");
        }
    }
}
