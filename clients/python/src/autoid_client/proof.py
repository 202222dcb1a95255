"""Sessions and proofs, byte for byte as docs/PROTOCOL.md sections 4, 5, 11 and 12 specify: v1,
and v2 and v3 in their full and compact forms (v3's full form carries the possession ticket)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, List, Optional, Sequence, Tuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import b64
from .errors import InputError, UsageError
from .files import EntropyFile, PublicKey
from .grammar import MAX_BINDING_LEN, SUBJECT_RULE, valid_id, valid_subject
from .ticket import Ticket

#: Draws n random bytes. The default is the OS CSPRNG; tests pass a deterministic stream.
Random = Callable[[int], bytes]

INTERVAL_LEN = 8
NONCE_LEN = 16
IV_LEN = 12
SESSION_REF_LEN = 16
#: The protocol versions a client can send (docs/PROTOCOL.md sections 5, 11 and 12).
VERSIONS = (1, 2, 3)
#: What the reference clients send unless told otherwise.
DEFAULT_VERSION = 3


class Form(Enum):
    """Which header form a proof takes (docs/PROTOCOL.md section 11; in version 3, section 12,
    the full form also carries the possession ticket)."""

    #: ``v1``: the wrapped session key in every proof.
    V1 = "v1"
    #: The wrapped session key (v2, or v3 with its ticket): opens the session at a gateway that
    #: does not hold it.
    FULL = "full"
    #: The 16-byte session reference, for a session the gateway already holds; one that does not
    #: answers 401 with ``error="unknown_session"`` (resend in :attr:`FULL`).
    COMPACT = "compact"

    @property
    def version(self) -> int:
        """The version this form has when none is given: 1 for :attr:`V1`, else 2 (as the Rust
        ``Session::prove_as``)."""
        return 1 if self is Form.V1 else 2


def check_version(version: int) -> int:
    """1, 2 or 3, else :class:`UsageError`."""
    if version not in VERSIONS:
        raise UsageError(f"protocol version {version}: expected 1, 2 or 3")
    return version


def lp16(data: bytes) -> bytes:
    """``u16be(len) || data``."""
    return struct.pack(">H", len(data)) + data


def lp8(data: bytes) -> bytes:
    """``u8(len) || data``."""
    return struct.pack(">B", len(data)) + data


def ascii_lower(data: bytes) -> bytes:
    """Lowercases A-Z only (never other bytes), as the gateway does with the authority."""
    return data.translate(_ASCII_LOWER)


_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Request:
    """What a proof binds: the method, authority and request target exactly as sent."""

    method: str
    authority: str
    path: str

    def encoded(self) -> Tuple[bytes, bytes, bytes]:
        """The three bindings as bytes, the authority lowercased (ASCII); checks the caps."""
        method = self.method.encode("utf-8")
        authority = ascii_lower(self.authority.encode("utf-8"))
        path = self.path.encode("utf-8")
        for name, value in (("method", method), ("authority", authority), ("path", path)):
            if len(value) > MAX_BINDING_LEN:
                raise UsageError(f"{name}: over {MAX_BINDING_LEN} bytes")
        return method, authority, path


def interval_seed(subject: str, epoch: str, nonce: bytes, now: int, request: Request) -> bytes:
    method, authority, path = request.encoded()
    return hashlib.sha256(
        b"autoid/v1 intervals"
        + lp16(subject.encode())
        + lp16(epoch.encode())
        + nonce
        + struct.pack(">Q", now)
        + lp16(method)
        + lp16(authority)
        + lp16(path)
    ).digest()


def offsets(seed: bytes, file_size: int, count: int) -> List[int]:
    """The byte offsets of the ``count`` intervals: 24-bit slot words while the file has at most
    2^17 slots (1 MiB), else 32-bit, read from the SHA-256 expansion of the seed."""
    slots = max(file_size // INTERVAL_LEN, 1)
    width = 3 if slots <= 1 << 17 else 4
    need = count * width
    stream = b"".join(
        hashlib.sha256(b"autoid/v1 offsets" + seed + struct.pack(">I", j)).digest()
        for j in range((need + 31) // 32)
    )
    return [
        INTERVAL_LEN * (int.from_bytes(stream[width * i : width * i + width], "big") % slots)
        for i in range(count)
    ]


def digest(seed: bytes, data: bytes, offs: Sequence[int]) -> bytes:
    """``SHA-256("autoid/v1 digest" || seed || u32be(k) || interval bytes...)``; bytes past the
    end of ``data`` read as zero (the proof then simply fails)."""
    h = hashlib.sha256(b"autoid/v1 digest" + seed + struct.pack(">I", len(offs)))
    for o in offs:
        h.update(data[o : o + INTERVAL_LEN].ljust(INTERVAL_LEN, b"\0"))
    return h.digest()


def payload(
    now: int,
    nonce: bytes,
    body_sha256: Optional[bytes],
    epoch: str,
    subject: str,
    digest_: bytes,
) -> bytes:
    flags = b"\x00" if body_sha256 is None else b"\x01" + body_sha256
    return (
        struct.pack(">Q", now)
        + nonce
        + flags
        + lp8(epoch.encode())
        + lp8(subject.encode())
        + digest_
    )


def associated_data(kid: str, request: Request, version: int = 1) -> bytes:
    """``"autoid/v<version>" || lp16(kid) || lp16(method) || lp16(lowercase authority) ||
    lp16(path)``: the label keeps a proof of one version from opening as another."""
    check_version(version)
    method, authority, path = request.encoded()
    label = b"autoid/v%d" % version
    return label + lp16(kid.encode()) + lp16(method) + lp16(authority) + lp16(path)


def session_id(kid: str, wrapped: bytes) -> bytes:
    """The gateway's cache key for a session."""
    return hashlib.sha256(b"autoid/v1 session-id" + lp16(kid.encode()) + wrapped).digest()


def session_ref(id_: bytes) -> bytes:
    """A session's reference in the compact form (v2, v3): the first 16 bytes of its id."""
    return id_[:SESSION_REF_LEN]


_SESSION_FIELDS = ("autoid_session", "kid", "key", "wrapped", "issued_at")


@dataclass(frozen=True)
class Session:
    """A session key wrapped once for the gateway (RSA-OAEP) and reused for many proofs."""

    kid: str
    key: bytes = field(repr=False)
    wrapped: bytes = field(repr=False)
    issued_at: int

    @classmethod
    def open(cls, gateway: PublicKey, now: int, random: Random = os.urandom) -> Session:
        """Draws a 32-byte key and wraps ``key || u64be(now)`` for the gateway."""
        key = random(32)
        return cls(gateway.kid, key, gateway.wrap(key + struct.pack(">Q", now)), now)

    @property
    def id(self) -> bytes:
        return session_id(self.kid, self.wrapped)

    @property
    def reference(self) -> bytes:
        """What a compact (v2, v3) proof carries instead of ``wrapped``."""
        return session_ref(self.id)

    def to_json(self) -> str:
        """The session file (docs/CLI.md): it holds the session key, store it with mode 0600."""
        return json.dumps(
            {
                "autoid_session": 1,
                "kid": self.kid,
                "key": b64.encode(self.key),
                "wrapped": b64.encode(self.wrapped),
                "issued_at": self.issued_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Session:
        def bad(detail: str) -> InputError:
            return InputError(f"session file: {detail}")

        try:
            raw = json.loads(text)
        except ValueError as e:
            raise bad(str(e)) from None
        if not isinstance(raw, dict) or sorted(raw) != sorted(_SESSION_FIELDS):
            raise bad(f"expected exactly the fields {', '.join(_SESSION_FIELDS)}")
        kid, issued_at = raw["kid"], raw["issued_at"]
        if raw["autoid_session"] != 1 or not isinstance(kid, str) or not valid_id(kid):
            raise bad("unsupported version or bad kid")
        if not isinstance(issued_at, int) or isinstance(issued_at, bool) or issued_at < 0:
            raise bad("issued_at: expected Unix seconds")
        try:
            key = b64.decode(raw["key"]) if isinstance(raw["key"], str) else b""
        except ValueError:
            key = b""
        if len(key) != 32:
            raise bad("key: expected 32 bytes in base64url")
        try:
            wrapped = b64.decode(raw["wrapped"]) if isinstance(raw["wrapped"], str) else None
        except ValueError:
            wrapped = None
        if wrapped is None:
            raise bad("wrapped: not base64url")
        return cls(kid, key, wrapped, issued_at)

    def reusable(self, kid: str, now: int, lifetime: int, margin: int) -> bool:
        """For this key id, while ``now`` is in ``[issued_at, issued_at + lifetime - margin)``."""
        return self.kid == kid and self.issued_at <= now < self.issued_at + lifetime - margin

    def prove(
        self,
        file: EntropyFile,
        request: Request,
        now: int,
        body: Optional[bytes] = None,
        random: Random = os.urandom,
        form: Form = Form.V1,
        version: Optional[int] = None,
    ) -> str:
        """The header value proving possession of ``file`` for ``request`` at ``now``, in
        ``form`` and ``version`` (v1 unless told, like the Rust ``Session::prove``; a form
        without a version is v2's, like ``Session::prove_as``; both, like ``Session::prove_in``:
        version 1 makes the form v1's and :attr:`Form.V1` the version 1). v3's full form carries
        the possession ticket. With ``body``, the proof also binds its SHA-256. Draws the nonce,
        then the IV, and nothing else."""
        version = form.version if version is None else check_version(version)
        if version == 1 or form is Form.V1:
            version, form = 1, Form.V1
        if not valid_subject(file.subject):
            raise UsageError(f"subject {file.subject!r}: {SUBJECT_RULE}")
        aad = associated_data(self.kid, request, version)
        nonce = random(NONCE_LEN)
        iv = random(IV_LEN)
        seed = interval_seed(file.subject, file.epoch, nonce, now, request)
        d = digest(seed, file.data, offsets(seed, len(file.data), file.interval_count))
        body_sha256 = None if body is None else hashlib.sha256(body).digest()
        plain = payload(now, nonce, body_sha256, file.epoch, file.subject, d)
        sealed = iv + AESGCM(self.key).encrypt(iv, plain, aad)
        part = self.reference if form is Form.COMPACT else self.wrapped
        header = f"v{version}.{self.kid}.{b64.encode(part)}.{b64.encode(sealed)}"
        if version == 3 and form is Form.FULL:
            ticket = Ticket.new(now, nonce, file.epoch, file.subject, d, self.id)
            header += "." + b64.encode(ticket.to_bytes())
        return header
