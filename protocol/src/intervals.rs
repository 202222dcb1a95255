//! The intervals a proof covers and the digest over them (DESIGN.md rule 1).
//!
//! Nothing here comes from the wire: the offsets are a hash of the proof's nonce, timestamp,
//! subject, epoch and the request, so a client cannot pick the parts of the file it holds.

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
pub(crate) fn digest_authority(h: &mut Sha256, authority: &str) {
    let lower = authority.to_ascii_lowercase();
    digest_lp16(h, lower.as_bytes());
}

fn digest_common(h: &mut Sha256, b: &Bindings<'_>) {
    digest_lp16(h, b.subject.as_bytes());
    digest_lp16(h, b.epoch.as_bytes());
    h.update(b.nonce);
    h.update(b.timestamp.to_be_bytes());
}

/// The byte offsets of the `count` intervals (each [`INTERVAL_LEN`] bytes, aligned to it) of a
/// file of `file_size` bytes.
pub fn offsets(b: &Bindings<'_>, file_size: u64, count: u32) -> Vec<u64> {
    let mut h = Sha256::new();
    h.update(SEED_LABEL);
    digest_common(&mut h, b);
    digest_lp16(&mut h, b.request.method.as_bytes());
    digest_authority(&mut h, b.request.authority);
    digest_lp16(&mut h, b.request.path.as_bytes());
    let seed = h.finalize();

    let slots = (file_size / u64::from(INTERVAL_LEN)).max(1);
    let mut out = Vec::with_capacity(count as usize);
    let mut block_index = 0u32;
    while out.len() < count as usize {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(block_index.to_be_bytes());
        let block = h.finalize();
        for chunk in block.chunks_exact(8) {
            if out.len() == count as usize {
                break;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            out.push(u64::from(INTERVAL_LEN) * (u64::from_be_bytes(word) % slots));
        }
        block_index += 1;
    }
    out
}

/// The digest over the intervals: `read(offset)` returns the 16 bytes at `offset`.
pub fn digest(
    b: &Bindings<'_>,
    offsets: &[u64],
    mut read: impl FnMut(u64) -> [u8; 16],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DIGEST_LABEL);
    digest_common(&mut h, b);
    h.update((offsets.len() as u32).to_be_bytes());
    for &offset in offsets {
        h.update(offset.to_be_bytes());
        h.update(INTERVAL_LEN.to_be_bytes());
        h.update(read(offset));
    }
    h.finalize().into()
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
