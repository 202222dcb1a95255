"""Both directions against the Rust CLI: ``autoid verify`` accepts proofs made here (every binding,
body binding, sessions shared through the session file; v3 by default, v2 and v1 when asked) and
rejects tampered ones with the reason codes docs/PROTOCOL.md sections 5 and 12 give; the Rust
client's v3 proofs are read back here. Needs the ``autoid`` binary (no skipping)."""

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

from autoid_client import Form, Prover, PublicKey, EntropyFile, Request, Session, Ticket, b64, target
from autoid_client.proof import associated_data, digest, interval_seed, lp8, offsets, session_id, session_ref
from bindings_table import BINDINGS, REFUSED
from testkit import REPO, autoid_bin, open_proof

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

    def prover(self, subject: str = "alice", epoch: str = "ep-1", session: Optional[Path] = None,
               version: int = 3) -> Prover:
        return Prover.from_files(
            self.dir / "keys/gw-1.pub.pem", self.dir / f"{subject}.{epoch}.entropy", subject,
            session_file=session, version=version,
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
    for version in (3, 2, 1):
        header = gw.prover(version=version).prove(Request(*expected))
        assert header.startswith(f"v{version}.") and len(header.split(".")) == (5 if version == 3 else 4)
        assert gw.verify(header, method, url) == "ok subject=alice epoch=ep-1 kid=gw-1", version


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
    assert len(lines) == 1 and lines[0].startswith("v3.gw-1.")  # v3, the full form with its ticket
    assert len(lines[0].split(".")) == 5 and len(b64.decode(lines[0].split(".")[2])) == 256
    assert gw.verify(lines[0], "GET", url) == "ok subject=alice epoch=ep-1 kid=gw-1"
    for version in ("1", "v1", "2", "v2", "3", "v3"):
        made = py_cli("prove", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy",
                      str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "--url", url,
                      "--proof-version", version)
        assert made.returncode == 0 and made.stdout.startswith(f"v{version[-1]}.gw-1.".encode()), made.stderr
        assert gw.verify(made.stdout.decode().strip(), "GET", url).startswith("ok ")


def test_the_python_cli_prove_forms(gw: Gateway, tmp_path: Path) -> None:
    url = "https://api.example/x"
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy", str(gw.dir / "alice.ep-1.entropy"),
              "--subject", "alice", "--url", url, "--session", str(tmp_path / "s")]
    full = py_cli("prove", *common, "--form", "full")
    compact = py_cli("prove", *common, "--form", "compact")
    assert (full.returncode, compact.returncode) == (0, 0), (full.stderr, compact.stderr)
    session = Session.from_json((tmp_path / "s").read_text())
    f, c = full.stdout.decode().strip(), compact.stdout.decode().strip()
    assert f.split(".")[:3] == ["v3", "gw-1", b64.encode(session.wrapped)] and len(f.split(".")) == 5
    assert c.split(".")[:3] == ["v3", "gw-1", b64.encode(session.reference)] and len(c.split(".")) == 4
    assert gw.verify(f, "GET", url).startswith("ok ")
    # `autoid verify` holds no session, as a gateway that never saw the full form.
    assert gw.verify(c, "GET", url) == "rejected: unknown_session"
    assert len(c) < 200 < len(f)
    v2 = [py_cli("prove", *common, "--form", form, "--proof-version", "2").stdout.decode().strip()
          for form in ("full", "compact")]
    assert [h.split(".")[:3] for h in v2] == [["v2", "gw-1", b64.encode(session.wrapped)],
                                              ["v2", "gw-1", b64.encode(session.reference)]]
    assert [len(h.split(".")) for h in v2] == [4, 4] and gw.verify(v2[0], "GET", url).startswith("ok ")
    # As `autoid prove`: --form full with v1 is v1; compact needs v2 or v3 (the same words).
    bad = py_cli("prove", *common, "--form", "compact", "--proof-version", "1")
    rust = gw.run("prove", *common, "--form", "compact", "--proof-version", "1")
    assert (bad.returncode, rust.returncode) == (2, 2)
    assert b"--form compact needs --proof-version 2 or 3" in bad.stderr
    assert b"--form compact needs --proof-version 2 or 3" in rust.stderr
    v1 = py_cli("prove", *common, "--form", "full", "--proof-version", "1")
    assert v1.returncode == 0 and v1.stdout.startswith(b"v1.gw-1.")
    assert py_cli("prove", *common, "--form", "tiny").returncode == 2
    for bad_version in ("4", "0", "v4"):
        assert py_cli("prove", *common, "--proof-version", bad_version).returncode == 2
        assert gw.run("prove", *common, "--proof-version", bad_version).returncode == 2


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
    good = gw.prover(version=2).prove(REQ)
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


def _ticket(header: str) -> Ticket:
    return Ticket.from_bytes(b64.decode(header.split(".")[4]))


def _with_ticket(header: str, ticket: "Ticket | bytes") -> str:
    raw = ticket if isinstance(ticket, bytes) else ticket.to_bytes()
    return ".".join(header.split(".")[:4] + [b64.encode(raw)])


def test_v3_ticket_rejections_have_the_gateways_reason_codes(gw: Gateway) -> None:
    """docs/PROTOCOL.md section 12: the ticket's grammar, then (before any RSA) its time, its
    epoch and its tag; after the open, the payload must say what the ticket said."""
    p = gw.prover()
    good = p.prove(REQ)
    v, kid, wrapped, sealed, ticket = good.split(".")
    t = _ticket(good)
    assert (t.epoch, t.subject) == ("ep-1", "alice")
    now = t.timestamp
    compact = p.prove(REQ)
    assert len(compact.split(".")) == 4
    other = gw.prover().prove(REQ)  # another session
    same_session = p.prove(REQ, form=Form.FULL)  # another nonce, same session
    bob = gw.prover("bob").session()
    flipped = bytearray(t.to_bytes())
    flipped[-1] ^= 1
    cases: List[Tuple[str, str, str, List[str]]] = [
        ("malformed", f"{v}.{kid}.{wrapped}.{sealed}", "GET", []),  # a v3 full form without a ticket
        ("malformed", f"{compact}.{ticket}", "GET", []),  # a ticket on the compact form
        ("malformed", f"v2.{kid}.{wrapped}.{sealed}.{ticket}", "GET", []),  # ... on v2
        ("malformed", f"{good}.{ticket}", "GET", []),  # six parts
        ("malformed", f"{good}=", "GET", []),  # not canonical base64url
        ("malformed", _with_ticket(good, t.to_bytes() + b"\0"), "GET", []),
        ("malformed", _with_ticket(good, t.to_bytes()[:-1]), "GET", []),
        ("malformed", _with_ticket(good, Ticket(now, t.nonce, "ep-1", "Alice", t.tag)), "GET", []),
        ("malformed", _with_ticket(good, Ticket(now, t.nonce, "ep 1", "alice", t.tag)), "GET", []),
        ("entropy", _with_ticket(good, bytes(flipped)), "GET", []),
        # A ticket is good for one wrapped key: not another session's, even with its right tag.
        ("entropy", _with_ticket(other, t), "GET", []),
        ("entropy", _with_ticket(good, Ticket.new(now, t.nonce, "ep-1", "alice", bytes(32), bob.id)), "GET", []),
        # The ticket is checked before the seal: another request's bindings are `entropy`.
        ("entropy", good, "POST", []),
        ("entropy", _with_ticket(good, Ticket(now, t.nonce, "ep-1", "bob", t.tag)), "GET", []),
        ("unknown_epoch", _with_ticket(good, Ticket(now, t.nonce, "ep-9", "alice", t.tag)), "GET", []),
        # Its time first: stale and future before session_expired (v2 says session_expired).
        ("stale", good, "GET", ["--now", str(now + 120)]),
        ("future", good, "GET", ["--now", str(now - 120)]),
        # A right ticket of the same session with another nonce: the seal does not say the same.
        ("payload", _with_ticket(good, _ticket(same_session)), "GET", []),
        ("payload", _with_ticket(same_session, t), "GET", []),
    ]
    for code, header, method, extra in cases:
        assert gw.verify(header, method, URL, *extra) == f"rejected: {code}", (code, header[-60:], method)
    assert gw.verify(p.prove(REQ, form=Form.FULL, version=2), "GET", URL, "--now", str(now - 120)) == (
        "rejected: session_expired"
    )
    for h in (good, other, same_session):
        assert gw.verify(h, "GET", URL) == "ok subject=alice epoch=ep-1 kid=gw-1"


@pytest.mark.parametrize("body", [None, b'{"amount":5}'])
def test_the_rust_clients_v3_proofs_read_back_here(gw: Gateway, tmp_path: Path, body: Optional[bytes]) -> None:
    """The other direction: `autoid prove` (v3 by default) with a session file; this client
    loads the session and the entropy file, and finds the ticket and the seal as it makes them."""
    url = "https://API.example:8443/v1/transfers?x=1"
    args = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy", str(gw.dir / "alice.ep-1.entropy"),
            "--subject", "alice", "--session", str(tmp_path / "s"), "-X", "POST", "--url", url]
    if body is not None:
        (tmp_path / "body").write_bytes(body)
        args += ["--body-file", str(tmp_path / "body")]
    r = gw.run("prove", *args)
    assert r.returncode == 0, r.stderr
    header = r.stdout.decode().strip()
    session = Session.from_json((tmp_path / "s").read_text())
    version, kid, wrapped, _, _ = header.split(".")
    assert (version, kid, b64.decode(wrapped)) == ("v3", "gw-1", session.wrapped)
    req = Request("POST", "api.example:8443", "/v1/transfers?x=1")
    ticket = _ticket(header)
    file = EntropyFile.load(gw.dir / "alice.ep-1.entropy")
    seed = interval_seed(ticket.subject, ticket.epoch, ticket.nonce, ticket.timestamp, req)
    d = digest(seed, file.data, offsets(seed, len(file.data), file.interval_count))
    assert ticket.tag_matches(d, session.id)
    assert abs(ticket.timestamp - int(time.time())) < 60
    o = open_proof(header, session, req)
    assert (o.now, o.nonce, o.epoch, o.subject, o.digest) == (
        ticket.timestamp, ticket.nonce, "ep-1", "alice", d
    )
    assert o.body_sha256 == (None if body is None else hashlib.sha256(body).digest())
    # Rust's compact v3 proof of that session opens here too.
    compact = gw.run("prove", *args, "--form", "compact").stdout.decode().strip()
    assert compact.split(".")[:3] == ["v3", "gw-1", b64.encode(session.reference)]
    assert open_proof(compact, session, req).subject == "alice"


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
