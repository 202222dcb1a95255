"""A ready-to-prove client: the gateway's key, the entropy file and one session, optionally kept
in a session file and renewed before the gateway would call it expired, and which proof form
(docs/PROTOCOL.md sections 11 and 12) each request gets."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Set

from .errors import InputError, UsageError
from .files import EntropyFile, PathLike, PublicKey, warn_if_exposed, write_secret
from .grammar import DEFAULT_SESSION_LIFETIME_SECS, SESSION_RENEW_MARGIN_SECS
from .proof import DEFAULT_VERSION, Form, Random, Request, Session, ascii_lower
from .proof import check_version as _check


def check_version(version: Optional[int]) -> Optional[int]:
    """``None`` (the prover's version), 1, 2 or 3."""
    return None if version is None else _check(version)


class Prover:
    """Makes one fresh proof per request. Thread-safe; one session for many proofs.

    With ``session_file`` the session is read from and stored in that file (mode 0600), in the
    format ``autoid prove --session`` uses, so the Rust CLI and this package share it. A session
    is replaced ``SESSION_RENEW_MARGIN_SECS`` (300 s) before ``session_lifetime`` ends, so a
    long-running process never sends a proof the gateway would reject as ``session_expired``.

    ``version=3`` (the default, as the Rust client's) sends a session in the full form to each
    authority first, with the possession ticket a gateway checks before its RSA unwrap
    (docs/PROTOCOL.md section 12), then in the compact form (a 16-byte reference instead of the
    wrapped key). A session loaded from ``session_file`` starts compact: the process that
    opened it has sent the full form. A gateway that does not hold the session answers 401 with
    ``error="unknown_session"``; the caller then asks for ``form=Form.FULL`` and resends once
    (the ``requests`` and ``httpx`` auth classes and the CLI do). ``version=2`` does the same
    without the ticket (section 11), for a gateway that predates v3; ``version=1`` sends v1
    proofs, for a gateway that predates v2.
    """

    def __init__(
        self,
        public_key: PublicKey,
        entropy: EntropyFile,
        session_file: Optional[PathLike] = None,
        session_lifetime: int = DEFAULT_SESSION_LIFETIME_SECS,
        random: Random = os.urandom,
        version: int = DEFAULT_VERSION,
    ) -> None:
        if check_version(version) is None:
            raise UsageError("protocol version None: expected 1, 2 or 3")
        self.public_key = public_key
        self.version = version
        self.entropy = entropy
        self.session_file = Path(session_file) if session_file is not None else None
        self.session_lifetime = session_lifetime
        self._random = random
        self._lock = threading.Lock()
        self._session: Optional[Session] = None
        # The authorities (lowercased) the current session went to in the full form; None when
        # it came from the session file, which counts as sent everywhere.
        self._sent_full: Optional[Set[bytes]] = set()

    @classmethod
    def from_files(
        cls,
        public_key: PathLike,
        entropy: PathLike,
        subject: str,
        kid: Optional[str] = None,
        session_file: Optional[PathLike] = None,
        session_lifetime: int = DEFAULT_SESSION_LIFETIME_SECS,
        version: int = DEFAULT_VERSION,
    ) -> Prover:
        """Loads ``<kid>.pub.pem`` and the entropy file, checking that it is ``subject``'s."""
        entropy_file = EntropyFile.load(entropy, subject)
        return cls(
            PublicKey.load(public_key, kid), entropy_file, session_file, session_lifetime,
            version=version,
        )

    @property
    def subject(self) -> str:
        return self.entropy.subject

    def session(self, now: Optional[int] = None) -> Session:
        """The current session, opened, loaded or renewed as needed."""
        now = int(time.time()) if now is None else now
        with self._lock:
            return self._current(now)

    def _current(self, now: int) -> Session:
        s = self._session
        if s is None or not self._reusable(s, now):
            s = self._stored(now) if self.session_file is not None else None
            self._sent_full = None if s is not None else set()
            if s is None:
                s = Session.open(self.public_key, now, self._random)
                if self.session_file is not None:
                    write_secret(self.session_file, s.to_json().encode())
            self._session = s
        return s

    def _reusable(self, s: Session, now: int) -> bool:
        return s.reusable(
            self.public_key.kid, now, self.session_lifetime, SESSION_RENEW_MARGIN_SECS
        )

    def _stored(self, now: int) -> Optional[Session]:
        assert self.session_file is not None
        path = self.session_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read the session file: {e}") from None
        warn_if_exposed(path)
        try:
            stored = Session.from_json(text)
        except InputError as e:
            print(f"autoid: warning: {path}: not a session file ({e}); replacing it", file=sys.stderr)
            return None
        return stored if self._reusable(stored, now) else None

    def prove(
        self,
        request: Request,
        body: Optional[bytes] = None,
        now: Optional[int] = None,
        form: Optional[Form] = None,
        version: Optional[int] = None,
    ) -> str:
        """A fresh proof (new nonce, current time) for one request, in ``version`` (this
        proof's, else the prover's); ``body`` binds its SHA-256. ``form`` forces a form; by
        default it is v1 with version 1, else the full form for the first request of a session
        to an authority and the compact form after it. Version 1 makes every form v1's."""
        now = int(time.time()) if now is None else now
        version = check_version(version) or self.version
        with self._lock:
            session = self._current(now)
            if version == 1:
                form = Form.V1
            elif form is None:
                form = self._form(request)
            if form is Form.FULL and self._sent_full is not None:
                self._sent_full.add(ascii_lower(request.authority.encode("utf-8")))
        return session.prove(self.entropy, request, now, body, self._random, form, version)

    def _form(self, request: Request) -> Form:
        sent = self._sent_full
        if sent is None or ascii_lower(request.authority.encode("utf-8")) in sent:
            return Form.COMPACT
        return Form.FULL
