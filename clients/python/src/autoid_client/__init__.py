"""autoid client: prove possession of an entropy file to an autoid gateway (protocol v3, or v2,
v1).

- :class:`Prover` loads the gateway's public key and your entropy file, keeps one session
  (optionally in a session file shared with the ``autoid`` CLI) and makes one proof per request:
  v3 by default (the full form with its possession ticket first, then compact; ``Form`` names
  the forms), v2 with ``version=2``, v1 with ``version=1``.
- ``autoid_client.requests_auth.AutoidAuth`` and ``autoid_client.httpx_auth.AutoidAuth`` plug a
  prover into ``requests`` and ``httpx`` (sync and async); install the ``requests`` or ``httpx``
  extra.
- ``python -m autoid_client prove|request`` mirrors ``autoid prove`` and ``autoid request``.

The byte-level protocol is docs/PROTOCOL.md in the autoid repository; docs/CLIENTS.md shows both
clients side by side.
"""

from .binding import Target, path_is_safe, target
from .client import Prover
from .errors import AutoidError, InputError, UsageError
from .files import EntropyFile, PublicKey
from .proof import Form, Request, Session
from .ticket import Ticket

__all__ = [
    "AutoidError",
    "EntropyFile",
    "Form",
    "InputError",
    "Prover",
    "PublicKey",
    "Request",
    "Session",
    "Target",
    "Ticket",
    "UsageError",
    "path_is_safe",
    "target",
]
__version__ = "0.1.0"
