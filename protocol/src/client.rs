//! The caller's side: open a session once, then make a fresh proof per request.

use aes_gcm::aead::{Aead, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, KeyInit};
use rsa::rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::entropy::EntropyFile;
use crate::header::{
    IV_LEN, NONCE_LEN, Payload, Proof, SessionRef, Version, associated_data_for, session_id,
    session_ref,
};
use crate::intervals::{Bindings, Intervals};
use crate::keys::PublicKey;
use crate::ticket::Ticket;
use crate::{Error, Request, valid_id, valid_subject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionJson {
    autoid_session: u32,
    kid: String,
    key: String,
    wrapped: String,
    issued_at: u64,
}

/// Which header form a proof takes (docs/PROTOCOL.md §11; in version 3, §12, the full form also
/// carries the possession ticket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `v1`, the wrapped session key in every proof.
    V1,
    /// `v2`, the wrapped session key: opens the session at a gateway that does not hold it.
    Full,
    /// `v2`, the 16-byte session reference: for a session the gateway already holds. A gateway
    /// that does not hold it answers 401 with `error="unknown_session"`: resend in [`Form::Full`].
    Compact,
}

/// A client session: a random AES-256 key, wrapped once for the gateway and reused per request.
#[derive(Clone)]
pub struct Session {
    kid: String,
    key: [u8; 32],
    wrapped: Vec<u8>,
    issued_at: u64,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("kid", &self.kid)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session: draws the key from `rng` (a CSPRNG) and wraps `key || u64be(now)`.
    pub fn open<R: CryptoRng + ?Sized>(
        gateway: &PublicKey,
        now: u64,
        rng: &mut R,
    ) -> Result<Session, Error> {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut plaintext = Vec::with_capacity(40);
        plaintext.extend_from_slice(&key);
        plaintext.extend_from_slice(&now.to_be_bytes());
        let wrapped = gateway.wrap(&plaintext, rng)?;
        Ok(Session {
            kid: gateway.kid().to_owned(),
            key,
            wrapped,
            issued_at: now,
        })
    }

    /// The session as a small JSON document, so a client can reuse it across processes (it holds
    /// the session key: store it with mode 0600).
    pub fn to_json(&self) -> String {
        let raw = SessionJson {
            autoid_session: 1,
            kid: self.kid.clone(),
            key: URL_SAFE_NO_PAD.encode(self.key),
            wrapped: URL_SAFE_NO_PAD.encode(&self.wrapped),
            issued_at: self.issued_at,
        };
        serde_json::to_string(&raw).unwrap_or_default()
    }

    /// Parses [`Session::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Session, Error> {
        let bad = |detail: String| Error::Format {
            what: "session file",
            detail,
        };
        let raw: SessionJson = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.autoid_session != 1 || !valid_id(&raw.kid) {
            return Err(bad("unsupported version or bad kid".to_owned()));
        }
        let key = URL_SAFE_NO_PAD
            .decode(&raw.key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| bad("key: expected 32 bytes in base64url".to_owned()))?;
        let wrapped = URL_SAFE_NO_PAD
            .decode(&raw.wrapped)
            .map_err(|_| bad("wrapped: not base64url".to_owned()))?;
        Ok(Session {
            kid: raw.kid,
            key,
            wrapped,
            issued_at: raw.issued_at,
        })
    }

    /// When the session was opened (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// The gateway's key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The session's cache key, as the gateway computes it.
    pub fn id(&self) -> [u8; 32] {
        session_id(&self.kid, &self.wrapped)
    }

    /// The session's reference, which a compact proof carries.
    pub fn reference(&self) -> SessionRef {
        session_ref(&self.id())
    }

    /// Makes the v1 header value proving possession of `file` for `request` at time `now`.
    /// With `body`, the proof also binds the SHA-256 of the request body.
    pub fn prove<R: CryptoRng + ?Sized>(
        &self,
        file: &EntropyFile,
        request: &Request<'_>,
        now: u64,
        body: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<String, Error> {
        self.prove_as(Form::V1, file, request, now, body, rng)
    }

    /// [`Session::prove`] in the header form `form` (`Full` and `Compact` in version 2).
    pub fn prove_as<R: CryptoRng + ?Sized>(
        &self,
        form: Form,
        file: &EntropyFile,
        request: &Request<'_>,
        now: u64,
        body: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<String, Error> {
        let version = match form {
            Form::V1 => Version::V1,
            Form::Full | Form::Compact => Version::V2,
        };
        self.prove_in(version, form, file, request, now, body, rng)
    }

    /// [`Session::prove`] in `version` and `form`: v3's full form carries the possession
    /// ticket (docs/PROTOCOL.md §12); under [`Version::V1`] the form is always v1's.
    #[allow(clippy::too_many_arguments)]
    pub fn prove_in<R: CryptoRng + ?Sized>(
        &self,
        version: Version,
        form: Form,
        file: &EntropyFile,
        request: &Request<'_>,
        now: u64,
        body: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<String, Error> {
        let form = if version == Version::V1 {
            Form::V1
        } else {
            form
        };
        let version = if form == Form::V1 {
            Version::V1
        } else {
            version
        };
        if !valid_subject(file.subject()) {
            return Err(Error::Invalid {
                what: "subject",
                value: file.subject().to_owned(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);

        let bindings = Bindings {
            subject: file.subject(),
            epoch: file.epoch(),
            nonce: &nonce,
            timestamp: now,
            request: *request,
        };
        let intervals =
            Intervals::derive(&bindings, file.data().len() as u64, file.interval_count());
        let digest = intervals.digest_file(file.data());
        let payload = Payload {
            timestamp: now,
            nonce,
            body_digest: body.map(|b| Sha256::digest(b).into()),
            epoch: file.epoch().to_owned(),
            subject: file.subject().to_owned(),
            digest,
        };
        let aad = associated_data_for(version, &self.kid, request).ok_or(Error::Invalid {
            what: "request binding (method, authority or path over 8192 bytes)",
            value: String::new(),
        })?;
        let cipher = Aes256Gcm::new(&self.key.into());
        let msg = payload.to_bytes();
        let ciphertext = cipher
            .encrypt(
                &iv.into(),
                AeadPayload {
                    msg: &msg,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Invalid {
                what: "aes-gcm seal",
                value: String::new(),
            })?;
        let mut sealed = Vec::with_capacity(IV_LEN + ciphertext.len());
        sealed.extend_from_slice(&iv);
        sealed.extend_from_slice(&ciphertext);
        if version == Version::V3 && form == Form::Full {
            let ticket = Ticket::new(
                now,
                nonce,
                file.epoch(),
                file.subject(),
                &digest,
                &self.id(),
            );
            return Ok(Proof::encode_with_ticket(
                &self.kid,
                &self.wrapped,
                &sealed,
                &ticket,
            ));
        }
        let reference;
        let session: &[u8] = match form {
            Form::V1 | Form::Full => &self.wrapped,
            Form::Compact => {
                reference = self.reference();
                &reference
            }
        };
        Ok(Proof::encode_parts(version, &self.kid, session, &sealed))
    }
}
