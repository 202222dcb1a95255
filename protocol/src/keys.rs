//! RSA key pairs with key ids: generation, PEM (PKCS#8 private, SPKI public), OAEP wrap and unwrap.

use rsa::oaep::{DecryptingKey, EncryptingKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::rand_core::CryptoRng;
use rsa::traits::{Decryptor, PublicKeyParts, RandomizedEncryptor};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use crate::Reject;
use crate::{Error, valid_id};

pub use crate::policy::ALLOWED_BITS;

/// The OAEP label binds a wrapped session key to its key id (docs/PROTOCOL.md, "Session").
pub fn oaep_label(kid: &str) -> Vec<u8> {
    let mut label = b"autoid/v1 session ".to_vec();
    label.extend_from_slice(kid.as_bytes());
    label
}

fn check_kid(kid: &str) -> Result<(), Error> {
    if valid_id(kid) {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "key id",
            value: kid.to_owned(),
        })
    }
}

fn check_bits(bits: usize) -> Result<(), Error> {
    if ALLOWED_BITS.contains(&bits) {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "rsa modulus size",
            value: bits.to_string(),
        })
    }
}

/// The gateway's private key and its key id.
#[derive(Clone)]
pub struct GatewayKey {
    kid: String,
    private: RsaPrivateKey,
    decrypting: DecryptingKey<Sha256>,
    public: RsaPublicKey,
}

impl core::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GatewayKey")
            .field("kid", &self.kid)
            .field("bits", &self.bits())
            .finish()
    }
}

impl GatewayKey {
    /// Generates a new key pair (slow: seconds for 3072 bits).
    pub fn generate<R: CryptoRng + ?Sized>(
        kid: &str,
        bits: usize,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_kid(kid)?;
        check_bits(bits)?;
        let key = RsaPrivateKey::new(rng, bits).map_err(|e| Error::Rsa(e.to_string()))?;
        Ok(Self::from_key(kid, key))
    }

    fn from_key(kid: &str, key: RsaPrivateKey) -> Self {
        let public = key.to_public_key();
        let decrypting = DecryptingKey::new_with_label(key.clone(), oaep_label(kid));
        GatewayKey {
            kid: kid.to_owned(),
            private: key,
            decrypting,
            public,
        }
    }

    /// Parses a PKCS#8 private key PEM.
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, Error> {
        check_kid(kid)?;
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| Error::Key {
            what: "private key pem",
            detail: e.to_string(),
        })?;
        check_bits(key.size() * 8)?;
        Ok(Self::from_key(kid, key))
    }

    /// The private key as PKCS#8 PEM (a secret: write it with mode 0600).
    pub fn to_pem(&self) -> Result<String, Error> {
        let pem = self
            .private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Key {
                what: "private key pem",
                detail: e.to_string(),
            })?;
        Ok(pem.to_string())
    }

    /// The private key as PKCS#8 DER, for a native RSA implementation to load (a secret).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, Error> {
        let der = self.private.to_pkcs8_der().map_err(|e| Error::Key {
            what: "private key der",
            detail: e.to_string(),
        })?;
        Ok(der.as_bytes().to_vec())
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.size() * 8
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::from_key(&self.kid, self.public.clone())
    }

    /// Unwraps a session: RSA-OAEP-SHA256 with the key id as label. Blinded (RUSTSEC-2023-0071).
    pub(crate) fn unwrap(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        if wrapped.len() != self.public.size() {
            return None;
        }
        self.decrypting.decrypt(wrapped).ok()
    }

    /// The cold path: RSA-OAEP unwrap of a session wrapped for this key (milliseconds).
    pub fn unwrap_session(&self, wrapped: &[u8]) -> Result<crate::session::SessionKey, Reject> {
        let plaintext = self.unwrap(wrapped).ok_or(Reject::Unwrap)?;
        crate::session::SessionKey::from_bytes(&plaintext).ok_or(Reject::Unwrap)
    }
}

/// The gateway's public key and its key id, as clients hold it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kid: String,
    encrypting: EncryptingKey<Sha256>,
    key: RsaPublicKey,
}

impl PublicKey {
    fn from_key(kid: &str, key: RsaPublicKey) -> Self {
        let encrypting = EncryptingKey::new_with_label(key.clone(), oaep_label(kid));
        PublicKey {
            kid: kid.to_owned(),
            encrypting,
            key,
        }
    }

    /// Parses an SPKI public key PEM.
    pub fn from_pem(kid: &str, pem: &str) -> Result<Self, Error> {
        check_kid(kid)?;
        let key = RsaPublicKey::from_public_key_pem(pem).map_err(|e| Error::Key {
            what: "public key pem",
            detail: e.to_string(),
        })?;
        check_bits(key.size() * 8)?;
        Ok(Self::from_key(kid, key))
    }

    /// The public key as SPKI PEM.
    pub fn to_pem(&self) -> Result<String, Error> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Key {
                what: "public key pem",
                detail: e.to_string(),
            })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Wraps a session's plaintext with RSA-OAEP-SHA256.
    pub fn wrap<R: CryptoRng + ?Sized>(
        &self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        self.encrypting
            .encrypt_with_rng(rng, plaintext)
            .map_err(|e| Error::Rsa(e.to_string()))
    }
}
