"""The files a client holds, in the formats docs/CLI.md fixes: the gateway's public key
(``<kid>.pub.pem``), the entropy file (``AUTOIDE1``) and the session file (JSON, mode 0600)."""

from __future__ import annotations

import json
import os
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import b64
from .errors import InputError, UsageError
from .grammar import ALLOWED_BITS, SUBJECT_RULE, valid_id, valid_subject

PathLike = Union[str, "os.PathLike[str]"]

PUBLIC_KEY_SUFFIX = ".pub.pem"
ENTROPY_MAGIC = b"AUTOIDE1"
SECRET_MODE = 0o600


def oaep_label(kid: str) -> bytes:
    """The OAEP label that binds a wrapped session key to its key id."""
    return b"autoid/v1 session " + kid.encode("ascii")


def warn_if_exposed(path: Path) -> None:
    """Warns on stderr when others may read a secret file (the content is never printed)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        print(
            f"autoid: warning: {path} holds a secret but has mode {mode:04o}; run: chmod 600 {path}",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class PublicKey:
    """The gateway's RSA public key and its key id. PEM files carry no key id: the file name
    ``<kid>.pub.pem`` is the key id, unless one is given explicitly."""

    kid: str
    key: rsa.RSAPublicKey = field(repr=False)

    @classmethod
    def from_pem(cls, kid: str, pem: bytes) -> PublicKey:
        if not valid_id(kid):
            raise UsageError(f"key id {kid!r}: expected 1 to 32 characters of A-Z a-z 0-9 _ -")
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as e:
            raise InputError(f"not an SPKI public key PEM: {e}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise InputError("not an RSA public key")
        if key.key_size not in ALLOWED_BITS:
            raise InputError(f"RSA-{key.key_size}: the protocol allows 2048, 3072 or 4096 bits")
        return cls(kid, key)

    @classmethod
    def load(cls, path: PathLike, kid: Optional[str] = None) -> PublicKey:
        """Reads ``<kid>.pub.pem``; ``kid`` overrides the id taken from the file name."""
        p = Path(path)
        if kid is None:
            name = p.name
            if not name.endswith(PUBLIC_KEY_SUFFIX) or name == PUBLIC_KEY_SUFFIX:
                raise UsageError(
                    f"{p}: cannot infer the key id from the file name "
                    f"(expected <kid>{PUBLIC_KEY_SUFFIX}); pass --kid"
                )
            kid = name[: -len(PUBLIC_KEY_SUFFIX)]
        try:
            pem = p.read_bytes()
        except OSError as e:
            raise InputError(f"{p}: cannot read the public key: {e.strerror}") from None
        try:
            return cls.from_pem(kid, pem)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None

    def wrap(self, plaintext: bytes) -> bytes:
        """RSA-OAEP with SHA-256 (hash and MGF1) and the key id's label."""
        return self.key.encrypt(
            plaintext,
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA256()),
                algorithm=hashes.SHA256(),
                label=oaep_label(self.kid),
            ),
        )


@dataclass(frozen=True)
class EntropyFile:
    """A subject's entropy file: ``"AUTOIDE1" || lp8(epoch) || lp8(subject) ||
    u32be(interval count) || u64be(size) || data``."""

    epoch: str
    subject: str
    interval_count: int
    data: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> EntropyFile:
        def bad(detail: str) -> InputError:
            return InputError(f"entropy file: {detail}")

        if raw[:8] != ENTROPY_MAGIC:
            raise bad("not an autoid entropy file (magic)")
        pos = 8

        def str8(what: str) -> str:
            nonlocal pos
            if pos >= len(raw) or pos + 1 + raw[pos] > len(raw):
                raise bad(f"bad {what}")
            n = raw[pos]
            value = raw[pos + 1 : pos + 1 + n]
            pos += 1 + n
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise bad(f"bad {what}") from None

        epoch = str8("epoch id")
        if not valid_id(epoch):
            raise bad("bad epoch id")
        subject = str8("subject")
        if not valid_subject(subject):
            raise bad("bad subject")
        if len(raw) < pos + 12:
            raise bad("truncated header")
        interval_count, size = struct.unpack_from(">IQ", raw, pos)
        data = raw[pos + 12 :]
        if len(data) != size:
            raise bad("size does not match the data")
        return cls(epoch, subject, interval_count, data)

    @classmethod
    def load(cls, path: PathLike, subject: Optional[str] = None) -> EntropyFile:
        """Reads an entropy file; with ``subject``, checks that the file was issued to it."""
        p = Path(path)
        if subject is not None and not valid_subject(subject):
            raise UsageError(f"subject {subject!r}: {SUBJECT_RULE}")
        warn_if_exposed(p)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise InputError(f"{p}: cannot read the entropy file: {e.strerror}") from None
        try:
            file = cls.from_bytes(raw)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None
        if subject is not None and file.subject != subject:
            raise InputError(
                f'{p}: this entropy file belongs to subject "{file.subject}", '
                f'not --subject "{subject}"'
            )
        return file


def write_secret(path: Path, data: bytes) -> None:
    """Writes ``data`` atomically: a temporary file in the same directory, created with mode 0600
    (never readable by others, not even briefly), synced, then renamed over ``path``."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, SECRET_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
