"""The client rules of the compact form (docs/PROTOCOL.md section 11, and section 12 for v3, the
default) against fake transports: the full form first, then compact; on a 401 whose AutoID
challenge says ``error="unknown_session"`` exactly one resend with a new full-form proof, in the
same version; any other 401 final; ``version=1`` unchanged."""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import httpx
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from autoid_client import Prover, b64
from autoid_client.files import EntropyFile, PublicKey
from autoid_client.httpx_auth import AutoidAuth as HttpxAuth
from autoid_client.proof import Form, Request, Session, associated_data
from autoid_client.requests_auth import AutoidAuth as RequestsAuth
from test_interop import Gateway, gw  # noqa: F401  (the module fixture)
from testkit import VECTORS, TestRng, entropy_stream

PROOF = "x-autoid-proof"
HINT = 'AutoID realm="autoid", header="x-autoid-proof", error="unknown_session"'
PLAIN = 'AutoID realm="autoid", header="x-autoid-proof"'


def _key() -> PublicKey:
    private = serialization.load_pem_private_key((VECTORS / "gateway-2048.pem").read_bytes(), password=None)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey.from_pem("test-2048", pem)


KEY = _key()
FILE = EntropyFile("e-test", "alice", 64, entropy_stream(bytes(range(32)), "e-test", "alice", 65536))


def prover(version: int = 3, session_file: Optional[Path] = None) -> Prover:
    return Prover(KEY, FILE, session_file=session_file, random=TestRng(b"resend"), version=version)


def form(header: str) -> str:
    """``v1``, ``full`` or ``compact``; a v3 full form must carry its ticket (five parts), and
    no other form may."""
    parts = header.split(".")
    version, part = parts[0], parts[2]
    if version == "v1":
        assert len(parts) == 4
        return "v1"
    name = "compact" if len(b64.decode(part)) == 16 else "full"
    assert len(parts) == (5 if (version, name) == ("v3", "full") else 4), header
    return name


def versions(headers: List[str]) -> List[str]:
    return [h.split(".")[0] for h in headers]


def opened(p: Prover, header: str, method: str, authority: str, path: str) -> Tuple[bytes, bytes]:
    """The IV and the nonce of a proof, opened with the prover's session key."""
    sealed = b64.decode(header.split(".")[3])
    aad = associated_data(KEY.kid, Request(method, authority, path), int(header[1]))
    plain = AESGCM(p.session().key).decrypt(sealed[:12], sealed[12:], aad)
    return sealed[:12], plain[8:24]


# ---- the form a prover picks ------------------------------------------------------------------


def test_the_full_form_once_per_session_and_authority_then_compact() -> None:
    p = prover()
    a, b = Request("GET", "a.example", "/"), Request("GET", "B.example:8443", "/")
    assert [form(p.prove(a)), form(p.prove(a)), form(p.prove(b)), form(p.prove(Request("GET", "b.example:8443", "/")))] == [
        "full", "compact", "full", "compact",
    ]
    assert form(p.prove(a, form=Form.FULL)) == "full"
    assert form(p.prove(a)) == "compact"
    # A renewed session starts again with the full form.
    now = p.session().issued_at + 3400
    assert [form(p.prove(a, now=now)), form(p.prove(a, now=now))] == ["full", "compact"]


def test_a_session_from_the_session_file_starts_compact(tmp_path: Path) -> None:
    path = tmp_path / "s"
    opener = prover(session_file=path)
    assert form(opener.prove(Request("GET", "a", "/"))) == "full"  # opened here: full first
    loaded = prover(session_file=path)  # another process
    assert form(loaded.prove(Request("GET", "a", "/"))) == "compact"
    assert form(loaded.prove(Request("GET", "other", "/"))) == "compact"
    assert loaded.session().reference == Session.from_json(path.read_text()).reference


def test_version_3_is_the_default_and_2_stays_selectable() -> None:
    p = Prover(KEY, FILE, random=TestRng(b"default"))
    a = Request("GET", "a.example", "/")
    assert p.version == 3
    made = [p.prove(a), p.prove(a), p.prove(a, version=2), p.prove(a, form=Form.FULL, version=2)]
    assert versions(made) == ["v3", "v3", "v2", "v2"]
    assert [form(h) for h in made] == ["full", "compact", "compact", "full"]
    v2 = prover(version=2)
    made = [v2.prove(a), v2.prove(a), v2.prove(a, form=Form.FULL, version=3)]
    assert versions(made) == ["v2", "v2", "v3"] and [form(h) for h in made] == ["full", "compact", "full"]


def test_version_1_makes_v1_proofs_only() -> None:
    p = prover(version=1)
    assert [form(p.prove(Request("GET", "a", "/"))) for _ in range(2)] == ["v1", "v1"]
    # Version 1 has one form (as the Rust `Session::prove_in`): a full form asked for is v1's.
    assert form(p.prove(Request("GET", "a", "/"), form=Form.FULL)) == "v1"
    assert form(prover().prove(Request("GET", "a", "/"), form=Form.COMPACT, version=1)) == "v1"
    for bad in (0, 4):
        with pytest.raises(Exception, match="1, 2 or 3"):
            prover(version=bad)


# ---- requests ---------------------------------------------------------------------------------


class FakeAdapter(HTTPAdapter):
    """Answers each request with the next scripted (status, WWW-Authenticate) and records it."""

    def __init__(self, script: List[Tuple[int, Optional[str]]]) -> None:
        super().__init__()
        self.script = list(script)
        self.sent: List[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        status, challenge = self.script.pop(0) if self.script else (200, None)
        r = requests.Response()
        r.status_code = status
        r.headers = CaseInsensitiveDict({"content-type": "application/json"})
        if challenge is not None:
            r.headers["www-authenticate"] = challenge
        r._content = json.dumps({"status": status}).encode()
        r.request = request
        r.url = request.url or ""
        r.connection = self
        return r

    def close(self) -> None:
        pass


def session_with(adapter: FakeAdapter) -> requests.Session:
    s = requests.Session()
    s.mount("http://", adapter)
    return s


URL = "http://api.example/v1/payments?limit=10"


def proofs(adapter: FakeAdapter) -> List[str]:
    return [str(r.headers[PROOF]) for r in adapter.sent]


def test_requests_resends_once_in_the_full_form_on_the_hint() -> None:
    p = prover()
    adapter = FakeAdapter([(200, None), (401, HINT), (200, None)])
    s = session_with(adapter)
    auth = RequestsAuth(p)
    assert s.get(URL, auth=auth).status_code == 200  # the session's first request: full
    r = s.get(URL, auth=auth)  # compact, the gateway does not hold it: one resend, full
    assert r.status_code == 200 and [h.status_code for h in r.history] == [401]
    assert [form(h) for h in proofs(adapter)] == ["full", "compact", "full"]
    compact, again = proofs(adapter)[1:]
    assert opened(p, compact, "GET", "api.example", "/v1/payments?limit=10") != opened(
        p, again, "GET", "api.example", "/v1/payments?limit=10"
    )  # a new proof: another IV and another nonce
    (iv1, n1), (iv2, n2) = (opened(p, h, "GET", "api.example", "/v1/payments?limit=10") for h in (compact, again))
    assert iv1 != iv2 and n1 != n2
    # Then compact again.
    assert s.get(URL, auth=auth).status_code == 200
    assert form(proofs(adapter)[-1]) == "compact" and len(adapter.sent) == 4


def test_requests_the_resend_keeps_the_auths_version() -> None:
    adapter = FakeAdapter([(200, None), (401, HINT), (200, None), (200, None), (401, HINT), (200, None)])
    s = session_with(adapter)
    p = prover()  # v3
    assert s.get(URL, auth=RequestsAuth(p, version=2)).status_code == 200
    assert s.get(URL, auth=RequestsAuth(p, version=2)).status_code == 200
    assert versions(proofs(adapter)) == ["v2", "v2", "v2"]
    assert [form(h) for h in proofs(adapter)] == ["full", "compact", "full"]
    # The prover's own version: the resend is a v3 full form, with its ticket.
    p = prover()
    assert s.get(URL, auth=RequestsAuth(p)).status_code == 200
    assert s.get(URL, auth=RequestsAuth(p)).status_code == 200
    assert versions(proofs(adapter)[3:]) == ["v3", "v3", "v3"]
    assert [form(h) for h in proofs(adapter)[3:]] == ["full", "compact", "full"]


def test_requests_any_other_401_is_final() -> None:
    adapter = FakeAdapter([(401, PLAIN), (401, 'Basic realm="x", charset="UTF-8"'), (403, HINT)])
    s = session_with(adapter)
    auth = RequestsAuth(prover())
    assert [s.get(URL, auth=auth).status_code for _ in range(3)] == [401, 401, 403]
    assert len(adapter.sent) == 3


def test_requests_resends_at_most_once() -> None:
    adapter = FakeAdapter([(401, HINT), (401, HINT), (200, None)])
    s = session_with(adapter)
    r = s.get(URL, auth=RequestsAuth(prover()))
    assert r.status_code == 401 and len(adapter.sent) == 2
    assert [form(h) for h in proofs(adapter)] == ["full", "full"]


def test_requests_resend_keeps_the_body_and_binds_it() -> None:
    p = prover()
    adapter = FakeAdapter([(200, None), (401, HINT), (200, None)])
    s = session_with(adapter)
    auth = RequestsAuth(p, bind_body=True)
    url = "http://api.example/v1/transfers"
    s.post(url, json={"amount": 5}, auth=auth)
    assert s.post(url, data="caf\u00e9", auth=auth).status_code == 200
    first, again = adapter.sent[1:]
    assert first.body == again.body == "caf\u00e9".encode()
    assert [form(h) for h in proofs(adapter)] == ["full", "compact", "full"]


def test_requests_a_streamed_body_always_gets_the_full_form() -> None:
    adapter = FakeAdapter([])
    s = session_with(adapter)
    auth = RequestsAuth(prover())
    s.post(URL, data=b"x", auth=auth)
    s.post(URL, data=iter([b"a", b"b"]), auth=auth)
    assert [form(h) for h in proofs(adapter)] == ["full", "full"]


def test_requests_version_1_never_resends() -> None:
    adapter = FakeAdapter([(401, HINT), (401, HINT)])
    s = session_with(adapter)
    assert s.get(URL, auth=RequestsAuth(prover(version=1))).status_code == 401
    # AutoidAuth(version=1), as docs/PROTOCOL.md section 11 names it, on a v2 prover.
    p = prover()
    assert s.get(URL, auth=RequestsAuth(p, version=1)).status_code == 401
    assert [form(h) for h in proofs(adapter)] == ["v1", "v1"]
    assert s.get(URL, auth=RequestsAuth(p)).status_code == 200
    assert form(proofs(adapter)[-1]) == "full"  # v1 proofs do not count as the full form
    with pytest.raises(Exception, match="1, 2 or 3"):
        RequestsAuth(p, version=4)


def test_requests_a_redirect_target_is_never_proven_nor_resent() -> None:
    adapter = FakeAdapter([])
    original = adapter.send

    def send(request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        r = original(request, **kw)
        if request.path_url == "/go":
            r.status_code = 302
            r.headers["location"] = "/landed"
        elif request.path_url == "/landed":
            r.status_code = 401
            r.headers["www-authenticate"] = HINT
        return r

    adapter.send = send  # type: ignore[method-assign]
    r = session_with(adapter).get("http://api.example/go", auth=RequestsAuth(prover()))
    assert r.status_code == 401 and [q.path_url for q in adapter.sent] == ["/go", "/landed"]
    assert PROOF not in adapter.sent[1].headers


# ---- httpx ------------------------------------------------------------------------------------


class Script:
    def __init__(self, script: List[Tuple[int, Optional[str]]]) -> None:
        self.script = list(script)
        self.sent: List[httpx.Request] = []
        self.headers: List[str] = []  # as sent: a resend mutates the request object

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.sent.append(request)
        self.headers.append(request.headers[PROOF])
        status, challenge = self.script.pop(0) if self.script else (200, None)
        headers = [("www-authenticate", challenge)] if challenge else []
        if status == 401:
            headers.append(("www-authenticate", 'Basic realm="x"'))  # two field lines
        return httpx.Response(status, headers=headers, json={"status": status})

    def proofs(self) -> List[str]:
        return self.headers


def test_httpx_resends_once_in_the_full_form_on_the_hint() -> None:
    p = prover()
    script = Script([(200, None), (401, HINT), (200, None)])
    with httpx.Client(transport=httpx.MockTransport(script), auth=HttpxAuth(p)) as c:
        assert c.get(URL).status_code == 200
        r = c.get(URL)
        assert r.status_code == 200 and [h.status_code for h in r.history] == [401]
        assert c.get(URL).status_code == 200
    assert [form(h) for h in script.proofs()] == ["full", "compact", "full", "compact"]
    (iv1, n1), (iv2, n2) = (opened(p, h, "GET", "api.example", "/v1/payments?limit=10") for h in script.proofs()[1:3])
    assert iv1 != iv2 and n1 != n2


def test_httpx_the_resend_keeps_the_auths_version() -> None:
    for version in (2, 3):
        script = Script([(200, None), (401, HINT), (200, None)])
        with httpx.Client(transport=httpx.MockTransport(script), auth=HttpxAuth(prover(), version=version)) as c:
            assert c.get(URL).status_code == 200
            assert c.get(URL).status_code == 200
        assert versions(script.proofs()) == [f"v{version}"] * 3
        assert [form(h) for h in script.proofs()] == ["full", "compact", "full"]


def test_httpx_any_other_401_is_final_and_one_resend_at_most() -> None:
    script = Script([(401, PLAIN), (401, HINT), (401, HINT), (200, None)])
    with httpx.Client(transport=httpx.MockTransport(script), auth=HttpxAuth(prover())) as c:
        assert c.get(URL).status_code == 401
        assert c.get(URL).status_code == 401
    assert [form(h) for h in script.proofs()] == ["full", "compact", "full"]


def test_httpx_async_resend_with_a_bound_body() -> None:
    p = prover()
    script = Script([(200, None), (401, HINT), (200, None)])

    async def run() -> None:
        auth = HttpxAuth(p, bind_body=True)
        async with httpx.AsyncClient(transport=httpx.MockTransport(script), auth=auth) as c:
            assert (await c.post(URL, content=b"one")).status_code == 200
            assert (await c.post(URL, content=b"two")).status_code == 200

    asyncio.run(run())
    assert [r.content for r in script.sent] == [b"one", b"two", b"two"]
    assert [form(h) for h in script.proofs()] == ["full", "compact", "full"]


def test_httpx_a_streamed_body_always_gets_the_full_form_and_version_1() -> None:
    script = Script([(200, None), (401, HINT)])
    with httpx.Client(transport=httpx.MockTransport(script), auth=HttpxAuth(prover())) as c:
        c.post(URL, content=b"x")
        assert c.post(URL, content=iter([b"a", b"b"])).status_code == 401  # full: nothing to resend
    assert [form(h) for h in script.proofs()] == ["full", "full"]
    v1 = Script([(401, HINT), (401, HINT)])
    with httpx.Client(transport=httpx.MockTransport(v1), auth=HttpxAuth(prover(version=1))) as c:
        assert c.get(URL).status_code == 401
        assert c.get(URL, auth=HttpxAuth(prover(), version=1)).status_code == 401
    assert [form(h) for h in v1.proofs()] == ["v1", "v1"]


# ---- the CLI, against a local server that holds no session --------------------------------------


class Forgetful(http.server.ThreadingHTTPServer):
    proofs: List[str]
    respond: Callable[[str], Tuple[int, List[str]]]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Forgetful

    def do_GET(self) -> None:
        proof = self.headers.get(PROOF, "")
        self.server.proofs.append(proof)
        status, challenge = self.server.respond(proof)
        out = json.dumps({"status": status}).encode()
        self.send_response(status)
        for c in challenge:
            self.send_header("WWW-Authenticate", c)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def forgetful() -> Iterator[Forgetful]:
    """A gateway that never holds a session: compact proofs get the hint, full ones pass."""
    srv = Forgetful(("127.0.0.1", 0), Handler)
    srv.proofs = []
    srv.respond = lambda proof: (401, ['Basic realm="x"', HINT]) if form(proof) == "compact" else (200, [])
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_the_cli_resends_once_on_the_hint(gw: Gateway, forgetful: Forgetful, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{forgetful.server_address[1]}/x"
    common = ["--public-key", str(gw.dir / "keys/gw-1.pub.pem"), "--entropy", str(gw.dir / "alice.ep-1.entropy"),
              "--subject", "alice", "--session", str(tmp_path / "s")]
    r = subprocess.run([sys.executable, "-m", "autoid_client", "request", *common, "--repeat", "2", url],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'HTTP 200\n{"status": 200}\nHTTP 200\n{"status": 200}\n'
    assert [form(h) for h in forgetful.proofs] == ["full", "compact", "full"]
    assert versions(forgetful.proofs) == ["v3"] * 3  # the default, as `autoid request`'s
    # A session from the session file starts compact.
    forgetful.proofs.clear()
    r = subprocess.run([sys.executable, "-m", "autoid_client", "request", *common, url], capture_output=True, timeout=60)
    assert r.returncode == 0 and [form(h) for h in forgetful.proofs] == ["compact", "full"]
    # The AWS command makes one request per call: the full form, as `autoid aws credential-process`.
    forgetful.proofs.clear()
    aws = subprocess.run([sys.executable, "-m", "autoid_client", "aws-credential-process", *common, url],
                         capture_output=True, timeout=60)
    assert aws.returncode == 3 and b"not credential_process JSON" in aws.stderr  # the fake's 200
    assert [form(h) for h in forgetful.proofs] == ["full"] and versions(forgetful.proofs) == ["v3"]
    # Any other 401 is final; v1 never resends.
    forgetful.proofs.clear()
    forgetful.respond = lambda proof: (401, [PLAIN])
    r = subprocess.run([sys.executable, "-m", "autoid_client", "request", *common, url], capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stdout.startswith(b"HTTP 401\n") and len(forgetful.proofs) == 1
    forgetful.proofs.clear()
    forgetful.respond = lambda proof: (401, [HINT])
    r = subprocess.run([sys.executable, "-m", "autoid_client", "request", *common, "--proof-version", "1", url],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and [form(h) for h in forgetful.proofs] == ["v1"]
