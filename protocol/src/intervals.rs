//! The intervals a proof covers and the digest over them (DESIGN.md rule 1).
//!
//! Nothing here comes from the wire: the offsets follow from a *seed*, a SHA-256 of the proof's
//! nonce, timestamp, subject, epoch and the request, so a client cannot pick the parts of the file
//! it holds. The seed expands into 24-bit slot words (32-bit for files over 1 MiB), read in order
//! from `SHA-256("autoid/v1 offsets" || seed || u32be(j))` for j = 0, 1, …: 64 offsets cost six
//! compressions. The digest is a SHA-256 over the seed and the interval bytes: the seed commits to
//! every binding and so to every offset. Only SHA-256 runs per request here; it is as fast in wasm
//! as natively (no SHA-NI on most servers), where a software AES key schedule is not.

use sha2::{Digest, Sha256};

use crate::Request;
use crate::policy::INTERVAL_LEN;
use crate::wire::digest_lp16;

const SEED_LABEL: &[u8] = b"autoid/v1 intervals";
const OFFSETS_LABEL: &[u8] = b"autoid/v1 offsets";
const DIGEST_LABEL: &[u8] = b"autoid/v1 digest";

/// The bytes of one interval.
pub type Interval = [u8; INTERVAL_LEN as usize];

/// Everything a proof's intervals and digest depend on.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    /// The subject the proof is for.
    pub subject: &'a str,
    /// The entropy epoch id.
    pub epoch: &'a str,
    /// The proof's fresh random nonce.
    pub nonce: &'a [u8; 16],
    /// The proof's timestamp, Unix seconds.
    pub timestamp: u64,
    /// The request the proof is for.
    pub request: Request<'a>,
}

/// Feeds `lp16(authority)` lowercased (ASCII), so `API.example.com` and `api.example.com` bind
/// alike; lowercases through a stack buffer (no allocation per request).
fn digest_authority(h: &mut Sha256, authority: &str) {
    let bytes = authority.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    h.update(len.to_be_bytes());
    let mut buf = [0u8; 64];
    for chunk in bytes[..usize::from(len)].chunks(buf.len()) {
        let lower = &mut buf[..chunk.len()];
        lower.copy_from_slice(chunk);
        lower.make_ascii_lowercase();
        h.update(&*lower);
    }
}

/// Bytes per slot word: 3 while a file has at most 2^17 slots (1 MiB, the default), else 4. Either
/// way the word space is at least 2^7 times the slot count, so the modulo reduction leaves no slot
/// more than 2^-7 likelier than another (none at all when the slot count is a power of two).
fn word_width(slots: u64) -> usize {
    if slots <= 1 << 17 { 3 } else { 4 }
}

/// A proof's intervals: the seed and the byte offsets it yields.
#[derive(Clone, PartialEq, Eq)]
pub struct Intervals {
    seed: [u8; 32],
    offsets: Vec<u64>,
}

impl core::fmt::Debug for Intervals {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Intervals")
            .field("offsets", &self.offsets)
            .finish_non_exhaustive()
    }
}

impl Intervals {
    /// Derives the `count` intervals (each [`INTERVAL_LEN`] bytes, aligned to it) of a file of
    /// `file_size` bytes. Slot words (24 or 32 bits, see [`word_width`]) are read in order from
    /// the SHA-256 expansion of the seed and reduced modulo the file's slot count
    /// (docs/PROTOCOL.md §5).
    pub fn derive(b: &Bindings<'_>, file_size: u64, count: u32) -> Intervals {
        let mut h = Sha256::new();
        h.update(SEED_LABEL);
        digest_lp16(&mut h, b.subject.as_bytes());
        digest_lp16(&mut h, b.epoch.as_bytes());
        h.update(b.nonce);
        h.update(b.timestamp.to_be_bytes());
        digest_lp16(&mut h, b.request.method.as_bytes());
        digest_authority(&mut h, b.request.authority);
        digest_lp16(&mut h, b.request.path.as_bytes());
        let seed: [u8; 32] = h.finalize().into();

        let slots = (file_size / u64::from(INTERVAL_LEN)).max(1);
        let width = word_width(slots);
        let count = count as usize;
        let mut words = Vec::with_capacity((count * width).next_multiple_of(32));
        for j in 0..(count * width).div_ceil(32) as u32 {
            let mut h = Sha256::new();
            h.update(OFFSETS_LABEL);
            h.update(seed);
            h.update(j.to_be_bytes());
            words.extend_from_slice(&h.finalize());
        }
        let offsets = words
            .chunks_exact(width)
            .take(count)
            .map(|w| {
                let word = w.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
                u64::from(INTERVAL_LEN) * (word % slots)
            })
            .collect();
        Intervals { seed, offsets }
    }

    /// The seed: SHA-256 over the label, subject, epoch, nonce, timestamp and request.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The byte offsets, in order.
    pub fn offsets(&self) -> &[u64] {
        &self.offsets
    }

    /// The digest over the interval bytes, `blocks[i]` being the [`INTERVAL_LEN`] bytes at
    /// `offsets()[i]`: `SHA-256("autoid/v1 digest" || seed || u32be(count) || blocks[0] || … )`.
    pub fn digest(&self, blocks: &[Interval]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DIGEST_LABEL);
        h.update(self.seed);
        h.update((self.offsets.len() as u32).to_be_bytes());
        for block in blocks.iter().take(self.offsets.len()) {
            h.update(block);
        }
        h.finalize().into()
    }

    /// The digest, reading each interval from a file's data.
    pub fn digest_file(&self, data: &[u8]) -> [u8; 32] {
        let blocks: Vec<Interval> = self.offsets.iter().map(|&o| read_file(data, o)).collect();
        self.digest(&blocks)
    }
}

/// The byte offsets of the `count` intervals of a file of `file_size` bytes.
pub fn offsets(b: &Bindings<'_>, file_size: u64, count: u32) -> Vec<u64> {
    Intervals::derive(b, file_size, count).offsets
}

/// Reads the interval at `offset` from a file's data; out-of-range bytes read as zero (the client
/// then simply fails to prove: the gateway's stream never matches zeros by chance).
pub fn read_file(data: &[u8], offset: u64) -> Interval {
    let mut out = Interval::default();
    if let Ok(start) = usize::try_from(offset)
        && let Some(slice) = data.get(start..start.saturating_add(out.len()))
    {
        out.copy_from_slice(slice);
    }
    out
}
