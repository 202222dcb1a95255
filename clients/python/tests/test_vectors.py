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
from autoid_client.ticket import MAX_TICKET_LEN, MIN_TICKET_LEN, Ticket, ticket_tag
from testkit import VECTORS, TestRng, as_full, entropy_stream, open_proof, seeded_session

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


def _v3_cases() -> List[Any]:
    doc = json.loads((VECTORS / "v3.json").read_text())
    return [pytest.param(doc, v, id=f"v3.json:{v['rng_seed']}") for v in doc["vectors"]]


@pytest.mark.parametrize("doc,v", _v3_cases())
def test_v3_vector_is_made_byte_for_byte(doc: Dict[str, Any], v: Dict[str, Any]) -> None:
    """docs/PROTOCOL.md section 12: as v2's vectors, a session then a full-form proof (with its
    possession ticket) then a compact one, every draw from one continuous test RNG stream."""
    ep = doc["epoch"]
    data = entropy_stream(bytes.fromhex(ep["secret_hex"]), ep["id"], v["subject"], ep["file_size"])
    file = EntropyFile(ep["id"], v["subject"], ep["interval_count"], data)
    key = _public_key(doc)
    rng = TestRng(v["rng_seed"].encode("utf-8"))
    now = v["now"]
    session = seeded_session(key, now, rng)
    assert (session.key + now.to_bytes(8, "big")).hex() == v["session_key_and_issued_at_hex"]
    assert session.id.hex() == v["session_id_hex"]
    assert session.reference.hex() == v["session_ref_hex"]

    req = Request(**v["request"])
    body = None if v["body"] is None else v["body"].encode("utf-8")
    body_sha = None if body is None else hashlib.sha256(body).digest()
    peek = TestRng(v["rng_seed"].encode("utf-8"))
    peek(64)
    assert [p["form"] for p in v["proofs"]] == ["full", "compact"]
    for p, form in zip(v["proofs"], (Form.FULL, Form.COMPACT)):
        nonce, iv = peek(16), peek(12)
        assert (nonce.hex(), iv.hex()) == (p["nonce_hex"], p["iv_hex"])
        aad = associated_data(key.kid, req, 3)
        assert aad.hex() == p["aad_hex"] and aad.startswith(b"autoid/v3\0")
        seed = interval_seed(v["subject"], ep["id"], nonce, now, req)
        d = digest(seed, data, offsets(seed, ep["file_size"], ep["interval_count"]))
        assert d.hex() == p["digest_hex"]
        assert payload(now, nonce, body_sha, ep["id"], v["subject"], d).hex() == p["payload_hex"]
        if form is Form.FULL:
            ticket = Ticket.new(now, nonce, ep["id"], v["subject"], d, session.id)
            assert ticket.tag.hex() == p["ticket_tag_hex"]
            assert ticket.to_bytes().hex() == p["ticket_hex"]
        else:
            assert "ticket_hex" not in p

        header = session.prove(file, req, now, body, rng, form=form, version=3)
        assert header == p["header"]
        assert len(header) == p["header_len"]


@pytest.mark.parametrize("doc,v", _v3_cases())
def test_v3_vector_is_read_back(doc: Dict[str, Any], v: Dict[str, Any]) -> None:
    """The other direction: the vector's headers, parsed and checked as a gateway would from the
    entropy file and the session alone (the ticket before the seal, then the seal against it)."""
    ep = doc["epoch"]
    data = entropy_stream(bytes.fromhex(ep["secret_hex"]), ep["id"], v["subject"], ep["file_size"])
    session = seeded_session(_public_key(doc), v["now"], TestRng(v["rng_seed"].encode("utf-8")))
    req = Request(**v["request"])
    full, compact = (p["header"] for p in v["proofs"])

    version, kid, wrapped, sealed, ticket_b64 = full.split(".")
    assert (version, kid, b64.decode(wrapped)) == ("v3", doc["key_id"], session.wrapped)
    raw = b64.decode(ticket_b64)
    assert raw.hex() == v["proofs"][0]["ticket_hex"] and MIN_TICKET_LEN <= len(raw) <= MAX_TICKET_LEN
    ticket = Ticket.from_bytes(raw)
    assert ticket.to_bytes() == raw
    assert (ticket.epoch, ticket.subject, ticket.timestamp) == (ep["id"], v["subject"], v["now"])
    # Possession, from the ticket alone: its fields give the intervals over the subject's stream.
    seed = interval_seed(ticket.subject, ticket.epoch, ticket.nonce, ticket.timestamp, req)
    d = digest(seed, data, offsets(seed, ep["file_size"], ep["interval_count"]))
    assert ticket.tag_matches(d, session_id(kid, session.wrapped))
    assert not ticket.tag_matches(d, bytes(32))  # good for this session only
    # The seal says what the ticket said.
    o = open_proof(full, session, req)
    assert (o.now, o.nonce, o.epoch, o.subject, o.digest) == (
        ticket.timestamp, ticket.nonce, ticket.epoch, ticket.subject, d
    )
    assert o.body_sha256 == (None if v["body"] is None else hashlib.sha256(v["body"].encode()).digest())

    parts = compact.split(".")
    assert len(parts) == 4 and parts[0] == "v3" and b64.decode(parts[2]).hex() == v["session_ref_hex"]
    opened = open_proof(compact, session, req)
    assert opened.digest.hex() == v["proofs"][1]["digest_hex"]
    # Filled in with the ticket its payload gives, the compact proof is a full form like the first.
    rebuilt = as_full(compact, session, req).split(".")
    assert rebuilt[:3] == [version, kid, wrapped] and len(rebuilt) == 5
    assert Ticket.from_bytes(b64.decode(rebuilt[4])).tag == ticket_tag(opened.digest, session.id)


def test_the_ticket_grammar_is_the_gateways() -> None:
    good = Ticket(1800000000, bytes(range(16)), "e-test", "alice", bytes(16))
    raw = good.to_bytes()
    assert len(raw) == 8 + 16 + 7 + 6 + 16 and Ticket.from_bytes(raw) == good
    shortest = Ticket(0, bytes(16), "e", "a", bytes(16)).to_bytes()
    longest = Ticket(0, bytes(16), "e" * 32, "a" * 64, bytes(16)).to_bytes()
    assert (len(shortest), len(longest)) == (MIN_TICKET_LEN, MAX_TICKET_LEN) == (44, 138)
    assert Ticket.from_bytes(shortest).epoch == "e" and Ticket.from_bytes(longest).subject == "a" * 64
    bad = [
        raw + b"\0",  # a byte after the tag
        raw[:-1],  # a short tag
        raw[:24] + b"\x07" + raw[25:],  # the epoch's length off by one
        Ticket(0, bytes(16), "e test", "alice", bytes(16)).to_bytes(),  # not an identifier
        Ticket(0, bytes(16), "e-test", "Alice", bytes(16)).to_bytes(),  # not canonical
        Ticket(0, bytes(16), "e-test", "", bytes(16)).to_bytes(),  # empty subject
        raw[:31] + b"\x05al\xffce" + raw[37:],  # a subject that is not text
        bytes(MIN_TICKET_LEN - 1),
        bytes(MAX_TICKET_LEN + 1),
    ]
    for b in bad:
        with pytest.raises(ValueError):
            Ticket.from_bytes(b)


def test_the_version_labels_separate_the_versions() -> None:
    req = Request("GET", "api.example.com", "/")
    labels = [associated_data("k", req, n) for n in (1, 2, 3)]
    assert [a[:10] for a in labels] == [b"autoid/v1\0", b"autoid/v2\0", b"autoid/v3\0"]
    assert len({a[9:] for a in labels}) == 1
