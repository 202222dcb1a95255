//! Shared fixtures: the fixed test key, a fixed epoch, and the deterministic RNG of the vectors.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;

use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::keys::GatewayKey;
use rsa::rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// The fixed RSA-2048 test key (never use it for anything else).
pub const KEY_PEM: &str = include_str!("../vectors/gateway-2048.pem");
/// Its key id in the vectors.
pub const KID: &str = "test-2048";

pub fn gateway_key() -> GatewayKey {
    GatewayKey::from_pem(KID, KEY_PEM).unwrap()
}

/// Epoch `e-test`: secret bytes 0x00..=0x1f, 64 KiB files, 64 intervals.
pub fn epoch() -> Epoch {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = i as u8;
    }
    Epoch::new("e-test", secret, 65536, 64).unwrap()
}

pub fn file(subject: &str) -> EntropyFile {
    epoch().issue(subject).unwrap()
}

/// The vectors' deterministic RNG (docs/PROTOCOL.md, "Test vectors"): the concatenation of
/// `SHA-256("autoid/v1 test rng" || seed || u64be(i))` for i = 0, 1, 2, …
pub struct TestRng {
    seed: Vec<u8>,
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl TestRng {
    pub fn new(seed: &[u8]) -> Self {
        TestRng {
            seed: seed.to_vec(),
            counter: 0,
            buf: [0; 32],
            pos: 32,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.pos == 32 {
            let mut h = Sha256::new();
            h.update(b"autoid/v1 test rng");
            h.update(&self.seed);
            h.update(self.counter.to_be_bytes());
            self.buf = h.finalize().into();
            self.counter += 1;
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }
}

impl TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.next_byte();
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}
