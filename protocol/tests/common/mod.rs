//! Shared fixtures: the fixed test key, a fixed epoch, and the deterministic RNG of the vectors.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use autoid_protocol::entropy::{EntropyFile, Epoch};
use autoid_protocol::keys::GatewayKey;

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

mod rng;
pub use rng::TestRng;
