"""Test helpers: the vectors' deterministic RNG, a seeded RSA-OAEP encoder (the OS-random one in
``cryptography`` cannot replay a vector), entropy derivation from an epoch, opening a proof with
its session key (and so turning a compact proof into the full form), and the paths of the
repository's vectors and of the ``autoid`` binary. Tests only: never for real keys."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from autoid_client import b64
from autoid_client.files import PublicKey, oaep_label
from autoid_client.proof import Request, Session, associated_data, lp16
from autoid_client.ticket import Ticket

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


class Opened(NamedTuple):
    """A proof's sealed payload, opened, field by field (docs/PROTOCOL.md section 5)."""

    iv: bytes
    now: int
    nonce: bytes
    body_sha256: Optional[bytes]
    epoch: str
    subject: str
    digest: bytes


def open_proof(header: str, session: Session, request: Request) -> Opened:
    """Opens ``header``'s seal with ``session``'s key and ``request``'s bindings, under the
    header's own version label (a wrong key or binding raises ``InvalidTag``)."""
    version, kid, _, sealed_b64 = header.split(".")[:4]
    sealed = b64.decode(sealed_b64)
    aad = associated_data(kid, request, int(version[1:]))
    plain = AESGCM(session.key).decrypt(sealed[:12], sealed[12:], aad)
    now, nonce, flags = struct.unpack(">Q", plain[:8])[0], plain[8:24], plain[24]
    at = 25
    body = None
    if flags == 1:
        body, at = plain[at : at + 32], at + 32
    epoch = plain[at + 1 : at + 1 + plain[at]].decode()
    at += 1 + plain[at]
    subject = plain[at + 1 : at + 1 + plain[at]].decode()
    at += 1 + plain[at]
    assert len(plain) == at + 32, "trailing bytes after the digest"
    return Opened(sealed[:12], now, nonce, body, epoch, subject, plain[at:])


def as_full(header: str, session: Session, request: Request) -> str:
    """A compact proof of ``session`` in the full form: the same seal (the session part is not
    in the associated data), and in v3 the ticket the payload's digest gives, so that
    ``autoid verify``, which holds no session, can check it. Any other header as it is."""
    version, kid, part, sealed = header.split(".")[:4]
    if len(b64.decode(part)) != 16:
        return header
    assert b64.decode(part) == session.reference, "a compact proof of another session"
    full = f"{version}.{kid}.{b64.encode(session.wrapped)}.{sealed}"
    if version == "v3":
        o = open_proof(header, session, request)
        full += "." + b64.encode(Ticket.new(o.now, o.nonce, o.epoch, o.subject, o.digest, session.id).to_bytes())
    return full
