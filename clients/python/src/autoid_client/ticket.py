"""The v3 possession ticket (docs/PROTOCOL.md section 12): the full form's fifth part, which lets
a gateway check that the client holds its entropy file before it spends an RSA unwrap.

``ticket = u64be(now) || nonce[16] || lp8(epoch) || lp8(subject) || tag[16]``, with
``tag = HMAC-SHA256(key = digest, "autoid/v3 possession" || session_id)[0..16]``, ``digest``
the proof's section 5 digest and ``session_id`` the session's (section 4)."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Callable, Tuple

from .grammar import valid_id, valid_subject

NONCE_LEN = 16
TAG_LEN = 16
#: The shortest ticket (one-byte epoch and subject) and the longest (32-byte epoch, 64-byte
#: subject): 44 and 138 bytes.
MIN_TICKET_LEN = 8 + NONCE_LEN + 1 + 1 + 1 + 1 + TAG_LEN
MAX_TICKET_LEN = MIN_TICKET_LEN + 31 + 63
_TAG_LABEL = b"autoid/v3 possession"


def ticket_tag(digest: bytes, session_id: bytes) -> bytes:
    """``HMAC-SHA256(key = digest, "autoid/v3 possession" || session_id)[0..16]``."""
    return hmac.new(digest, _TAG_LABEL + session_id, hashlib.sha256).digest()[:TAG_LEN]


@dataclass(frozen=True)
class Ticket:
    """A possession ticket: the payload's time, nonce, epoch and subject in the clear, and a tag
    only the holder of the entropy file can make for this session."""

    timestamp: int
    nonce: bytes
    epoch: str
    subject: str
    tag: bytes

    @classmethod
    def new(cls, timestamp: int, nonce: bytes, epoch: str, subject: str, digest: bytes, session_id: bytes) -> Ticket:
        """The ticket of a proof whose digest is ``digest``, opening the session ``session_id``."""
        return cls(timestamp, nonce, epoch, subject, ticket_tag(digest, session_id))

    def to_bytes(self) -> bytes:
        epoch, subject = self.epoch.encode(), self.subject.encode()
        return (
            struct.pack(">Q", self.timestamp)
            + self.nonce
            + struct.pack(">B", len(epoch))
            + epoch
            + struct.pack(">B", len(subject))
            + subject
            + self.tag
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Ticket:
        """Parses a ticket as a gateway does: a length outside 44 ... 138 bytes, an epoch id or
        subject outside its grammar, or any byte after the tag raises ``ValueError``."""
        if not MIN_TICKET_LEN <= len(data) <= MAX_TICKET_LEN:
            raise ValueError(f"ticket: {len(data)} bytes, expected {MIN_TICKET_LEN} to {MAX_TICKET_LEN}")
        (timestamp,) = struct.unpack(">Q", data[:8])
        at = 8 + NONCE_LEN
        nonce = data[8:at]
        epoch, at = _str8(data, at, valid_id, "epoch id")
        subject, at = _str8(data, at, valid_subject, "subject")
        tag = data[at : at + TAG_LEN]
        if len(tag) != TAG_LEN or at + TAG_LEN != len(data):
            raise ValueError("ticket: the tag is not its last 16 bytes")
        return cls(timestamp, nonce, epoch, subject, tag)

    def tag_matches(self, digest: bytes, session_id: bytes) -> bool:
        """Whether the tag is the one ``digest`` gives for ``session_id`` (constant time)."""
        return hmac.compare_digest(ticket_tag(digest, session_id), self.tag)


def _str8(data: bytes, at: int, valid: Callable[[str], bool], what: str) -> Tuple[str, int]:
    """An ``lp8`` string at ``at`` that ``valid`` accepts, and the offset after it."""
    n = data[at] if at < len(data) else 0
    raw = data[at + 1 : at + 1 + n]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if len(raw) != n or not valid(text):
        raise ValueError(f"ticket: not a valid {what}")
    return text, at + 1 + n

