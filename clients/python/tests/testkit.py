"""Test helpers: the vectors' deterministic RNG, a seeded RSA-OAEP encoder (the OS-random one in
``cryptography`` cannot replay a vector), entropy derivation from an epoch, and the paths of
the repository's vectors and of the ``autoid`` binary. Tests only: never for real keys."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path
from typing import Callable, Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from autoid_client.files import PublicKey, oaep_label
from autoid_client.proof import Session, lp16

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "protocol" / "tests" / "vectors"


class TestRng:
    """docs/PROTOCOL.md section 9: one continuous byte stream
    ``SHA-256("autoid/v1 test rng" || seed || u64be(i))`` for i = 0, 1, ..., every draw
    continuing where the previous one stopped."""

    __test__ = False

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.counter = 0
        self.buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += hashlib.sha256(
                b"autoid/v1 test rng" + self.seed + struct.pack(">Q", self.counter)
            ).digest()
            self.counter += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">I", counter)).digest()
        counter += 1
    return out[:length]


def oaep_encrypt(key: PublicKey, plaintext: bytes, random: Callable[[int], bytes]) -> bytes:
    """RFC 8017 RSAES-OAEP-ENCRYPT with SHA-256 and MGF1-SHA-256, the seed drawn from
    ``random`` (32 bytes), as the Rust `rsa` crate draws it."""
    numbers = key.key.public_numbers()
    k = (key.key.key_size + 7) // 8
    h_len = 32
    l_hash = hashlib.sha256(oaep_label(key.kid)).digest()
    ps = b"\0" * (k - len(plaintext) - 2 * h_len - 2)
    db = l_hash + ps + b"\x01" + plaintext
    seed = random(h_len)
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1(seed, k - h_len - 1)))
    masked_seed = bytes(a ^ b for a, b in zip(seed, _mgf1(masked_db, h_len)))
    em = b"\0" + masked_seed + masked_db
    return pow(int.from_bytes(em, "big"), numbers.e, numbers.n).to_bytes(k, "big")


def seeded_session(key: PublicKey, now: int, rng: TestRng) -> Session:
    """``Session.open`` with the test RNG: session key (32), then the OAEP seed (32)."""
    session_key = rng(32)
    wrapped = oaep_encrypt(key, session_key + struct.pack(">Q", now), rng)
    return Session(key.kid, session_key, wrapped, now)


def entropy_stream(secret: bytes, epoch: str, subject: str, length: int) -> bytes:
    """The first ``length`` bytes of a subject's stream: AES-128-CTR under the HKDF key."""
    k = HKDF(
        algorithm=hashes.SHA256(),
        length=16,
        salt=b"autoid/v1 entropy",
        info=lp16(epoch.encode()) + lp16(subject.encode()),
    ).derive(secret)
    enc = Cipher(algorithms.AES(k), modes.CTR(b"\0" * 16)).encryptor()
    return enc.update(b"\0" * length) + enc.finalize()


def autoid_bin() -> Optional[Path]:
    """The Rust CLI: $AUTOID_BIN, else target/release/autoid (or $CARGO_TARGET_DIR), else PATH."""
    env = os.environ.get("AUTOID_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    built = target / "release" / "autoid"
    if built.is_file():
        return built
    found = shutil.which("autoid")
    return Path(found) if found else None
