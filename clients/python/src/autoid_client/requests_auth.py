"""``requests`` support: ``AutoidAuth(prover)`` as ``auth=`` (needs the ``requests`` extra)."""

from __future__ import annotations

from typing import Any, List, Optional
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar
from requests.models import PreparedRequest, Response

from .binding import gateway_rewrites, path_is_safe, target
from .challenge import unknown_session
from .client import Prover, check_version
from .errors import UsageError
from .grammar import DEFAULT_HEADER
from .proof import Form, Request


class AutoidAuth(requests.auth.AuthBase):
    """Adds a fresh proof to each request. It binds what requests sends: the prepared method,
    the ``Host`` header (set here from the URL as ``autoid prove`` binds it, unless you set
    ``Host`` yourself) and the request target (``path_url``). With ``bind_body`` the proof
    also binds the SHA-256 of the body, which must then be bytes or str (not a stream).

    A proof is good for one request: a redirect is followed without it (the proof header is
    removed), and a retried request is a replay (401).

    Protocol v3 (the prover's default; ``version=2`` for a gateway that predates v3, ``version=1``
    for one that predates v2): the first request of a session in the full form (in v3 with the
    possession ticket), then compact. A 401 whose ``AutoID`` challenge says
    ``error="unknown_session"`` is answered by one resend with a new full-form proof (a response
    hook, as ``HTTPDigestAuth`` resends); any other 401 is returned as it is. A body that cannot
    be sent twice (a stream) always gets the full form, which never draws that 401."""

    def __init__(
        self,
        prover: Prover,
        bind_body: bool = False,
        header_name: str = DEFAULT_HEADER,
        version: Optional[int] = None,
    ) -> None:
        self.prover = prover
        self.bind_body = bind_body
        self.header_name = header_name
        self.version = check_version(version)

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
        resendable = r.body is None or isinstance(r.body, (bytes, str))
        version = self.version or self.prover.version
        form = None if resendable or version == 1 else Form.FULL
        r.headers[self.header_name] = self.prover.prove(request, body, form=form, version=version)
        r.register_hook("response", self._drop_on_redirect)
        if resendable and version != 1:
            r.register_hook("response", _Resend(self, request, body, version).hook)
        return r

    def _drop_on_redirect(self, response: Response, **_: Any) -> Response:
        if response.is_redirect and response.request is not None:
            response.request.headers.pop(self.header_name, None)
        return response


class _Resend:
    """The one resend of a request the gateway answered with ``error="unknown_session"``."""

    def __init__(self, auth: AutoidAuth, request: Request, body: Optional[bytes], version: int) -> None:
        self.auth = auth
        self.request = request
        self.body = body
        self.version = version
        self.done = False

    def hook(self, response: Response, **kwargs: Any) -> Response:
        sent = response.request
        if (
            self.done
            or response.status_code != 401
            or sent is None
            or self.auth.header_name not in sent.headers  # a redirect target: never proven
            or not unknown_session(_challenges(response))
        ):
            return response
        self.done = True
        response.content  # noqa: B018  (read the 401 so its connection can be reused)
        response.close()
        prep = sent.copy()
        if prep._cookies is not None:
            extract_cookies_to_jar(prep._cookies, sent, response.raw)
            prep.prepare_cookies(prep._cookies)
        prep.headers[self.auth.header_name] = self.auth.prover.prove(
            self.request, self.body, form=Form.FULL, version=self.version
        )
        again: Response = response.connection.send(prep, **kwargs)
        again.history.append(response)
        again.request = prep
        if again.is_redirect:
            # requests follows it from the original request: neither may carry the proof on.
            sent.headers.pop(self.auth.header_name, None)
            prep.headers.pop(self.auth.header_name, None)
        return again


def _challenges(response: Response) -> List[str]:
    """The ``WWW-Authenticate`` value (requests joins several field lines with commas)."""
    value = response.headers.get("www-authenticate")
    return [value] if value else []
