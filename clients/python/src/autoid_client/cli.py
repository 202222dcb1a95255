"""``python -m autoid_client prove|request|aws-credential-process``: the same flags, output and
exit codes as ``autoid prove``, ``autoid request`` and ``autoid aws credential-process``
(docs/CLI.md, docs/AWS.md)."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import ssl
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, List, NoReturn, Optional, Sequence, Tuple

from .binding import Target, target
from .challenge import unknown_session
from .client import Prover
from .errors import AutoidError, InputError, UsageError
from .grammar import DEFAULT_HEADER, DEFAULT_SESSION_LIFETIME_SECS
from .proof import DEFAULT_VERSION, Form

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"autoid: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--public-key", required=True, metavar="PEM", help="the gateway's public key, <kid>.pub.pem")
    p.add_argument("--kid", metavar="ID", help="the gateway's key id [default: from the file name]")
    p.add_argument("--entropy", required=True, metavar="FILE", help="your entropy file")
    p.add_argument("--subject", required=True, metavar="SUB", help="the subject the entropy file was issued to")
    p.add_argument("--session", metavar="FILE", help="keep the session in FILE (mode 0600) and reuse it")
    p.add_argument(
        "--session-lifetime", type=int, default=DEFAULT_SESSION_LIFETIME_SECS, metavar="SECS",
        help="the gateway's session lifetime in seconds (default %(default)s)",
    )
    p.add_argument(
        "--proof-version", type=_version, default=DEFAULT_VERSION, metavar="1|2|3",
        help="the protocol version of the proofs (default %(default)s: the full form with the "
        "possession ticket, then compact; 2 without the ticket, for a gateway that predates v3; 1 "
        "for one that predates v2)",
    )


def _version(text: str) -> int:
    """``1``, ``2``, ``3`` or, as docs/PROTOCOL.md writes them, ``v1``, ``v2``, ``v3``."""
    if text not in ("1", "2", "3", "v1", "v2", "v3"):
        raise argparse.ArgumentTypeError(f"expected 1, 2 or 3, not {text!r}")
    return int(text[-1])


def _parser() -> argparse.ArgumentParser:
    root = _Parser(prog="python -m autoid_client", description="autoid client (protocol v3, or v2, v1)")
    sub = root.add_subparsers(dest="command", required=True, parser_class=_Parser)
    prove = sub.add_parser("prove", help="print one proof header value for one request")
    _client_args(prove)
    prove.add_argument("--method", "-X", default="GET", metavar="M", help="the method (uppercased)")
    prove.add_argument("--url", required=True, metavar="URL", help="the request's URL")
    prove.add_argument("--body-file", metavar="F", help="also bind the SHA-256 of this body (- reads stdin)")
    prove.add_argument(
        "--form", choices=("full", "compact"), default="full", metavar="full|compact",
        help="the header form: full (the wrapped session key, in v3 with the possession ticket; the "
        "default) or compact (the 16-byte session reference, for a session the gateway already "
        "holds, e.g. with --session)",
    )
    req = sub.add_parser("request", help="send HTTP(S) requests, each with a fresh proof, in one session")
    _client_args(req)
    req.add_argument("-X", "--request", dest="method", metavar="METHOD", help="default GET, or POST with -d")
    req.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="K: V")
    req.add_argument("-d", "--data", metavar="BODY", help="the body; @FILE reads a file, @- stdin")
    req.add_argument("--repeat", type=int, default=1, metavar="N")
    req.add_argument("--cacert", metavar="PEM", help="trust only the CA certificates in this file")
    req.add_argument("--header-name", default=DEFAULT_HEADER, metavar="NAME")
    req.add_argument("--bind-body", action="store_true", help="bind the body's SHA-256 in each proof")
    req.add_argument("--timeout", type=float, default=30, metavar="SECS")
    req.add_argument("url", metavar="URL")
    aws = sub.add_parser(
        "aws-credential-process",
        help="print short-lived AWS credentials from the gateway (for credential_process)",
    )
    _client_args(aws)
    aws.add_argument("--cacert", metavar="PEM", help="trust only the CA certificates in this file")
    aws.add_argument("--header-name", default=DEFAULT_HEADER, metavar="NAME")
    aws.add_argument("--timeout", type=float, default=30, metavar="SECS")
    aws.add_argument("url", metavar="URL")
    return root


def _read_body(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as e:
        raise InputError(f"{name}: cannot read the body: {e.strerror}") from None


def _prover(args: argparse.Namespace) -> Prover:
    return Prover.from_files(
        args.public_key, args.entropy, args.subject, kid=args.kid,
        session_file=args.session, session_lifetime=args.session_lifetime,
        version=args.proof_version,
    )


def _prove(args: argparse.Namespace) -> int:
    if args.proof_version == 1 and args.form == "compact":
        raise UsageError("--form compact needs --proof-version 2 or 3")
    t = target(args.method, args.url)
    body = _read_body(args.body_file) if args.body_file is not None else None
    form = Form.V1 if args.proof_version == 1 else Form(args.form)  # in the prover's version
    print(_prover(args).prove(t.request(), body, form=form))
    return EXIT_OK


def _headers(raw: Sequence[str], proof_header: str) -> List[Tuple[str, str]]:
    out = []
    for h in raw:
        name, sep, value = h.partition(":")
        name, value = name.strip(), value.strip()
        if not sep:
            raise UsageError(f"-H {h!r}: expected 'Name: value'")
        if not _TOKEN.match(name):
            raise UsageError(f"-H {h!r}: not a header name")
        if any(c in value for c in "\r\n\0"):
            raise UsageError(f"-H {h!r}: not a header value")
        if name.lower() == "host":
            raise UsageError(f"-H {h!r}: Host comes from the URL (the proof binds it)")
        if name.lower() == proof_header.lower():
            raise UsageError(f"-H {h!r}: the proof header is set by autoid")
        out.append((name, value))
    return out


def _connection(t: Target, args: argparse.Namespace) -> http.client.HTTPConnection:
    host = t.host[1:-1] if t.host.startswith("[") else t.host
    if t.scheme == "http":
        return http.client.HTTPConnection(host, t.port, timeout=args.timeout)
    try:
        context = ssl.create_default_context(cafile=args.cacert)
    except (OSError, ssl.SSLError) as e:
        raise InputError(f"{args.cacert}: not a PEM certificate file: {e}") from None
    return http.client.HTTPSConnection(host, t.port, timeout=args.timeout, context=context)


def _request(args: argparse.Namespace) -> int:
    method = args.method or ("POST" if args.data is not None else "GET")
    t = target(method, args.url)
    if not _TOKEN.match(args.header_name):
        raise UsageError(f"--header-name {args.header_name!r}: not a header name")
    if args.repeat < 1:
        raise UsageError("--repeat: expected 1 or more")
    headers = _headers(args.headers, args.header_name)
    body: Optional[bytes] = None
    if args.data is not None:
        body = _read_body(args.data[1:]) if args.data.startswith("@") else args.data.encode("utf-8")
    if args.bind_body and body is None:
        raise UsageError("--bind-body needs a body (-d)")
    prover = _prover(args)
    request, bound = t.request(), body if args.bind_body else None

    def send(form: Optional[Form]) -> _Reply:
        return _send(t, args, headers, args.header_name, prover.prove(request, bound, form=form), body)

    out = sys.stdout.buffer
    all_ok = True
    for _ in range(args.repeat):
        response = _exchange(prover, send)
        data = response.data
        all_ok &= 200 <= response.status < 300
        out.write(f"HTTP {response.status}\n".encode())
        out.write(data)
        if data and not data.endswith(b"\n"):
            out.write(b"\n")
        out.flush()
    return EXIT_OK if all_ok else EXIT_NO


@dataclass
class _Reply:
    status: int
    challenges: List[str]
    data: bytes


def _send(
    t: Target,
    args: argparse.Namespace,
    headers: Sequence[Tuple[str, str]],
    proof_header: str,
    proof: str,
    body: Optional[bytes],
    limit: Optional[int] = None,
) -> _Reply:
    """One request on a new connection: what the gateway answered."""
    conn = _connection(t, args)
    try:
        conn.putrequest(t.method, t.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", t.authority)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader(proof_header, proof)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read() if limit is None else response.read(limit)
        challenges = response.headers.get_all("WWW-Authenticate") or []
    except (OSError, http.client.HTTPException) as e:
        raise InputError(f"{t.method} {t.url}: {_describe(e)}") from None
    finally:
        conn.close()
    return _Reply(response.status, challenges, data)


def _exchange(prover: Prover, send: Callable[[Optional[Form]], _Reply]) -> _Reply:
    """``send`` with the prover's form, then once more with a new full-form proof if the gateway
    does not hold the session (401, ``error="unknown_session"``; docs/PROTOCOL.md section 11)."""
    reply = send(None)
    if prover.version != 1 and reply.status == 401 and unknown_session(reply.challenges):
        reply = send(Form.FULL)
    return reply


_AWS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


def _aws_credential_process(args: argparse.Namespace) -> int:
    """GET the gateway's AWS API with a proof; print the credential_process JSON, or the refusal
    on stderr and exit 1 (the AWS CLI then reports a credential error)."""
    t = target("GET", args.url)
    if not _TOKEN.match(args.header_name):
        raise UsageError(f"--header-name {args.header_name!r}: not a header name")
    prover = _prover(args)
    # One request per call, as `autoid aws credential-process`: the form any gateway of the
    # version accepts (in v3 with the possession ticket).
    form = Form.V1 if prover.version == 1 else Form.FULL
    proof = prover.prove(t.request(), form=form)
    response = _send(t, args, [], args.header_name, proof, None, limit=64 * 1024)
    data = response.data
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if response.status != 200:
        code = doc.get("error") if isinstance(doc, dict) else None
        print(f"autoid: the gateway refused AWS credentials: HTTP {response.status} {code or 'no error code'}",
              file=sys.stderr)
        return EXIT_NO
    if not isinstance(doc, dict) or doc.get("Version") != 1 or not all(isinstance(doc.get(f), str) for f in _AWS_FIELDS):
        raise InputError("the gateway's reply is not credential_process JSON (Version 1 and " + ", ".join(_AWS_FIELDS) + ")")
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def _describe(e: BaseException) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return f"io: {e.strerror} (os error {e.errno})"
    return str(e) or type(e).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prove":
            return _prove(args)
        if args.command == "aws-credential-process":
            return _aws_credential_process(args)
        return _request(args)
    except UsageError as e:
        print(f"autoid: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AutoidError as e:
        print(f"autoid: error: {e}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
