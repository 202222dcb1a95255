"""Drives the real gateway for e2e/tests/python_client.rs: with requests, httpx (sync) and httpx
(async), over plain HTTP and TLS, it sends an allowed request, a denied one, a replay and
body-bound POSTs, and prints one JSON line per request (client, scheme, case, status, the
version and form of the proof it carried, and the echo upstream's answer). The Rust test asserts
on those lines. No secret is printed."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import ssl
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import httpx
import requests

from autoid_client import Prover, b64
from autoid_client.httpx_auth import AutoidAuth as HttpxAuth
from autoid_client.requests_auth import AutoidAuth as RequestsAuth

BODY = b'{"amount":5,"currency":"EUR"}'
# Escapes of non-ASCII and reserved characters, sub-delims as they are: the gateway forwards
# them as sent and the proof binds them as sent. (Escapes of unreserved characters and a raw
# ^ or | are rewritten by Envoy before the filter: the auth adapters refuse them.)
PERCENT = "/payments/caf%C3%A9/~user/a%20b%7C;v=1,2@x?q=%E2%9C%93&r=a+b%26c%5E"


def form(proof: Optional[str]) -> Optional[str]:
    """``v3.full+ticket``, ``v3.compact``, ``v2.full``, ...: what the last proof sent was."""
    if proof is None:
        return None
    parts = proof.split(".")
    name = "compact" if len(b64.decode(parts[2])) == 16 else "full"
    return f"{parts[0]}.{name}" + ("+ticket" if len(parts) == 5 else "")


def emit(client: str, scheme: str, case: str, r: Any) -> None:
    """One line for the response ``r`` (requests or httpx), with the proof of its request."""
    status, text = (r.status_code, r.content)
    try:
        echo: Optional[Dict[str, Any]] = json.loads(text)
    except ValueError:
        echo = None
    proof = form(r.request.headers.get("x-autoid-proof") if r.request is not None else None)
    line = {"client": client, "scheme": scheme, "case": case, "status": status, "proof": proof, "echo": echo}
    print(json.dumps(line), flush=True)


def with_requests(base: str, scheme: str, verify: Any, alice: Prover, dave: Prover) -> None:
    s = requests.Session()
    # Per request: a Session's own `verify` loses to $REQUESTS_CA_BUNDLE (a requests quirk).
    kw: Dict[str, Any] = {"timeout": 10, "verify": verify}

    def send(case: str, r: requests.Response) -> None:
        emit("requests", scheme, case, r)

    send("allowed", s.get(f"{base}/payments/charges?limit=2", auth=RequestsAuth(alice), **kw))
    send("denied", s.get(f"{base}/payments/charges", auth=RequestsAuth(dave), **kw))
    prepared = s.prepare_request(requests.Request("GET", f"{base}/payments/once", auth=RequestsAuth(alice)))
    send("replay-first", s.send(prepared, **kw))
    send("replay-again", s.send(prepared, **kw))
    send("percent", s.get(f"{base}{PERCENT}", auth=RequestsAuth(alice), **kw))
    bound = RequestsAuth(alice, bind_body=True)
    send("body", s.post(f"{base}/payments/transfers", data=BODY, auth=bound,
                        headers={"content-type": "application/json"}, **kw))
    tampered = s.prepare_request(requests.Request("POST", f"{base}/payments/transfers", data=BODY, auth=bound))
    tampered.body = BODY.replace(b"5", b"9")
    send("body-tampered", s.send(tampered, **kw))


def _context(verify: Any) -> Any:
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def with_httpx(base: str, scheme: str, verify: Any, alice: Prover, dave: Prover) -> None:
    with httpx.Client(verify=_context(verify), timeout=10) as c:
        def send(case: str, r: httpx.Response) -> None:
            emit("httpx", scheme, case, r)

        send("allowed", c.get(f"{base}/payments/charges?limit=2", auth=HttpxAuth(alice)))
        send("denied", c.get(f"{base}/payments/charges", auth=HttpxAuth(dave)))
        send("percent", c.get(f"{base}{PERCENT}", auth=HttpxAuth(alice)))
        # httpx keeps an empty query's `?` (requests drops it): bound as sent either way.
        send("empty-query", c.get(f"{base}/payments/charges?", auth=HttpxAuth(alice)))
        request = c.build_request("GET", f"{base}/payments/once")
        request = next(HttpxAuth(alice).sync_auth_flow(request))
        send("replay-first", c.send(request))
        send("replay-again", c.send(request))
        send("body", c.post(f"{base}/payments/transfers", content=BODY, auth=HttpxAuth(alice, bind_body=True),
                            headers={"content-type": "application/json"}))


async def with_httpx_async(base: str, scheme: str, verify: Any, alice: Prover, dave: Prover) -> None:
    async with httpx.AsyncClient(verify=_context(verify), timeout=10) as c:
        bound = HttpxAuth(alice, bind_body=True)
        allowed, denied, body = await asyncio.gather(
            c.get(f"{base}/payments/charges?limit=2", auth=HttpxAuth(alice)),
            c.get(f"{base}/payments/charges", auth=HttpxAuth(dave)),
            c.post(f"{base}/payments/transfers", content=BODY, auth=bound),
        )
        for case, r in (("allowed", allowed), ("denied", denied), ("body", body)):
            emit("httpx-async", scheme, case, r)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--http", required=True, help="host:port of the plain listener")
    p.add_argument("--https", required=True, help="host:port of the TLS listener")
    p.add_argument("--ca", required=True, help="the dev CA (PEM)")
    p.add_argument("--public-key", required=True)
    p.add_argument("--entropy-dir", required=True, help="holds alice.entropy and dave.entropy")
    args = p.parse_args()
    d = Path(args.entropy_dir)
    alice = Prover.from_files(args.public_key, d / "alice.entropy", "alice", session_file=d / "alice.py.session")
    dave = Prover.from_files(args.public_key, d / "dave.entropy", "dave")
    print(json.dumps({"body_sha256": hashlib.sha256(BODY).hexdigest()}), flush=True)
    for scheme, base, verify in (("http", f"http://{args.http}", True), ("https", f"https://{args.https}", args.ca)):
        with_requests(base, scheme, verify, alice, dave)
        with_httpx(base, scheme, verify, alice, dave)
        asyncio.run(with_httpx_async(base, scheme, verify, alice, dave))
    return 0


if __name__ == "__main__":
    sys.exit(main())
