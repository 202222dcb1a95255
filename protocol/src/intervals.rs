//! The intervals a proof covers and the digest over them (DESIGN.md rule 1).
//!
//! Nothing here comes from the wire: the offsets follow from a *seed*, a SHA-256 of the proof's
//! nonce, timestamp, subject, epoch and the request, so a client cannot pick the parts of the file
//! it holds. The seed's first 16 bytes key AES-128 to expand the offsets (one AES call gives two offsets, where
//! SHA-256 would cost a compression per four), and the digest is a SHA-256 over the seed and the
//! interval bytes: the seed commits to every binding and so to every offset.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use sha2::{Digest, Sha256};

use crate::Request;
use crate::policy::INTERVAL_LEN;
use crate::wire::digest_lp16;

const SEED_LABEL: &[u8] = b"autoid/v1 intervals";
const DIGEST_LABEL: &[u8] = b"autoid/v1 digest";

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

/// Feeds the authority lowercased (ASCII), so `API.example.com` and `api.example.com` bind alike.
fn digest_authority(h: &mut Sha256, authority: &str) {
    let lower = authority.to_ascii_lowercase();
    digest_lp16(h, lower.as_bytes());
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
    /// `file_size` bytes.
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
        let count = count as usize;
        let mut blocks: Vec<aes::Block> = (0..count.div_ceil(2) as u128)
            .map(|j| j.to_be_bytes().into())
            .collect();
        let mut key = [0u8; 16];
        key.copy_from_slice(&seed[..16]);
        Aes128::new(&key.into()).encrypt_blocks(&mut blocks);
        let offsets = blocks
            .iter()
            .flat_map(|block| {
                let (hi, lo) = block.split_at(8);
                [hi, lo]
            })
            .take(count)
            .map(|word| {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                u64::from(INTERVAL_LEN) * (u64::from_be_bytes(w) % slots)
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

    /// The digest over the interval bytes, `blocks[i]` being the 16 bytes at `offsets()[i]`:
    /// `SHA-256("autoid/v1 digest" || seed || u32be(count) || blocks[0] || … )`.
    pub fn digest(&self, blocks: &[[u8; 16]]) -> [u8; 32] {
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
        let blocks: Vec<[u8; 16]> = self.offsets.iter().map(|&o| read_file(data, o)).collect();
        self.digest(&blocks)
    }
}

/// The byte offsets of the `count` intervals of a file of `file_size` bytes.
pub fn offsets(b: &Bindings<'_>, file_size: u64, count: u32) -> Vec<u64> {
    Intervals::derive(b, file_size, count).offsets
}

/// Reads 16 bytes at `offset` from a file's data; out-of-range bytes read as zero (the client
/// then simply fails to prove: the gateway's stream never matches zeros by chance).
pub fn read_file(data: &[u8], offset: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(start) = usize::try_from(offset)
        && let Some(slice) = data.get(start..start.saturating_add(16))
    {
        out.copy_from_slice(slice);
    }
    out
}
