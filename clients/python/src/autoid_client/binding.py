"""From a method and a URL to what a proof binds, exactly as ``autoid prove`` does: the method
uppercased; the authority as HTTP clients send ``Host`` (host lowercased, ``:port`` only for an
explicit non-default port, IPv6 in brackets); the path with ``?query`` when the URL has a ``?``,
normalized the way the WHATWG URL standard does. URLs whose normalization this module does not
reproduce exactly (non-ASCII hosts, unusual host characters) are refused, never bound differently.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import List, Optional

from .errors import UsageError
from .proof import Request

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TCHAR = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_HOST = re.compile(r"[a-z0-9_.-]+\Z")
# WHATWG percent-encode sets (the url crate's PATH and SPECIAL_QUERY), besides C0, DEL and
# non-ASCII, which are always encoded.
_PATH_SET = frozenset(b' "<>`#?{}')
_QUERY_SET = frozenset(b" \"#<>'")


@dataclass(frozen=True)
class Target:
    """A request target, normalized once so that the proof and the request on the wire agree."""

    method: str
    scheme: str
    host: str
    port: int
    authority: str
    path: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"

    def request(self) -> Request:
        return Request(self.method, self.authority, self.path)


def check_method(method: str) -> str:
    """The method uppercased, refused unless it is an RFC 9110 token."""
    upper = method.upper()
    if not _TCHAR.match(upper) or not upper.isascii():
        raise UsageError(f"method {method!r}: not an HTTP method token")
    return upper


def _percent_encode(text: str, extra: frozenset[int]) -> str:
    out: List[str] = []
    for byte in text.encode("utf-8"):
        if byte < 0x20 or byte >= 0x7F or byte in extra:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def _is_single_dot(seg: str) -> bool:
    return seg in (".",) or seg.lower() == "%2e"


def _is_double_dot(seg: str) -> bool:
    return seg.lower() in ("..", ".%2e", "%2e.", "%2e%2e")


def normalize_path(raw: str) -> str:
    """The WHATWG path of a special (http/https) URL: ``\\`` is ``/``, dot-segments resolved,
    characters outside the path set percent-encoded, existing escapes kept as they are."""
    segments = raw.replace("\\", "/").split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    if not segments:
        segments = [""]
    path: List[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if _is_double_dot(seg):
            if path:
                path.pop()
            if last:
                path.append("")
        elif _is_single_dot(seg):
            if last:
                path.append("")
        else:
            path.append(_percent_encode(seg, _PATH_SET))
    return "/" + "/".join(path)


def _ipv4_number(part: str) -> Optional[int]:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10)
    except ValueError:
        return None


def _host(raw: str, url: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise UsageError(f"URL {url!r}: bad IPv6 host")
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise UsageError(f"URL {url!r}: bad IPv6 host") from None
    if not raw:
        raise UsageError(f"URL {url!r}: no host")
    if "%" in raw or not raw.isascii():
        raise UsageError(
            f"URL {url!r}: only plain ASCII host names are supported (use the xn-- form)"
        )
    host = raw.lower()
    if not _HOST.match(host):
        raise UsageError(f"URL {url!r}: unsupported characters in the host")
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    last = labels[-1]
    if last and (last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:]))):
        # WHATWG: a host ending in a number is an IPv4 address (127.1, 0x7f.0.0.1, ...).
        numbers = [_ipv4_number(p) for p in labels]
        if len(numbers) > 4 or any(n is None for n in numbers):
            raise UsageError(f"URL {url!r}: bad IPv4 host")
        nums = [n for n in numbers if n is not None]
        if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
            raise UsageError(f"URL {url!r}: bad IPv4 host")
        value = nums[-1]
        for i, n in enumerate(nums[:-1]):
            value += n * 256 ** (3 - i)
        return str(ipaddress.IPv4Address(value))
    return host


def target(method: str, url: str) -> Target:
    """Parses an http(s) URL the way ``autoid prove --url`` does and derives the bindings."""
    method = check_method(method)
    text = url.strip("".join(chr(c) for c in range(0x21)))
    text = re.sub(r"[\t\n\r]", "", text)
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.match(scheme):
        raise UsageError(f"URL {url!r}: relative URL without a base")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(f"URL {url!r}: only http and https URLs are supported")
    rest = rest.lstrip("/\\")
    end = len(rest)
    for c in "/\\?#":
        i = rest.find(c)
        if i != -1:
            end = min(end, i)
    authority, rest = rest[:end], rest[end:]
    if "@" in authority:
        raise UsageError("URL: credentials in the URL are not supported (autoid proves identity)")
    rest = rest.split("#", 1)[0]
    raw_path, qmark, raw_query = rest.partition("?")

    if authority.startswith("["):
        close = authority.find("]")
        host_part, port_part = authority[: close + 1], authority[close + 1 :]
        if port_part and not port_part.startswith(":"):
            raise UsageError(f"URL {url!r}: bad IPv6 host")
        port_text = port_part[1:] if port_part else ""
    else:
        host_part, _, port_text = authority.partition(":")
    host = _host(host_part, url)
    port = _DEFAULT_PORTS[scheme]
    explicit = False
    if port_text:
        if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
            raise UsageError(f"URL {url!r}: invalid port number")
        port = int(port_text)
        explicit = port != _DEFAULT_PORTS[scheme]
    authority = f"{host}:{port}" if explicit else host
    path = normalize_path(raw_path)
    # As the Rust CLI: a proof for a path the gateway refuses (400) or rewrites before the filter
    # (401) is refused here, with what to send instead.
    if not path_is_safe(path):
        raise UsageError(
            f"URL {url!r}: the gateway refuses this path (a dot segment, also with ;parameters "
            "or escaped, an empty segment, a backslash, an escaped / or \\, a control byte or a "
            "malformed or double escape: docs/PROTOCOL.md section 5)"
        )
    rewrite = gateway_rewrites(path)
    if rewrite is not None:
        raise UsageError(
            f"URL {url!r}: the gateway would route another path than the proof binds: {rewrite}"
        )
    if qmark:
        path += "?" + _percent_encode(raw_query, _QUERY_SET)
    return Target(method, scheme, host, port, authority, path)


def path_is_safe(path: str) -> bool:
    """Whether the gateway forwards this path (docs/PROTOCOL.md section 5, "Paths the gateway
    refuses"; the same rule as ``autoid_protocol::path::path_is_safe``). On the part before
    ``?``, each segment percent-decoded once: no malformed escape, no escape left after the
    decoding, no control byte, no backslash, no escaped ``/``; its name (up to the first ``;``)
    neither ``.``, ``..`` nor empty, but a trailing slash."""
    path = path.split("?", 1)[0]
    if not path.startswith("/"):
        return False
    segments = path[1:].split("/")
    for i, seg in enumerate(segments):
        if seg == "" and i == len(segments) - 1:
            continue
        decoded = _decode_once(seg)
        if decoded is None:
            return False
        if any(b < 0x20 or b == 0x7F or b in (0x2F, 0x5C) for b in decoded):
            return False
        if re.search(rb"%[0-9A-Fa-f]{2}", decoded):
            return False
        if decoded.split(b";", 1)[0] in (b"", b".", b".."):
            return False
    return True


def _decode_once(segment: str) -> Optional[bytes]:
    """``segment`` percent-decoded once, or None when a ``%`` starts no escape."""
    raw = segment.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:
            digits = raw[i + 1 : i + 3]
            if len(digits) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                return None
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


_UNRESERVED_ESCAPE = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[dDeE]|5[fF]|7[eE])")


def gateway_rewrites(path: str) -> Optional[str]:
    """Why the gateway would route another path than ``path`` (so the proof fails with 401), or
    None. Envoy's path normalization (before the filter) decodes escapes of unreserved
    characters (``%7E`` -> ``~``, ``%41`` -> ``A``) and escapes a raw ``^`` or ``|``; the query
    is left alone. Other escapes pass as sent, in any hex case."""
    p = path.split("?", 1)[0]
    m = _UNRESERVED_ESCAPE.search(p)
    if m:
        return f"{m.group(0)} escapes an unreserved character: send it unescaped"
    for c in "^|":
        if c in p:
            return f"send {c!r} as %{ord(c):02X} in the path"
    return None
