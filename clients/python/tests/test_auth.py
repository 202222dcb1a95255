"""requests and httpx (sync and async) send exactly what their proofs bind: a local server
records each request as it arrives (method, Host, request target, body, proof) and
``autoid verify`` checks the proof against those received values, as the gateway would."""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional

import httpx
import pytest
import requests

from autoid_client import Prover, Request, Session, UsageError, b64
from autoid_client.httpx_auth import AutoidAuth as HttpxAuth
from autoid_client.requests_auth import AutoidAuth as RequestsAuth
from test_interop import Gateway, gw  # noqa: F401  (the module fixture)
from testkit import as_full


@dataclass
class Seen:
    method: str
    host: str
    target: str
    body: bytes
    proof: Optional[str]


class Recorder(http.server.ThreadingHTTPServer):
    seen: List[Seen]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def _any(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.seen.append(
            Seen(self.command, self.headers.get("Host", ""), self.path, body, self.headers.get("x-autoid-proof"))
        )
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Recorder]:
    srv = Recorder(("127.0.0.1", 0), Handler)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def check(gw: Gateway, seen: Seen, tmp: Path, body: bool = False, session: Optional[Session] = None) -> None:
    """``autoid verify`` of the received proof against the received request (a compact proof
    expanded with ``session``)."""
    assert seen.proof is not None
    full = seen.proof
    if session is not None:
        full = as_full(seen.proof, session, Request(seen.method, seen.host, seen.target))
    extra: List[str] = []
    if body:
        (tmp / "received-body").write_bytes(seen.body)
        extra = ["--body-file", str(tmp / "received-body"), "-v"]
    r = gw.run(
        "verify", "--private-key", str(gw.dir / "keys/gw-1.key.pem"), "--epoch", str(gw.dir / "ep-1.epoch.json"),
        "--header", full, "--method", seen.method, "--url", f"http://{seen.host}{seen.target}", *extra,
    )
    out = r.stdout.decode()
    assert r.returncode == 0 and out.startswith("ok subject=alice"), (out, seen.method, seen.host, seen.target)
    if body:
        assert "body=checked" in out.splitlines()


PATHS = ["/v1/payments?limit=10", "/p?", "/caf%C3%A9/a%20b?q=%E2%9C%93&x=a+b", "/caf\u00e9/a b?q=\u2713", "/"]


@pytest.mark.parametrize("path", PATHS)
def test_requests_binds_what_it_sends(gw: Gateway, server: Recorder, tmp_path: Path, path: str) -> None:
    auth = RequestsAuth(gw.prover())
    port = server.server_address[1]
    r = requests.get(f"http://LocalHost:{port}{path}", auth=auth, timeout=10)
    assert r.status_code == 200
    (seen,) = server.seen
    assert seen.host == f"localhost:{port}"
    check(gw, seen, tmp_path)


@pytest.mark.parametrize("path", PATHS)
def test_httpx_binds_what_it_sends(gw: Gateway, server: Recorder, tmp_path: Path, path: str) -> None:
    port = server.server_address[1]
    with httpx.Client(auth=HttpxAuth(gw.prover())) as client:
        assert client.get(f"http://LocalHost:{port}{path}").status_code == 200
    (seen,) = server.seen
    check(gw, seen, tmp_path)


def test_requests_body_binding(gw: Gateway, server: Recorder, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/transfers"
    prover = gw.prover()
    auth = RequestsAuth(prover, bind_body=True)
    assert requests.post(url, json={"amount": 5}, auth=auth, timeout=10).status_code == 200
    assert requests.put(url, data="caf\u00e9 \u2713", auth=auth, timeout=10).status_code == 200
    assert requests.post(url, data=b"\x00\xff", auth=auth, timeout=10).status_code == 200
    assert requests.delete(url, auth=auth, timeout=10).status_code == 200
    assert [s.body for s in server.seen] == [b'{"amount": 5}', "caf\u00e9 \u2713".encode(), b"\x00\xff", b""]
    assert [len(s.proof or "") < 300 for s in server.seen] == [False, True, True, True]  # full, then compact
    for seen in server.seen:
        check(gw, seen, tmp_path, body=True, session=prover.session())
    with pytest.raises(UsageError, match="stream"):
        requests.post(url, data=iter([b"a", b"b"]), auth=auth, timeout=10)


def test_requests_drops_the_proof_on_a_redirect(gw: Gateway, server: Recorder, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/redirect"
    r = requests.get(url, auth=RequestsAuth(gw.prover()), timeout=10)
    assert r.status_code == 200
    first, landed = server.seen
    check(gw, first, tmp_path)
    assert landed.target == "/landed" and landed.proof is None


def test_requests_refuses_credentials_and_unsafe_paths(gw: Gateway, server: Recorder) -> None:
    port = server.server_address[1]
    auth = RequestsAuth(gw.prover())
    with pytest.raises(UsageError):
        requests.get(f"http://u:p@127.0.0.1:{port}/", auth=auth, timeout=10)
    with pytest.raises(UsageError):
        requests.get(f"http://127.0.0.1:{port}/a//b", auth=auth, timeout=10)
    assert server.seen == []


def test_httpx_body_binding_sync_and_async(gw: Gateway, server: Recorder, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/transfers"
    prover = gw.prover()
    auth = HttpxAuth(prover, bind_body=True)
    with httpx.Client(auth=auth) as client:
        assert client.post(url, json={"amount": 5}).status_code == 200
        assert client.post(url, content=b"\x00\xff").status_code == 200

    async def run() -> None:
        async with httpx.AsyncClient(auth=auth) as client:
            r1, r2 = await asyncio.gather(
                client.post(url, content=b"async-1"), client.patch(url, content=b"async-2")
            )
            assert (r1.status_code, r2.status_code) == (200, 200)

    asyncio.run(run())
    assert {s.body for s in server.seen} == {b"{\"amount\":5}", b"\x00\xff", b"async-1", b"async-2"}
    for seen in server.seen:
        check(gw, seen, tmp_path, body=True, session=prover.session())


def test_python_cli_request(gw: Gateway, server: Recorder, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/transfers?"
    r = subprocess.run(
        [sys.executable, "-m", "autoid_client", "request", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"),
         "--entropy", str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "-H", "content-type: application/json",
         "-d", '{"amount":5}', "--bind-body", "--repeat", "2", "--session", str(tmp_path / "s"), url],
        capture_output=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'HTTP 200\n{"ok": true}\nHTTP 200\n{"ok": true}\n'
    assert len(server.seen) == 2 and server.seen[0].proof != server.seen[1].proof
    session = Session.from_json((tmp_path / "s").read_text())
    # The session this process opened: the full form first, then compact.
    assert [(s.proof or "").split(".")[2] for s in server.seen] == [b64.encode(session.wrapped), b64.encode(session.reference)]
    for seen in server.seen:
        assert (seen.method, seen.target) == ("POST", "/v1/transfers?")
        check(gw, seen, tmp_path, body=True, session=session)
    refused = subprocess.run(
        [sys.executable, "-m", "autoid_client", "request", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"),
         "--entropy", str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "-H", "Host: x", url],
        capture_output=True, timeout=60,
    )
    assert refused.returncode == 2 and b"Host comes from the URL" in refused.stderr
    down = subprocess.run(
        [sys.executable, "-m", "autoid_client", "request", "--public-key", str(gw.dir / "keys/gw-1.pub.pem"),
         "--entropy", str(gw.dir / "alice.ep-1.entropy"), "--subject", "alice", "http://127.0.0.1:9/"],
        capture_output=True, timeout=60,
    )
    assert down.returncode == 3 and down.stderr.startswith(b"autoid: error: GET http://127.0.0.1:9/: ")
