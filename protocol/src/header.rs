//! The proof header, base64url without padding, with hard caps:
//! `v1.<kid>.<wrapped>.<sealed>`, and in version 2 either the same full form
//! `v2.<kid>.<wrapped>.<sealed>` or the compact warm form `v2.<kid>.<session ref>.<sealed>`, which
//! names a session the gateway already holds by the first 16 bytes of its id. Version 3 adds a
//! fifth part to the full form, the possession ticket ([`crate::ticket`]):
//! `v3.<kid>.<wrapped>.<sealed>.<ticket>`; its compact form is v2's, `v3.<kid>.<ref>.<sealed>`.
//!
//! Also the two byte layouts inside it: the wrapped session plaintext and the sealed payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use crate::policy::NONCE_LEN;
use crate::policy::{ALLOWED_BITS, MAX_BINDING_LEN, MAX_HEADER_LEN};
pub use crate::session::{
    SESSION_PLAINTEXT_LEN, SESSION_REF_LEN, SessionId, SessionRef, session_id, session_ref,
};
use crate::ticket::Ticket;
use crate::wire::{Reader, put_lp16};
use crate::{Reject, Request, valid_id, valid_subject};

/// The default header name.
pub const DEFAULT_HEADER: &str = "x-autoid-proof";
/// Bytes of an AES-GCM IV.
pub const IV_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
const MIN_PAYLOAD: usize = 8 + NONCE_LEN + 1 + 1 + 1 + 1 + 32;
const MAX_PAYLOAD: usize = MIN_PAYLOAD + 32 + 32 + 128;

/// A protocol version the gateway accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `v1`: the wrapped session key in every proof.
    V1,
    /// `v2`: the wrapped key once, then a 16-byte session reference (docs/PROTOCOL.md §11).
    V2,
    /// `v3`: v2, with a possession ticket in the full form (docs/PROTOCOL.md §12).
    V3,
}

impl Version {
    /// The header's version part.
    pub fn tag(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
        }
    }

    fn aad_label(self) -> &'static [u8] {
        match self {
            Version::V1 => b"autoid/v1",
            Version::V2 => b"autoid/v2",
            Version::V3 => b"autoid/v3",
        }
    }
}

/// How a proof names its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPart {
    /// The RSA-OAEP ciphertext of the session plaintext (v1, and v2's full form).
    Wrapped(Vec<u8>),
    /// v2's compact form: the reference of a session the gateway already holds.
    Reference(SessionRef),
}

/// A parsed header: nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    version: Version,
    kid: String,
    session: SessionPart,
    sealed: Vec<u8>,
    /// v3's full form: the possession ticket.
    ticket: Option<Ticket>,
}

impl Proof {
    /// Parses a header value: size cap first, then the grammar.
    pub fn parse(value: &str) -> Result<Proof, Reject> {
        if value.len() > MAX_HEADER_LEN {
            return Err(Reject::Oversized);
        }
        let mut parts = value.split('.');
        let (Some(version), Some(kid), Some(wrapped), Some(sealed), ticket, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Reject::Malformed);
        };
        let version = match version {
            "v1" => Version::V1,
            "v2" => Version::V2,
            "v3" => Version::V3,
            _ => {
                let looks_versioned = version.len() <= 4
                    && version.starts_with('v')
                    && version[1..].bytes().all(|b| b.is_ascii_digit());
                return Err(if looks_versioned {
                    Reject::UnsupportedVersion
                } else {
                    Reject::Malformed
                });
            }
        };
        if !valid_id(kid) {
            return Err(Reject::Malformed);
        }
        let wrapped = URL_SAFE_NO_PAD
            .decode(wrapped)
            .map_err(|_| Reject::Malformed)?;
        let session = if version != Version::V1 && wrapped.len() == SESSION_REF_LEN {
            let mut reference = [0u8; SESSION_REF_LEN];
            reference.copy_from_slice(&wrapped);
            SessionPart::Reference(reference)
        } else if ALLOWED_BITS.iter().any(|bits| bits / 8 == wrapped.len()) {
            SessionPart::Wrapped(wrapped)
        } else {
            return Err(Reject::Malformed);
        };
        let sealed = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Reject::Malformed)?;
        if !(IV_LEN + MIN_PAYLOAD + TAG_LEN..=IV_LEN + MAX_PAYLOAD + TAG_LEN)
            .contains(&sealed.len())
        {
            return Err(Reject::Malformed);
        }
        // v3's full form carries a ticket, and nothing else does.
        let ticket = match (version, &session, ticket) {
            (Version::V3, SessionPart::Wrapped(_), Some(t)) => Some(Ticket::from_bytes(
                &URL_SAFE_NO_PAD.decode(t).map_err(|_| Reject::Malformed)?,
            )?),
            (Version::V3, SessionPart::Wrapped(_), None) => return Err(Reject::Malformed),
            (_, _, Some(_)) => return Err(Reject::Malformed),
            (_, _, None) => None,
        };
        Ok(Proof {
            version,
            kid: kid.to_owned(),
            session,
            sealed,
            ticket,
        })
    }

    /// Encodes a v1 header value from its parts.
    pub fn encode(kid: &str, wrapped: &[u8], sealed: &[u8]) -> String {
        Self::encode_parts(Version::V1, kid, wrapped, sealed)
    }

    /// Encodes a header value of `version` whose session part is `session` (a wrapped key, or in
    /// v2 a 16-byte reference).
    pub fn encode_parts(version: Version, kid: &str, session: &[u8], sealed: &[u8]) -> String {
        format!(
            "{}.{kid}.{}.{}",
            version.tag(),
            URL_SAFE_NO_PAD.encode(session),
            URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    /// Encodes a v3 full-form header value: [`Proof::encode_parts`] and the ticket.
    pub fn encode_with_ticket(kid: &str, wrapped: &[u8], sealed: &[u8], ticket: &Ticket) -> String {
        format!(
            "{}.{}",
            Self::encode_parts(Version::V3, kid, wrapped, sealed),
            URL_SAFE_NO_PAD.encode(ticket.to_bytes())
        )
    }

    /// This proof as a header value again.
    pub fn to_header(&self) -> String {
        let session: &[u8] = match &self.session {
            SessionPart::Wrapped(w) => w,
            SessionPart::Reference(r) => r,
        };
        match &self.ticket {
            Some(t) => Self::encode_with_ticket(&self.kid, session, &self.sealed, t),
            None => Self::encode_parts(self.version, &self.kid, session, &self.sealed),
        }
    }

    /// v3's possession ticket (full form only).
    pub fn ticket(&self) -> Option<&Ticket> {
        self.ticket.as_ref()
    }

    /// The header's version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The key id the session is wrapped for.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// How the proof names its session.
    pub fn session(&self) -> &SessionPart {
        &self.session
    }

    /// The RSA-OAEP ciphertext of the session plaintext; `None` in the compact form.
    pub fn wrapped(&self) -> Option<&[u8]> {
        match &self.session {
            SessionPart::Wrapped(w) => Some(w),
            SessionPart::Reference(_) => None,
        }
    }

    /// The session's reference: given in the compact form, else the first bytes of its id.
    pub fn session_ref(&self) -> SessionRef {
        match &self.session {
            SessionPart::Wrapped(w) => session_ref(&session_id(&self.kid, w)),
            SessionPart::Reference(r) => *r,
        }
    }

    /// `iv || AES-GCM ciphertext || tag`.
    pub fn sealed(&self) -> &[u8] {
        &self.sealed
    }

    /// The session's cache key; `None` in the compact form, which carries only its reference.
    pub fn session_id(&self) -> Option<SessionId> {
        self.wrapped().map(|w| session_id(&self.kid, w))
    }

    /// The associated data this proof was sealed with for `request`.
    pub fn associated_data(&self, request: &Request<'_>) -> Option<Vec<u8>> {
        associated_data_for(self.version, &self.kid, request)
    }
}

/// The v1 associated data: `"autoid/v1" || lp16(kid) || lp16(method) || lp16(lowercase
/// authority) || lp16(path)`. `None` if a binding is longer than the protocol allows.
pub fn associated_data(kid: &str, request: &Request<'_>) -> Option<Vec<u8>> {
    associated_data_for(Version::V1, kid, request)
}

/// The associated data of `version`: its label (`"autoid/v1"` or `"autoid/v2"`), then
/// `lp16(kid) || lp16(method) || lp16(lowercase authority) || lp16(path)`.
pub fn associated_data_for(version: Version, kid: &str, request: &Request<'_>) -> Option<Vec<u8>> {
    let label = version.aad_label();
    let Request {
        method,
        authority,
        path,
    } = *request;
    if [method, authority, path]
        .iter()
        .any(|s| s.len() > MAX_BINDING_LEN)
    {
        return None;
    }
    let mut aad = Vec::with_capacity(
        label.len() + 8 + kid.len() + method.len() + authority.len() + path.len(),
    );
    aad.extend_from_slice(label);
    put_lp16(&mut aad, kid.as_bytes());
    put_lp16(&mut aad, method.as_bytes());
    let start = aad.len() + 2;
    put_lp16(&mut aad, authority.as_bytes());
    aad[start..].make_ascii_lowercase();
    put_lp16(&mut aad, path.as_bytes());
    Some(aad)
}

/// The sealed payload: what a proof asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Unix seconds when the proof was made.
    pub timestamp: u64,
    /// Fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// SHA-256 of the request body, when the proof binds it.
    pub body_digest: Option<[u8; 32]>,
    /// The entropy epoch id.
    pub epoch: String,
    /// The subject.
    pub subject: String,
    /// The digest over the intervals.
    pub digest: [u8; 32],
}

impl Payload {
    /// `u64be timestamp || nonce[16] || u8 flags || [body digest[32] if flags & 1] || u8 len ||
    /// epoch || u8 len || subject || digest[32]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_PAYLOAD);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        match &self.body_digest {
            Some(d) => {
                out.push(1);
                out.extend_from_slice(d);
            }
            None => out.push(0),
        }
        out.push(self.epoch.len() as u8);
        out.extend_from_slice(self.epoch.as_bytes());
        out.push(self.subject.len() as u8);
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&self.digest);
        out
    }

    /// Parses the payload; any deviation is [`Reject::Payload`], a bad subject [`Reject::Subject`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Payload, Reject> {
        let mut r = Reader::new(bytes);
        let timestamp = r.u64().ok_or(Reject::Payload)?;
        let nonce = r.array::<NONCE_LEN>().ok_or(Reject::Payload)?;
        let body_digest = match r.u8().ok_or(Reject::Payload)? {
            0 => None,
            1 => Some(r.array::<32>().ok_or(Reject::Payload)?),
            _ => return Err(Reject::Payload),
        };
        let epoch = r.str8().filter(|e| valid_id(e)).ok_or(Reject::Payload)?;
        let subject = r.str8().ok_or(Reject::Payload)?;
        if !valid_subject(subject) {
            return Err(Reject::Subject);
        }
        let digest = r.array::<32>().ok_or(Reject::Payload)?;
        if !r.is_empty() {
            return Err(Reject::Payload);
        }
        Ok(Payload {
            timestamp,
            nonce,
            body_digest,
            epoch: epoch.to_owned(),
            subject: subject.to_owned(),
            digest,
        })
    }
}
