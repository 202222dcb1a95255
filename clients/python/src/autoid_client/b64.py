"""Canonical base64url without padding (RFC 4648 section 5), as the protocol requires."""

import base64
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*\Z")


def encode(data: bytes) -> str:
    """base64url of ``data`` without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """Decodes canonical unpadded base64url; raises ``ValueError`` on anything else (padding,
    other characters, a length of 1 mod 4, non-zero trailing bits)."""
    if not _ALPHABET.match(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url without padding")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if encode(data) != text:
        raise ValueError("not canonical base64url (trailing bits)")
    return data
