"""Reading the gateway's one hint, ``error="unknown_session"`` in the AutoID challenge of
``WWW-Authenticate`` (docs/PROTOCOL.md section 11), as RFC 9110 section 11 writes challenges."""

from __future__ import annotations

from typing import List

import pytest

from autoid_client.challenge import challenges, unknown_session

HINT = 'AutoID realm="autoid", header="x-autoid-proof", error="unknown_session"'
PLAIN = 'AutoID realm="autoid", header="x-autoid-proof"'


@pytest.mark.parametrize(
    "values,hint",
    [
        ([HINT], True),
        ([PLAIN], False),
        (['Basic realm="x", charset="UTF-8"', HINT], True),
        ([f'Basic realm="x", charset="UTF-8", {HINT}'], True),  # joined into one line
        ([f"{HINT}, Basic realm=\"x\""], True),
        (["autoid error=unknown_session"], True),  # a token is a quoted-string's equal
        (['AUTOID Error = "unknown_session"'], True),
        (['Basic realm="x", error="unknown_session"'], False),  # not the AutoID challenge
        (['Bearer abc==, AutoID error="unknown_session"'], True),
        (['AutoID realm="error=\\"unknown_session\\""'], False),  # inside another value
        (['AutoID error="unknown_sessions"'], False),
        ([], False),
        ([""], False),
        (["\"garbage"], False),
    ],
)
def test_the_unknown_session_hint(values: List[str], hint: bool) -> None:
    assert unknown_session(values) is hint


def test_challenges_are_parsed_as_rfc_9110_writes_them() -> None:
    assert challenges(['Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"']) == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("basic", {"realm": "simple"}),
    ]
