//! Epochs, per-subject entropy streams and entropy files.
//!
//! Byte `i` of a subject's entropy is byte `i mod 16` of `AES-128(K, u128be(i / 16))`, where
//! `K = HKDF-SHA256(salt = "autoid/v1 entropy", ikm = epoch secret, info = lp16(epoch id) ||
//! lp16(subject), L = 16)`: AES-128-CTR with a zero IV, so any range is computable without the rest.
//!
//! `K` is a [`SubjectKey`]: whoever holds the epoch derives it ([`Epoch::subject_key`]); a gateway
//! that holds only the epoch's public parameters ([`EpochParams`]) gets it from the agent and builds
//! the same stream from it ([`SubjectKey::stream`]). A leaked `K` exposes that subject's entropy in
//! that epoch, nothing else.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use rsa::rand_core::CryptoRng;
use sha2::Sha256;

use crate::intervals::Interval;
use crate::policy::{
    DEFAULT_FILE_SIZE, DEFAULT_INTERVAL_COUNT, INTERVAL_LEN, MAX_FILE_SIZE, MAX_INTERVAL_COUNT,
    MIN_FILE_SIZE, MIN_INTERVAL_COUNT,
};
use crate::wire::{Reader, put_lp16};
use crate::{Error, valid_id, valid_subject};

const ENTROPY_SALT: &[u8] = b"autoid/v1 entropy";
const FILE_MAGIC: &[u8; 8] = b"AUTOIDE1";

/// An epoch's public parameters: its id and what every file of the epoch shares. A gateway whose
/// agent holds the epoch's secret knows only these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochParams {
    id: String,
    file_size: u64,
    interval_count: u32,
}

impl EpochParams {
    /// Checks every parameter against the protocol's bounds.
    pub fn new(id: &str, file_size: u64, interval_count: u32) -> Result<Self, Error> {
        if !valid_id(id) {
            return Err(Error::Invalid {
                what: "epoch id",
                value: id.to_owned(),
            });
        }
        if !(MIN_FILE_SIZE..=MAX_FILE_SIZE).contains(&file_size) || !file_size.is_multiple_of(16) {
            return Err(Error::Invalid {
                what: "entropy file size (a multiple of 16 from 4096 to 2^28)",
                value: file_size.to_string(),
            });
        }
        if !(MIN_INTERVAL_COUNT..=MAX_INTERVAL_COUNT).contains(&interval_count) {
            return Err(Error::Invalid {
                what: "interval count (32 to 256)",
                value: interval_count.to_string(),
            });
        }
        Ok(EpochParams {
            id: id.to_owned(),
            file_size,
            interval_count,
        })
    }

    /// The epoch id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The size of every entropy file of this epoch.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// How many intervals a proof under this epoch covers.
    pub fn interval_count(&self) -> u32 {
        self.interval_count
    }
}

/// An entropy epoch: its public parameters and a 32-byte master secret. The gateway keeps epochs
/// (or asks the agent that keeps them), never files.
#[derive(Clone, PartialEq, Eq)]
pub struct Epoch {
    params: EpochParams,
    secret: [u8; 32],
}

impl core::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Epoch")
            .field("id", &self.params.id)
            .field("secret", &"<redacted>")
            .field("file_size", &self.params.file_size)
            .field("interval_count", &self.params.interval_count)
            .finish()
    }
}

/// One subject's key in one epoch (`K` above, 16 bytes): all that is needed to compute that
/// subject's entropy in that epoch, and nothing else. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey([u8; 16]);

impl core::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SubjectKey(<redacted>)")
    }
}

impl SubjectKey {
    /// The key from its 16 bytes (as the agent hands it over).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SubjectKey(bytes)
    }

    /// Parses the wire form: base64url without padding of exactly 16 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        <[u8; 16]>::try_from(bytes).ok().map(SubjectKey)
    }

    /// The wire form: base64url without padding (22 characters).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The subject's entropy stream under this key: the one code path for the gateway, the agent
    /// and the issuer.
    pub fn stream(&self) -> SubjectStream {
        SubjectStream {
            cipher: Aes128::new(&self.0.into()),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochJson {
    autoid_epoch: u32,
    id: String,
    secret: String,
    file_size: u64,
    interval_count: u32,
}

impl Epoch {
    /// Builds an epoch, checking every parameter against the protocol's bounds.
    pub fn new(
        id: &str,
        secret: [u8; 32],
        file_size: u64,
        interval_count: u32,
    ) -> Result<Self, Error> {
        Ok(Epoch {
            params: EpochParams::new(id, file_size, interval_count)?,
            secret,
        })
    }

    /// A new epoch with a fresh secret from `rng` and the default parameters.
    pub fn generate<R: CryptoRng + ?Sized>(id: &str, rng: &mut R) -> Result<Self, Error> {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Epoch::new(id, secret, DEFAULT_FILE_SIZE, DEFAULT_INTERVAL_COUNT)
    }

    /// Parses the epoch file (JSON).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let raw: EpochJson = serde_json::from_str(text).map_err(|e| Error::Format {
            what: "epoch file",
            detail: e.to_string(),
        })?;
        if raw.autoid_epoch != 1 {
            return Err(Error::Format {
                what: "epoch file",
                detail: format!("autoid_epoch: unsupported version {}", raw.autoid_epoch),
            });
        }
        Epoch::new(
            &raw.id,
            decode_secret(&raw.secret)?,
            raw.file_size,
            raw.interval_count,
        )
    }

    /// The epoch file (JSON). It holds the master secret: write it with mode 0600.
    pub fn to_json(&self) -> String {
        let raw = EpochJson {
            autoid_epoch: 1,
            id: self.params.id.clone(),
            secret: URL_SAFE_NO_PAD.encode(self.secret),
            file_size: self.params.file_size,
            interval_count: self.params.interval_count,
        };
        let mut text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The epoch's public parameters.
    pub fn params(&self) -> &EpochParams {
        &self.params
    }

    /// The epoch id.
    pub fn id(&self) -> &str {
        &self.params.id
    }

    /// The size of every entropy file of this epoch.
    pub fn file_size(&self) -> u64 {
        self.params.file_size
    }

    /// How many intervals a proof under this epoch covers.
    pub fn interval_count(&self) -> u32 {
        self.params.interval_count
    }

    /// The subject's key `K` in this epoch (HKDF-SHA256, module docs).
    pub fn subject_key(&self, subject: &str) -> SubjectKey {
        let id = self.params.id.as_bytes();
        let mut info = Vec::with_capacity(4 + id.len() + subject.len());
        put_lp16(&mut info, id);
        put_lp16(&mut info, subject.as_bytes());
        let mut key = [0u8; 16];
        // 16 bytes is always a valid HKDF-SHA256 output length.
        let _ = Hkdf::<Sha256>::new(Some(ENTROPY_SALT), &self.secret).expand(&info, &mut key);
        SubjectKey(key)
    }

    /// The subject's entropy stream: [`SubjectKey::stream`] of [`Epoch::subject_key`].
    pub fn stream(&self, subject: &str) -> SubjectStream {
        self.subject_key(subject).stream()
    }

    /// Materializes the subject's whole entropy file (what `autoid entropy issue` writes).
    pub fn issue(&self, subject: &str) -> Result<EntropyFile, Error> {
        if !valid_subject(subject) {
            return Err(Error::Invalid {
                what: "subject",
                value: subject.to_owned(),
            });
        }
        let len = usize::try_from(self.params.file_size).map_err(|_| Error::Invalid {
            what: "file size",
            value: self.params.file_size.to_string(),
        })?;
        let mut data = vec![0u8; len];
        self.stream(subject).fill(0, &mut data);
        Ok(EntropyFile {
            epoch: self.params.id.clone(),
            subject: subject.to_owned(),
            interval_count: self.params.interval_count,
            data,
        })
    }
}

/// Decodes a base64url secret of exactly 32 bytes.
pub(crate) fn decode_secret(text: &str) -> Result<[u8; 32], Error> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(Error::Format {
            what: "epoch secret",
            detail: "expected 32 bytes in base64url".to_owned(),
        })
}

/// One subject's entropy as a seekable stream (AES-128-CTR, zero IV, 128-bit big-endian counter).
#[derive(Clone)]
pub struct SubjectStream {
    cipher: Aes128,
}

impl core::fmt::Debug for SubjectStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SubjectStream(<redacted>)")
    }
}

impl SubjectStream {
    /// Block `index` of the stream: bytes `16 * index .. 16 * index + 16`.
    pub fn block(&self, index: u64) -> [u8; 16] {
        let mut block = u128::from(index).to_be_bytes().into();
        self.cipher.encrypt_block(&mut block);
        block.into()
    }

    /// The interval at each [`INTERVAL_LEN`]-aligned offset, the AES blocks encrypted as one
    /// batch (the software AES used in wasm processes several blocks at once).
    pub fn intervals_at(&self, offsets: &[u64]) -> Vec<Interval> {
        let mut blocks: Vec<aes::Block> = offsets
            .iter()
            .map(|o| u128::from(o / 16).to_be_bytes().into())
            .collect();
        self.cipher.encrypt_blocks(&mut blocks);
        offsets
            .iter()
            .zip(&blocks)
            .map(|(o, block)| {
                let start = usize::try_from(o % 16).unwrap_or(0);
                let mut out = Interval::default();
                out.copy_from_slice(&block[start..start + INTERVAL_LEN as usize]);
                out
            })
            .collect()
    }

    /// Fills `out` with the stream's bytes from `offset` on, a batch of blocks at a time.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        const BATCH: usize = 256;
        let mut pos = offset;
        let mut done = 0;
        let mut blocks = vec![aes::Block::default(); BATCH];
        while done < out.len() {
            let skip = usize::try_from(pos % 16).unwrap_or(0);
            let wanted = (skip + out.len() - done).div_ceil(16).min(BATCH);
            for (i, block) in blocks[..wanted].iter_mut().enumerate() {
                *block = u128::from(pos / 16 + i as u64).to_be_bytes().into();
            }
            self.cipher.encrypt_blocks(&mut blocks[..wanted]);
            for block in &blocks[..wanted] {
                let skip = usize::try_from(pos % 16).unwrap_or(0);
                let n = (16 - skip).min(out.len() - done);
                out[done..done + n].copy_from_slice(&block[skip..skip + n]);
                done += n;
                pos += n as u64;
            }
        }
    }
}

/// A subject's entropy file: what the client holds and must not lose.
#[derive(Clone, PartialEq, Eq)]
pub struct EntropyFile {
    epoch: String,
    subject: String,
    interval_count: u32,
    data: Vec<u8>,
}

impl core::fmt::Debug for EntropyFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EntropyFile")
            .field("epoch", &self.epoch)
            .field("subject", &self.subject)
            .field("interval_count", &self.interval_count)
            .field("len", &self.data.len())
            .finish()
    }
}

impl EntropyFile {
    /// Builds a file from its parts (for callers that hold the bytes some other way).
    pub fn new(epoch: &str, subject: &str, interval_count: u32, data: Vec<u8>) -> Self {
        EntropyFile {
            epoch: epoch.to_owned(),
            subject: subject.to_owned(),
            interval_count,
            data,
        }
    }

    /// The file format: `"AUTOIDE1" || u8 len || epoch || u8 len || subject || u32be interval
    /// count || u64be size || data`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.data.len());
        out.extend_from_slice(FILE_MAGIC);
        out.push(self.epoch.len() as u8);
        out.extend_from_slice(self.epoch.as_bytes());
        out.push(self.subject.len() as u8);
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&self.interval_count.to_be_bytes());
        out.extend_from_slice(&(self.data.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses the file format, checking every field.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |detail: &str| Error::Format {
            what: "entropy file",
            detail: detail.to_owned(),
        };
        let mut r = Reader::new(bytes);
        if r.take(8) != Some(FILE_MAGIC.as_slice()) {
            return Err(bad("not an autoid entropy file (magic)"));
        }
        let epoch = r
            .str8()
            .filter(|e| valid_id(e))
            .ok_or_else(|| bad("bad epoch id"))?;
        let subject = r
            .str8()
            .filter(|s| valid_subject(s))
            .ok_or_else(|| bad("bad subject"))?;
        let interval_count = r.u32().ok_or_else(|| bad("truncated header"))?;
        let size = r.u64().ok_or_else(|| bad("truncated header"))?;
        if r.rest().len() as u64 != size {
            return Err(bad("size does not match the data"));
        }
        Ok(EntropyFile::new(
            epoch,
            subject,
            interval_count,
            r.rest().to_vec(),
        ))
    }

    /// The epoch id.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The subject the file belongs to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// How many intervals proofs from this file cover.
    pub fn interval_count(&self) -> u32 {
        self.interval_count
    }

    /// The entropy bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}
