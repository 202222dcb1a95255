"""The protocol's name grammars and constants (docs/PROTOCOL.md sections 2 and 5)."""

import re

DEFAULT_HEADER = "x-autoid-proof"
MAX_HEADER_LEN = 2048
MAX_BINDING_LEN = 8192
MAX_BODY_BYTES = 1 << 20
DEFAULT_SESSION_LIFETIME_SECS = 3600
SESSION_RENEW_MARGIN_SECS = 300
ALLOWED_BITS = (2048, 3072, 4096)

SUBJECT_RULE = (
    "a subject is 1 to 64 bytes of lowercase ASCII letters, digits, '.', '_', '-' and '@', "
    "starting and ending with a letter or digit"
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
_SUBJECT = re.compile(r"[a-z0-9](?:[a-z0-9._@-]{0,62}[a-z0-9])?\Z")


def valid_id(value: str) -> bool:
    """A key id or epoch id: 1 to 32 characters of ``[A-Za-z0-9_-]``."""
    return _ID.match(value) is not None


def valid_subject(value: str) -> bool:
    """A canonical subject: ``^[a-z0-9]([a-z0-9._@-]{0,62}[a-z0-9])?$``."""
    return _SUBJECT.match(value) is not None
