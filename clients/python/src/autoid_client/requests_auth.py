"""``requests`` support: ``AutoidAuth(prover)`` as ``auth=`` (needs the ``requests`` extra)."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

import requests
from requests.models import PreparedRequest, Response

from .binding import gateway_rewrites, path_is_safe, target
from .client import Prover
from .errors import UsageError
from .grammar import DEFAULT_HEADER
from .proof import Request


class AutoidAuth(requests.auth.AuthBase):
    """Adds a fresh proof to each request. It binds what requests sends: the prepared method,
    the ``Host`` header (set here from the URL as ``autoid prove`` binds it, unless you set
    ``Host`` yourself) and the request target (``path_url``). With ``bind_body`` the proof
    also binds the SHA-256 of the body, which must then be bytes or str (not a stream).

    A proof is good for one request: a redirect is followed without it (the proof header is
    removed), and a retried request is a replay (401)."""

    def __init__(self, prover: Prover, bind_body: bool = False, header_name: str = DEFAULT_HEADER) -> None:
        self.prover = prover
        self.bind_body = bind_body
        self.header_name = header_name

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        url = r.url or ""
        if urlsplit(url).username is not None:
            raise UsageError("URL: credentials in the URL are not supported (autoid proves identity)")
        t = target(r.method or "GET", url)
        if "Host" not in r.headers:
            r.headers["Host"] = t.authority
        path = r.path_url
        if not path_is_safe(path):
            raise UsageError(f"path {path!r}: the gateway refuses dot-segments, '//' and %2F/%5C (400)")
        rewrite = gateway_rewrites(path)
        if rewrite is not None:
            raise UsageError(f"path {path!r}: the gateway normalizes it before checking the proof; {rewrite}")
        body: Optional[bytes] = None
        if self.bind_body:
            if r.body is None:
                body = b""
            elif isinstance(r.body, bytes):
                body = r.body
            elif isinstance(r.body, str):
                body = r.body.encode("utf-8")
                r.body = body
                r.headers["Content-Length"] = str(len(body))
            else:
                raise UsageError("bind_body needs the body in memory (bytes or str), not a stream")
        host = r.headers["Host"]
        request = Request(t.method, host.decode("latin-1") if isinstance(host, bytes) else host, path)
        r.headers[self.header_name] = self.prover.prove(request, body)
        r.register_hook("response", self._drop_on_redirect)
        return r

    def _drop_on_redirect(self, response: Response, **_: Any) -> Response:
        if response.is_redirect and response.request is not None:
            response.request.headers.pop(self.header_name, None)
        return response
