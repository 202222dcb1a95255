"""The URL binder and the path rule, against the table both CLIs follow."""

from __future__ import annotations

from typing import Any, Tuple

import pytest

from autoid_client import UsageError, path_is_safe, target
from bindings_table import BINDINGS, REFUSED


@pytest.mark.parametrize("method,url,expected", BINDINGS)
def test_binding(method: str, url: str, expected: Tuple[str, str, str]) -> None:
    t = target(method, url)
    assert (t.method, t.authority, t.path) == expected


@pytest.mark.parametrize("method,url", REFUSED)
def test_refused(method: str, url: str) -> None:
    with pytest.raises(UsageError):
        target(method, url)


def test_non_ascii_hosts_are_refused_rather_than_bound_differently() -> None:
    with pytest.raises(UsageError, match="xn--"):
        target("GET", "https://b\u00fccher.example/")


@pytest.mark.parametrize(
    "path",
    ["/", "/payments/", "/payments/charges", "/payments/charges?limit=2&q=a/../b%2F",
     "/payments/a.b/..c/c../...", "/payments/%41bc", "/payments/x;v=1"],
)
def test_safe_paths(path: str) -> None:
    assert path_is_safe(path)


@pytest.mark.parametrize(
    "path",
    ["", "payments/x", "/payments/../reports", "/payments/./x", "/payments/..",
     "/payments/%2e%2e/reports", "/payments/%2E./reports", "/payments/..;/reports",
     "/payments/.;x=1/reports", "/payments/..%2F..%2Freports", "/payments/..%5C..%5Creports",
     "/payments/..\\reports", "/payments//reports", "//payments/x"],
)
def test_unsafe_paths(path: str) -> None:
    assert not path_is_safe(path)


def test_the_hostile_paths_every_gateway_refuses_are_refused() -> None:
    # The table the gateway's own tests send (protocol/tests/vectors/hostile-paths.txt).
    import pathlib

    table = pathlib.Path(__file__).resolve().parents[3] / "protocol/tests/vectors/hostile-paths.txt"
    paths = [
        "/payments/" + line
        for line in table.read_text().splitlines()
        if line and not line.startswith("# ")
    ]
    assert len(paths) > 20
    for path in paths:
        assert not path_is_safe(path), path
        assert not path_is_safe(path + "?q=1"), path
    for path in ["/payments/x;v=..", "/payments/a%3bb", "/p/50%25off/%25", "/p/%2e%2e%2e"]:
        assert path_is_safe(path), path


@pytest.mark.parametrize(
    "path,problem",
    [("/p/%7Euser", True), ("/p/%41b", True), ("/p/a%2db", True), ("/p/%5f", True), ("/p/%2E", True),
     ("/p/a|b", True), ("/p/a^b", True), ("/p/%C3%A9/%c3%a9/%25/%7C/a%20b", False),
     ("/p/a!$&'()*+,;=:@b", False), ("/p/x?q=%7E%41|^", False)],
)
def test_paths_the_gateway_rewrites(path: str, problem: bool) -> None:
    from autoid_client.binding import gateway_rewrites

    assert (gateway_rewrites(path) is not None) == problem


def test_auth_adapters_refuse_paths_the_gateway_rewrites() -> None:
    import httpx
    import requests

    from autoid_client.httpx_auth import AutoidAuth as HttpxAuth

    prover: Any = object()  # never reached: the path is refused first
    with pytest.raises(UsageError, match="unreserved"):
        next(HttpxAuth(prover).auth_flow(httpx.Request("GET", "http://h/p/%7Euser")))
    with pytest.raises(UsageError, match="%7C"):
        next(HttpxAuth(prover).auth_flow(httpx.Request("GET", "http://h/p/a|b")))
    # requests itself encodes | and ^ and unescapes %7E before sending: nothing to refuse.
    prepared = requests.Request("GET", "http://h/p/a|b^c/%7e").prepare()
    assert prepared.path_url == "/p/a%7Cb%5Ec/~"
