"""The URL binder and the path rule, against the table both CLIs follow."""

from __future__ import annotations

from typing import Tuple

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
