//! The vectors' deterministic RNG (docs/PROTOCOL.md §9): the concatenation of
//! `SHA-256("autoid/v1 test rng" || seed || u64be(i))` for i = 0, 1, 2, …
//!
//! The one copy for every test, bench and fuzz target (each includes this file by path). Tests
//! only: it must never seed real keys, sessions or nonces.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use rsa::rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
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

    /// A seed no other RNG of this process uses.
    pub fn unique(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TestRng::new(format!("{label}/{n}").as_bytes())
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
