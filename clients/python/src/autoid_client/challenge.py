"""The one hint a gateway gives on a 401: ``error="unknown_session"`` in its ``AutoID``
challenge (docs/PROTOCOL.md section 11), read from ``WWW-Authenticate`` as RFC 9110 section 11
writes challenges."""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Tuple

UNKNOWN_SESSION = "unknown_session"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WS = re.compile(r"[ \t]*")

Challenge = Tuple[str, Dict[str, str]]


def challenges(values: Iterable[str]) -> List[Challenge]:
    """Every challenge in the ``WWW-Authenticate`` field lines ``values`` (one line may hold
    several, comma-separated, as proxies and ``requests`` join them): the scheme lowercased and
    its parameters, names lowercased, quoted values unescaped. What does not parse is dropped."""
    out: List[Challenge] = []
    for value in values:
        out.extend(_parse(value))
    return out


def unknown_session(values: Iterable[str]) -> bool:
    """Whether an ``AutoID`` challenge among ``values`` carries ``error="unknown_session"``: a
    compact proof named a session this gateway does not hold, so resend in the full form."""
    return any(
        scheme == "autoid" and params.get("error") == UNKNOWN_SESSION
        for scheme, params in challenges(values)
    )


def _parse(s: str) -> List[Challenge]:
    out: List[Challenge] = []
    current: Optional[Challenge] = None
    i = 0
    while True:
        i = _skip(s, i)
        while i < len(s) and s[i] == ",":
            i = _skip(s, i + 1)
        if i >= len(s):
            return out
        param = _param(s, i) if current is not None else None
        if param is not None and current is not None:
            name, value, i = param
            current[1].setdefault(name, value)
            continue
        m = _TOKEN.match(s, i)
        if m is None:
            return out  # not a challenge: keep what was read so far
        current = (m.group(0).lower(), {})
        out.append(current)
        i = m.end()
        if i < len(s) and s[i] in " \t" and _param(s, _skip(s, i)) is None:
            # `Bearer abc==`: a token68 instead of parameters, up to the next comma.
            t = _TOKEN68.match(s, _skip(s, i))
            if t is not None and (_skip(s, t.end()) == len(s) or s[_skip(s, t.end())] == ","):
                i = t.end()


def _param(s: str, i: int) -> Optional[Tuple[str, str, int]]:
    """``token BWS "=" BWS (token / quoted-string)`` at ``i``: name (lowercased), value, end."""
    m = _TOKEN.match(s, i)
    if m is None:
        return None
    j = _skip(s, m.end())
    if j >= len(s) or s[j] != "=":
        return None
    k = _skip(s, j + 1)
    q = _QUOTED.match(s, k)
    if q is not None:
        return m.group(0).lower(), re.sub(r"\\(.)", r"\1", q.group(1)), q.end()
    t = _TOKEN.match(s, k)
    if t is None:
        return None
    return m.group(0).lower(), t.group(0), t.end()


def _skip(s: str, i: int) -> int:
    """Past optional whitespace."""
    m = _WS.match(s, i)
    return m.end() if m is not None else i
