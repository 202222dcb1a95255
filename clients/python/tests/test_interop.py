"""Both directions against the Rust CLI: ``autoid verify`` accepts proofs made here (every binding,
body binding, sessions shared through the session file) and rejects tampered ones with the
reason codes docs/PROTOCOL.md section 5 gives. Needs the ``autoid`` binary (no skipping)."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from autoid_client import Prover, PublicKey, EntropyFile, Request, Session, b64, target
from autoid_client.proof import associated_data, digest, interval_seed, lp8, offsets, session_id, session_ref
from bindings_table import BINDINGS, REFUSED
from testkit import REPO, autoid_bin

BUILD = "CARGO_TARGET_DIR=target cargo build --release -p autoid-cli   (or `make build`; or set AUTOID_BIN)"


@dataclass
class Gateway:
    autoid: Path
    dir: Path

    def run(self, *args: str, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(self.autoid), *args], input=stdin, capture_output=True, timeout=60)

    def verify(self, header: str, method: str, url: str, *extra: str, epoch: str = "ep-1") -> str:
        r = self.run(
            "verify", "--private-key", str(self.dir / "keys/gw-1.key.pem"),
            "--epoch", str(self.dir / f"{epoch}.epoch.json"),
            "--header", header, "--method", method, "--url", url, *extra,
        )
        out = r.stdout.decode().strip()
        assert r.returncode in (0, 1), r.stderr.decode()
        assert (r.returncode == 0) == out.startswith("ok "), out
        return out.splitlines()[0] if out else ""

    def key(self) -> PublicKey:
        return PublicKey.load(self.dir / "keys/gw-1.pub.pem")

    def prover(self, subject: str = "alice", epoch: str = "ep-1", session: Optional[Path] = None) -> Prover:
        return Prover.from_files(
            self.dir / "keys/gw-1.pub.pem", self.dir / f"{subject}.{epoch}.entropy", subject,
            session_file=session,
        )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    autoid = autoid_bin()
    if autoid is None or not autoid.is_file():
        pytest.fail(f"the Rust CLI `autoid` is missing ({autoid}); build it first:\n    {BUILD}")
    d = tmp_path_factory.mktemp("gw")
    g = Gateway(autoid, d)

    def ok(*args: str) -> None:
        r = g.run(*args)
        assert r.returncode == 0, r.stderr.decode()

    ok("keygen", "--out", str(d / "keys"), "--kid", "gw-1", "--bits", "2048")
    # ep-1: 64 KiB files (24-bit slot words); ep-big: 4 MiB (32-bit words), 96 intervals.
    ok("epoch", "new", "--out", str(d / "ep-1.epoch.json"), "--id", "ep-1", "--file-size", "64KiB")
    ok("epoch", "new", "--out", str(d / "ep-big.epoch.json"), "--id", "ep-big", "--file-size", "4MiB", "--intervals", "96")
    for epoch in ("ep-1", "ep-big"):
        for subject in ("alice", "bob"):
            ok("entropy", "issue", "--epoch", str(d / f"{epoch}.epoch.json"), "--subject", subject,
               "--out", str(d / f"{subject}.{epoch}.entropy"))
    yield g


def py_cli(*args: str, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "autoid_client", *args], input=stdin, capture_output=True, timeout=60)


# ---- accepted -------------------------------------------------------------------------------


@pytest.mark.parametrize("method,url,expected", BINDINGS)
def test_rust_verifies_python_proofs_for_every_binding(gw: Gateway, method: str, url: str, expected: Tuple[str, str, str]) -> None:
    prover = gw.prover()
    header = prover.prove(Request(*expected))
    assert gw.verify(header, method, url) == "ok subject=alice epoch=ep-1 kid=gw-1"


@pytest.mark.parametrize("method,url", REFUSED)
def test_both_clis_refuse_the_same_urls_with_exit_2(gw: Gateway, method: str, url: str) -> None:
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
              str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "--method", method, "--url", url]
    rust = gw.run("prove", *common)
    py = py_cli("prove", *common)
    assert (rust.returncode, py.returncode) == (2, 2), (rust.stderr, py.stderr)
    assert py.stderr.decode().startswith("autoid: error: ")


def test_32_bit_slot_words_for_files_over_1_mib(gw: Gateway) -> None:
    header = gw.prover(epoch="ep-big").prove(Request("GET", "api.example", "/x"))
    assert gw.verify(header, "GET", "https://api.example/x", epoch="ep-big") == "ok subject=alice epoch=ep-big kid=gw-1"


def test_the_python_cli_prove_output_verifies(gw: Gateway) -> None:
    url = "https://api.example/v1/payments?limit=10"
    r = py_cli("prove", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
               str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "--method", "get", "--url", url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("v2.gw-1.")  # v2, the full form
    assert len(b64.decode(lines[0].split(".")[2])) == 256
    assert gw.verify(lines[0], "GET", url) == "ok subject=alice epoch=ep-1 kid=gw-1"
    for version in ("1", "v1"):
        v1 = py_cli("prove", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
                    str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "--url", url,
                    "--proof-version", version)
        assert v1.returncode == 0 and v1.stdout.startswith(b"v1.gw-1."), v1.stderr
        assert gw.verify(v1.stdout.decode().strip(), "GET", url).startswith("ok ")


def test_the_python_cli_prove_forms(gw: Gateway, tmp_path: Path) -> None:
    url = "https://api.example/x"
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy", str(gw.dir / "alice.ep-1.entropy"),
              "--subject", "alice", "--url", url, "--session", str(tmp_path / "s")]
    full = py_cli("prove", *common, "--form", "full")
    compact = py_cli("prove", *common, "--form", "compact")
    assert (full.returncode, compact.returncode) == (0, 0), (full.stderr, compact.stderr)
    session = Session.from_json((tmp_path / "s").read_text())
    f, c = full.stdout.decode().strip(), compact.stdout.decode().strip()
    assert f.split(".")[:3] == ["v2", "gw-1", b64.encode(session.wrapped)]
    assert c.split(".")[:3] == ["v2", "gw-1", b64.encode(session.reference)]
    assert gw.verify(f, "GET", url).startswith("ok ")
    # `autoid verify` holds no session, as a gateway that never saw the full form.
    assert gw.verify(c, "GET", url) == "rejected: unknown_session"
    assert len(c) < 200 < len(f)
    # As `autoid prove`: --form full with v1 is v1; compact needs v2.
    bad = py_cli("prove", *common, "--form", "compact", "--proof-version", "1")
    assert bad.returncode == 2 and b"--form compact needs --proof-version 2" in bad.stderr
    v1 = py_cli("prove", *common, "--form", "full", "--proof-version", "1")
    assert v1.returncode == 0 and v1.stdout.startswith(b"v1.gw-1.")
    assert py_cli("prove", *common, "--form", "tiny").returncode == 2
    assert py_cli("prove", *common, "--proof-version", "3").returncode == 2


def test_body_binding(gw: Gateway, tmp_path: Path) -> None:
    body = b'{"amount":5}'
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "other").write_bytes(b'{"amount":500}')
    url = "https://api.example/v1/transfers"
    r = py_cli("prove", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
               str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "-X", "POST", "--url", url,
               "--body-file", "-", stdin=body)
    assert r.returncode == 0, r.stderr
    header = r.stdout.decode().strip()
    full = gw.run("verify", "--private-key", str(gw.dir / "keys/gw-1.key.pem"), "--epoch",
                  str(gw.dir / "ep-1.epoch.json"), "--header", header, "--method", "POST", "--url", url,
                  "--body-file", str(tmp_path / "body"), "-v")
    assert full.returncode == 0 and "body=checked" in full.stdout.decode().splitlines()
    assert gw.verify(header, "POST", url, "--body-file", str(tmp_path / "other")) == "rejected: body"
    # An empty body bound is SHA-256(""), not "no body".
    empty = gw.prover().prove(Request("POST", "api.example", "/v1/transfers"), b"")
    (tmp_path / "empty").write_bytes(b"")
    assert gw.verify(empty, "POST", url, "--body-file", str(tmp_path / "empty")) == "ok subject=alice epoch=ep-1 kid=gw-1"
    assert gw.verify(empty, "POST", url, "--body-file", str(tmp_path / "body")) == "rejected: body"


def _session(header: str) -> bytes:
    """The reference of the header's session, whichever form (and version: a v3 full form has a
    fifth part, its possession ticket) names it."""
    _, kid, part = header.split(".")[:3]
    raw = b64.decode(part)
    return raw if len(raw) == 16 else session_ref(session_id(kid, raw))


def test_a_session_file_is_shared_both_ways(gw: Gateway, tmp_path: Path) -> None:
    url = "https://api.example/x"
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
              str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "--url", url]
    # Python opens and stores the session; the Rust CLI reuses it.
    py_session = tmp_path / "py.session"
    first = gw.prover(session=py_session).prove(Request("GET", "api.example", "/x"))
    assert (py_session.stat().st_mode & 0o777) == 0o600
    rust = gw.run("prove", *common, "--session", str(py_session))
    assert rust.returncode == 0, rust.stderr
    assert _session(rust.stdout.decode().strip()) == _session(first)
    # The Rust CLI opens and stores one; Python reuses it (a fresh Prover, as another process).
    rust_session = tmp_path / "rust.session"
    made = gw.run("prove", *common, "--session", str(rust_session)).stdout.decode().strip()
    again = py_cli("prove", *common, "--session", str(rust_session))
    assert again.returncode == 0, again.stderr
    assert _session(again.stdout.decode().strip()) == _session(made)
    for h in (first, made, again.stdout.decode().strip()):
        assert gw.verify(h, "GET", url) == "ok subject=alice epoch=ep-1 kid=gw-1"
    # Without a session file, each proof has a new session.
    p = gw.prover()
    assert _session(p.prove(Request("GET", "a", "/"))) == _session(p.prove(Request("GET", "a", "/")))
    assert _session(gw.prover().prove(Request("GET", "a", "/"))) != _session(p.prove(Request("GET", "a", "/")))


def test_an_old_session_is_renewed(gw: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "s"
    now = int(time.time())
    old = Session.open(gw.key(), now - 3300)
    path.write_text(old.to_json())
    p = gw.prover(session=path)
    header = p.prove(Request("GET", "api.example", "/x"))
    assert _session(header) != old.reference
    assert Session.from_json(path.read_text()).issued_at >= now
    assert gw.verify(header, "GET", "https://api.example/x").startswith("ok ")


# ---- rejected, with the gateway's reason codes ---------------------------------------------


def _seal(
    gw: Gateway,
    plain: bytes,
    req: Request,
    session: Optional[Session] = None,
) -> str:
    s = session or Session.open(gw.key(), int(time.time()))
    iv = os.urandom(12)
    sealed = iv + AESGCM(s.key).encrypt(iv, plain, associated_data(s.kid, req))
    return f"v1.{s.kid}.{b64.encode(s.wrapped)}.{b64.encode(sealed)}"


def _payload(gw: Gateway, req: Request, subject: bytes = b"alice", epoch: bytes = b"ep-1", flags: bytes = b"\0",
             trailing: bytes = b"", now: Optional[int] = None) -> bytes:
    now = int(time.time()) if now is None else now
    nonce = os.urandom(16)
    file = EntropyFile.load(gw.dir / "alice.ep-1.entropy")
    try:
        seed = interval_seed(subject.decode(), epoch.decode(), nonce, now, req)
        d = digest(seed, file.data, offsets(seed, len(file.data), file.interval_count))
    except UnicodeDecodeError:
        d = b"\0" * 32
    return struct.pack(">Q", now) + nonce + flags + lp8(epoch) + lp8(subject) + d + trailing


REQ = Request("GET", "api.example", "/x")
URL = "https://api.example/x"


def _flip(text: str, index: int) -> str:
    c = "A" if text[index] != "A" else "B"
    return text[:index] + c + text[index + 1 :]


def test_rejections_have_the_gateways_reason_codes(gw: Gateway) -> None:
    good = gw.prover().prove(REQ)
    v, kid, wrapped, sealed = good.split(".")
    now = int(time.time())
    older = Session.open(gw.key(), now - 600)
    file = EntropyFile.load(gw.dir / "alice.ep-1.entropy")
    cases: List[Tuple[str, str, str, str, List[str]]] = [
        ("oversized", good + "A" * (2049 - len(good)), "GET", URL, []),
        ("malformed", f"{v}.{kid}.{wrapped}", "GET", URL, []),
        ("malformed", f"{v}.{kid}.{wrapped}.{sealed}.x", "GET", URL, []),
        ("malformed", f"{v}.{kid}.{wrapped}=.{sealed}", "GET", URL, []),
        ("malformed", f"{v}.{kid}.{wrapped[:-4]}.{sealed}", "GET", URL, []),
        ("malformed", f"{v}.bad!kid.{wrapped}.{sealed}", "GET", URL, []),
        ("malformed", f"V1.{kid}.{wrapped}.{sealed}", "GET", URL, []),
        ("malformed", f"v1000.{kid}.{wrapped}.{sealed}", "GET", URL, []),
        ("unsupported_version", f"v4.{kid}.{wrapped}.{sealed}", "GET", URL, []),
        ("unsupported_version", f"v4.{kid}.!!!.???", "GET", URL, []),
        ("unsupported_version", f"v.{kid}.{wrapped}.{sealed}", "GET", URL, []),
        ("unsupported_version", f"v001.{kid}.{wrapped}.{sealed}", "GET", URL, []),
        ("unknown_key", f"{v}.gw-2.{wrapped}.{sealed}", "GET", URL, []),
        ("unwrap", f"{v}.{kid}.{_flip(wrapped, 10)}.{sealed}", "GET", URL, []),
        ("open", f"{v}.{kid}.{wrapped}.{_flip(sealed, 30)}", "GET", URL, []),
        ("open", good, "POST", URL, []),
        ("open", good, "GET", "https://api.example/y", []),
        ("open", good, "GET", "https://api.example:8443/x", []),
        ("open", good, "GET", "https://api.example/x?", []),
        ("stale", good, "GET", URL, ["--now", str(now + 120)]),
        # The session is checked first: a proof 120 s ahead from a session issued "now" is
        # session_expired; from an older session it is future.
        ("session_expired", good, "GET", URL, ["--now", str(now - 120)]),
        ("future", older.prove(file, REQ, now), "GET", URL, ["--now", str(now - 120)]),
    ]
    for code, header, method, url, extra in cases:
        assert gw.verify(header, method, url, *extra) == f"rejected: {code}", (code, header[:40], method, url)


def test_payload_level_rejections(gw: Gateway) -> None:
    now = int(time.time())
    expired = Session.open(gw.key(), now - 3700)
    cases = [
        ("session_expired", _seal(gw, _payload(gw, REQ), REQ, expired)),
        ("payload", _seal(gw, _payload(gw, REQ, trailing=b"\0"), REQ)),
        ("payload", _seal(gw, _payload(gw, REQ, flags=b"\x02"), REQ)),
        ("payload", _seal(gw, _payload(gw, REQ)[:-1], REQ)),
        ("payload", _seal(gw, _payload(gw, REQ, epoch=b"bad epoch"), REQ)),
        # A subject that is not UTF-8 is `payload`; UTF-8 but not canonical is `subject`.
        ("payload", _seal(gw, _payload(gw, REQ, subject=b"al\xffce"), REQ)),
        ("subject", _seal(gw, _payload(gw, REQ, subject=b"Alice"), REQ)),
        ("subject", _seal(gw, _payload(gw, REQ, subject=b"alice-", trailing=b"junk"), REQ)),
        ("unknown_epoch", _seal(gw, _payload(gw, REQ, epoch=b"ep-9"), REQ)),
        # bob's digest under alice's name, and alice's file claimed as bob.
        ("entropy", _seal(gw, _payload(gw, REQ, subject=b"bob"), REQ)),
    ]
    for code, header in cases:
        assert gw.verify(header, "GET", URL) == f"rejected: {code}", code
    # Sanity: the crafted payload itself is accepted when nothing is wrong.
    assert gw.verify(_seal(gw, _payload(gw, REQ), REQ), "GET", URL).startswith("ok ")


def test_the_python_cli_errors_match_the_rust_cli(gw: Gateway) -> None:
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy", str(gw.dir / "alice.ep-1.entropy"),
              "--url", "https://api.example/"]
    for extra, code in ((["--subject", "bob"], 3), (["--subject", "Alice"], 2)):
        rust, py = gw.run("prove", *common, *extra), py_cli("prove", *common, *extra)
        assert (rust.returncode, py.returncode) == (code, code), (rust.stderr, py.stderr)
    wrong = gw.run("prove", *common, "--subject", "bob").stderr.decode().strip()
    assert py_cli("prove", *common, "--subject", "bob").stderr.decode().strip() == wrong
    # A public key whose file name gives no key id is a usage error in both.
    renamed = gw.dir / "gw.pem"
    renamed.write_bytes((gw.dir / "keys/gw-1.pub.pem").read_bytes())
    args = ["--public-key", str(renamed), "--entropy", str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice",
            "--url", "https://api.example/"]
    assert (gw.run("prove", *args).returncode, py_cli("prove", *args).returncode) == (2, 2)
    ok = py_cli("prove", *args, "--kid", "gw-1")
    assert ok.returncode == 0 and gw.verify(ok.stdout.decode().strip(), "GET", "https://api.example/").startswith("ok ")
