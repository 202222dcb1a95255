"""The protocol vectors (protocol/tests/vectors/*.json), reproduced byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from autoid_client import b64
from autoid_client.files import EntropyFile, PublicKey
from autoid_client.proof import (
    Form, Request, associated_data, digest, interval_seed, offsets, payload, session_id, session_ref,
)
from testkit import VECTORS, TestRng, entropy_stream, seeded_session

from cryptography.hazmat.primitives import serialization


def _files() -> List[Path]:
    files = sorted(VECTORS.glob("v1*.json"))
    assert files, f"no vectors in {VECTORS}"
    return files


def _cases() -> List[Any]:
    cases = []
    for path in _files():
        doc = json.loads(path.read_text())
        for v in doc["vectors"]:
            cases.append(pytest.param(doc, v, id=f"{path.name}:{v['rng_seed']}"))
    return cases


def _public_key(doc: Dict[str, Any]) -> PublicKey:
    private = serialization.load_pem_private_key(
        (VECTORS.parents[2] / doc["private_key_pem"]).read_bytes(), password=None
    )
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey.from_pem(doc["key_id"], pem)


def test_the_rng_is_one_continuous_stream() -> None:
    whole = TestRng(b"vector-1")(92)
    parts = TestRng(b"vector-1")
    assert parts(32) + parts(32) + parts(16) + parts(12) == whole
    assert whole[:32] == hashlib.sha256(b"autoid/v1 test rngvector-1" + b"\0" * 8).digest()


@pytest.mark.parametrize("doc,v", _cases())
def test_vector(doc: Dict[str, Any], v: Dict[str, Any]) -> None:
    ep = doc["epoch"]
    data = entropy_stream(bytes.fromhex(ep["secret_hex"]), ep["id"], v["subject"], ep["file_size"])
    assert data[:32].hex() == v["entropy_first_32_bytes_hex"]
    file = EntropyFile(ep["id"], v["subject"], ep["interval_count"], data)
    key = _public_key(doc)
    rng = TestRng(v["rng_seed"].encode("utf-8"))
    now = v["now"]
    session = seeded_session(key, now, rng)
    assert (session.key + now.to_bytes(8, "big")).hex() == v["session_key_and_issued_at_hex"]
    assert session_id(key.kid, session.wrapped).hex() == v["session_id_hex"]

    req = Request(**v["request"])
    # The proof draws the nonce, then the IV, from where the session left the stream.
    peek = TestRng(v["rng_seed"].encode("utf-8"))
    peek(64)
    nonce, iv = peek(16), peek(12)
    assert nonce.hex() == v["nonce_hex"]
    assert iv.hex() == v["iv_hex"]
    seed = interval_seed(v["subject"], ep["id"], nonce, now, req)
    assert seed.hex() == v["interval_seed_hex"]
    offs = offsets(seed, ep["file_size"], ep["interval_count"])
    assert offs[:8] == v["first_8_offsets"]
    d = digest(seed, data, offs)
    assert d.hex() == v["digest_hex"]
    body = None if v["body"] is None else v["body"].encode("utf-8")
    body_sha = None if body is None else hashlib.sha256(body).digest()
    assert payload(now, nonce, body_sha, ep["id"], v["subject"], d).hex() == v["payload_hex"]

    header = session.prove(file, req, now, body, rng)
    assert header == v["header"]
    parts = header.split(".")
    assert parts[0] == "v1" and parts[1] == key.kid
    assert b64.decode(parts[2]) == session.wrapped


def _v2_cases() -> List[Any]:
    doc = json.loads((VECTORS / "v2.json").read_text())
    return [pytest.param(doc, v, id=f"v2.json:{v['rng_seed']}") for v in doc["vectors"]]


@pytest.mark.parametrize("doc,v", _v2_cases())
def test_v2_vector(doc: Dict[str, Any], v: Dict[str, Any]) -> None:
    """docs/PROTOCOL.md section 11: one session, then a full-form proof, then a compact one,
    every draw from the same continuous test RNG stream."""
    ep = doc["epoch"]
    data = entropy_stream(bytes.fromhex(ep["secret_hex"]), ep["id"], v["subject"], ep["file_size"])
    file = EntropyFile(ep["id"], v["subject"], ep["interval_count"], data)
    key = _public_key(doc)
    rng = TestRng(v["rng_seed"].encode("utf-8"))
    now = v["now"]
    session = seeded_session(key, now, rng)
    assert (session.key + now.to_bytes(8, "big")).hex() == v["session_key_and_issued_at_hex"]
    assert session.id.hex() == v["session_id_hex"]
    assert session.reference.hex() == session_ref(session.id).hex() == v["session_ref_hex"]

    req = Request(**v["request"])
    body = None if v["body"] is None else v["body"].encode("utf-8")
    body_sha = None if body is None else hashlib.sha256(body).digest()
    # A second stream a step behind `rng` supplies the nonce and IV each proof is about to draw.
    peek = TestRng(v["rng_seed"].encode("utf-8"))
    peek(64)
    assert [p["form"] for p in v["proofs"]] == ["full", "compact"]
    for p, form in zip(v["proofs"], (Form.FULL, Form.COMPACT)):
        nonce, iv = peek(16), peek(12)
        assert (nonce.hex(), iv.hex()) == (p["nonce_hex"], p["iv_hex"])
        assert associated_data(key.kid, req, 2).hex() == p["aad_hex"]
        seed = interval_seed(v["subject"], ep["id"], nonce, now, req)
        d = digest(seed, data, offsets(seed, ep["file_size"], ep["interval_count"]))
        assert payload(now, nonce, body_sha, ep["id"], v["subject"], d).hex() == p["payload_hex"]

        header = session.prove(file, req, now, body, rng, form=form)
        assert header == p["header"]
        assert len(header) == p["header_len"]
        version, kid, part, _ = header.split(".")
        assert (version, kid) == ("v2", key.kid)
        if form is Form.FULL:
            assert b64.decode(part) == session.wrapped
        else:
            assert b64.decode(part) == session.reference and len(part) == 22


def test_the_v2_label_separates_the_versions() -> None:
    req = Request("GET", "api.example.com", "/")
    v1, v2 = associated_data("k", req), associated_data("k", req, 2)
    assert v1.startswith(b"autoid/v1\0") and v2.startswith(b"autoid/v2\0") and v1[9:] == v2[9:]
