"""``httpx`` support: ``AutoidAuth(prover)`` as ``auth=`` on ``httpx.Client`` and
``httpx.AsyncClient`` (needs the ``httpx`` extra)."""

from __future__ import annotations

from typing import Generator, Optional

import httpx

from .binding import gateway_rewrites, check_method, path_is_safe
from .challenge import unknown_session
from .client import Prover, check_version
from .errors import UsageError
from .grammar import DEFAULT_HEADER
from .proof import Form, Request


class AutoidAuth(httpx.Auth):
    """Adds a fresh proof to each request, binding what httpx sends: the method, the ``Host``
    header and the request target (``url.raw_path``). With ``bind_body`` the body is read
    first and its SHA-256 bound. Works for sync and async clients alike.

    Protocol v3 (the prover's default; ``version=2`` for a gateway that predates v3, ``version=1``
    for one that predates v2): the first request of a session in the full form (in v3 with the
    possession ticket), then compact. A 401 whose ``AutoID`` challenge says
    ``error="unknown_session"`` is answered by one resend with a new full-form proof; any other
    401 is returned as it is. A streamed body (which httpx cannot send twice) always gets the
    full form, which never draws that 401."""

    def __init__(
        self,
        prover: Prover,
        bind_body: bool = False,
        header_name: str = DEFAULT_HEADER,
        version: Optional[int] = None,
    ) -> None:
        self.prover = prover
        self.bind_body = bind_body
        self.requires_request_body = bind_body
        self.header_name = header_name
        self.version = check_version(version)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.username or request.url.password:
            raise UsageError("URL: credentials in the URL are not supported (autoid proves identity)")
        if request.url.scheme not in ("http", "https"):
            raise UsageError(f"URL {request.url}: only http and https URLs are supported")
        path = request.url.raw_path.decode("ascii")
        if not path_is_safe(path):
            raise UsageError(f"path {path!r}: the gateway refuses dot-segments, '//' and %2F/%5C (400)")
        rewrite = gateway_rewrites(path)
        if rewrite is not None:
            raise UsageError(f"path {path!r}: the gateway normalizes it before checking the proof; {rewrite}")
        method = check_method(request.method)
        if method != request.method:
            raise UsageError(f"method {request.method!r}: send it uppercase")
        bound = Request(method, request.headers["Host"], path)
        body = request.content if self.bind_body else None
        resendable = isinstance(request.stream, httpx.ByteStream)
        version = self.version or self.prover.version
        compact = version != 1  # a version with the compact form, and so the hint
        form = None if resendable or not compact else Form.FULL
        request.headers[self.header_name] = self.prover.prove(bound, body, form=form, version=version)
        response = yield request
        if (
            compact
            and resendable
            and response.status_code == 401
            and unknown_session(response.headers.get_list("www-authenticate"))
        ):
            request.headers[self.header_name] = self.prover.prove(
                bound, body, form=Form.FULL, version=version
            )
            yield request
