//! The v3 possession ticket (docs/PROTOCOL.md §12): a full-form proof's fifth part, which lets a
//! gateway check possession of the entropy file cheaply, before it spends an RSA unwrap on the
//! session the proof opens.
//!
//! `ticket = u64be(now) || nonce[16] || lp8(epoch) || lp8(subject) || tag[16]`, with
//! `tag = HMAC-SHA256(key = digest, "autoid/v3 possession" || session_id)[..16]` and `digest`
//! exactly the proof's §5 digest (so it needs the entropy file, the request, nonce and time).

use hkdf::hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::intervals::Bindings;
use crate::policy::NONCE_LEN;
use crate::session::SessionId;
use crate::wire::Reader;
use crate::{Reject, Request, valid_id, valid_subject};

/// Bytes of a ticket's tag.
pub const TICKET_TAG_LEN: usize = 16;
/// The shortest ticket: one-byte epoch and subject.
pub const MIN_TICKET_LEN: usize = 8 + NONCE_LEN + 1 + 1 + 1 + 1 + TICKET_TAG_LEN;
/// The longest ticket: 32-byte epoch, 64-byte subject.
pub const MAX_TICKET_LEN: usize = MIN_TICKET_LEN + 31 + 63;
const TAG_LABEL: &[u8] = b"autoid/v3 possession";

/// A parsed ticket: nothing in it is trusted until its tag is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The proof's timestamp (the sealed payload must carry the same).
    pub timestamp: u64,
    /// The proof's nonce (the sealed payload must carry the same).
    pub nonce: [u8; NONCE_LEN],
    /// The entropy epoch id.
    pub epoch: String,
    /// The subject.
    pub subject: String,
    /// The first 16 bytes of the possession HMAC.
    pub tag: [u8; TICKET_TAG_LEN],
}

impl Ticket {
    /// The ticket for a proof with this digest, opening the session `session_id`.
    pub fn new(
        timestamp: u64,
        nonce: [u8; NONCE_LEN],
        epoch: &str,
        subject: &str,
        digest: &[u8; 32],
        session_id: &SessionId,
    ) -> Ticket {
        Ticket {
            timestamp,
            nonce,
            epoch: epoch.to_owned(),
            subject: subject.to_owned(),
            tag: tag(digest, session_id),
        }
    }

    /// `u64be(now) || nonce || lp8(epoch) || lp8(subject) || tag`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_TICKET_LEN);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        // Ids are at most 32 bytes and subjects at most 64 (their grammars).
        out.push(self.epoch.len() as u8);
        out.extend_from_slice(self.epoch.as_bytes());
        out.push(self.subject.len() as u8);
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&self.tag);
        out
    }

    /// Parses a ticket: any deviation from the grammar (lengths, an epoch id or subject outside
    /// its grammar, trailing bytes) is [`Reject::Malformed`], as the rest of the header.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ticket, Reject> {
        if !(MIN_TICKET_LEN..=MAX_TICKET_LEN).contains(&bytes.len()) {
            return Err(Reject::Malformed);
        }
        let mut r = Reader::new(bytes);
        let timestamp = r.u64().ok_or(Reject::Malformed)?;
        let nonce = r.array::<NONCE_LEN>().ok_or(Reject::Malformed)?;
        let epoch = r.str8().filter(|e| valid_id(e)).ok_or(Reject::Malformed)?;
        let subject = r
            .str8()
            .filter(|s| valid_subject(s))
            .ok_or(Reject::Malformed)?;
        let tag = r.array::<TICKET_TAG_LEN>().ok_or(Reject::Malformed)?;
        if !r.is_empty() {
            return Err(Reject::Malformed);
        }
        Ok(Ticket {
            timestamp,
            nonce,
            epoch: epoch.to_owned(),
            subject: subject.to_owned(),
            tag,
        })
    }

    /// The interval bindings this ticket names for `request`.
    pub fn bindings<'a>(&'a self, request: Request<'a>) -> Bindings<'a> {
        Bindings {
            subject: &self.subject,
            epoch: &self.epoch,
            nonce: &self.nonce,
            timestamp: self.timestamp,
            request,
        }
    }

    /// Whether the tag is the one `digest` (recomputed by the gateway from the subject's entropy)
    /// gives for `session_id`, in constant time: [`Reject::Entropy`] if not.
    pub fn check_tag(&self, digest: &[u8; 32], session_id: &SessionId) -> Result<(), Reject> {
        if bool::from(tag(digest, session_id).ct_eq(&self.tag)) {
            Ok(())
        } else {
            Err(Reject::Entropy)
        }
    }
}

/// `HMAC-SHA256(key = digest, "autoid/v3 possession" || session_id)[..16]`.
fn tag(digest: &[u8; 32], session_id: &SessionId) -> [u8; TICKET_TAG_LEN] {
    let mut out = [0u8; TICKET_TAG_LEN];
    // HMAC accepts a key of any length: this cannot fail.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(digest) {
        mac.update(TAG_LABEL);
        mac.update(session_id);
        out.copy_from_slice(&mac.finalize().into_bytes()[..TICKET_TAG_LEN]);
    }
    out
}
