"""Robustness: any JSON-like input yields a CanonicalEntry or BadRequest, nothing else.

Also the search-key helpers shared with the search API.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlog.entries import (
    CanonicalEntry,
    canonicalize,
    search_key_for_email,
    search_key_for_hash,
    search_key_for_uri,
)
from tlog.errors import BadRequest

KNOWN_KEYS = [
    "kind", "apiVersion", "spec", "signature", "content", "publicKey", "data", "hash",
    "algorithm", "value", "proposedContent", "envelope", "verifiers", "signatures",
    "envelopeHash", "payloadHash", "payload", "payloadType", "sig", "keyid",
]  # fmt: skip
KNOWN_STRINGS = ["hashedrekord", "dsse", "0.0.1", "sha256", "sha384", "sha512", "", "AAAA", "ab" * 32]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(KNOWN_STRINGS)
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=10), children, max_size=6),
    max_leaves=40,
)


def _outcome(value: object) -> None:
    try:
        result = canonicalize(value)
    except BadRequest as exc:
        assert exc.message and exc.http_status == 400
        return
    assert isinstance(result, CanonicalEntry)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_like)
def test_arbitrary_json_only_raises_bad_request(value: object) -> None:
    _outcome(value)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["hashedrekord", "dsse"]),
    spec=st.dictionaries(st.sampled_from(KNOWN_KEYS), json_like, max_size=6),
)
def test_right_kind_arbitrary_spec_only_raises_bad_request(kind: str, spec: dict[str, Any]) -> None:
    _outcome({"kind": kind, "apiVersion": "0.0.1", "spec": spec})


# --------------------------------------------------------------------------
# Mutations of valid requests: replace one node anywhere with arbitrary JSON.
# --------------------------------------------------------------------------


def _valid_requests() -> list[dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(__import__("datetime").datetime(2020, 1, 1))
        .not_valid_after(__import__("datetime").datetime(2030, 1, 1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@b.c")]), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    digest = hashlib.sha256(b"artifact").digest()
    hashed = {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "signature": {
                "content": base64.b64encode(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))).decode(),
                "publicKey": {"content": pem_b64},
            },
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        },
    }
    payload = b'{"subject":[{"name":"x","digest":{"sha256":"' + b"ab" * 32 + b'"}}]}'
    ptype = b"application/vnd.in-toto+json"
    sig = key.sign(b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(payload), payload), ec.ECDSA(hashes.SHA256()))
    envelope = json.dumps(
        {"payload": base64.b64encode(payload).decode(), "payloadType": ptype.decode(),
         "signatures": [{"sig": base64.b64encode(sig).decode()}]}
    )  # fmt: skip
    dsse = {
        "kind": "dsse",
        "apiVersion": "0.0.1",
        "spec": {
            "proposedContent": {"envelope": envelope, "verifiers": [pem_b64]},
            "signatures": None,
            "envelopeHash": None,
            "payloadHash": None,
        },
    }
    return [hashed, dsse]


VALID = _valid_requests()


def test_valid_requests_are_valid() -> None:
    for req in VALID:
        assert isinstance(canonicalize(req), CanonicalEntry)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


@settings(max_examples=400, deadline=None)
@given(data=st.data(), which=st.sampled_from([0, 1]), replacement=json_like)
def test_mutated_valid_request_only_raises_bad_request(data: st.DataObject, which: int, replacement: Any) -> None:
    req = json.loads(json.dumps(VALID[which]))
    path = data.draw(st.sampled_from(_paths(req)))
    if not path:
        _outcome(replacement)
        return
    node = req
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = replacement
    _outcome(req)


@settings(max_examples=200, deadline=None)
@given(envelope=json_like)
def test_arbitrary_envelope_json_only_raises_bad_request(envelope: Any) -> None:
    req = json.loads(json.dumps(VALID[1]))
    try:
        text = json.dumps(envelope)
    except ValueError:
        return
    req["spec"]["proposedContent"]["envelope"] = text
    _outcome(req)


# --------------------------------------------------------------------------
# Search-key helpers
# --------------------------------------------------------------------------


def test_search_key_for_hash() -> None:
    assert search_key_for_hash("sha256", "AB" * 32) == "sha256:" + "ab" * 32
    assert search_key_for_hash("SHA512", "cd" * 64) == "sha512:" + "cd" * 64
    assert search_key_for_hash("gitCommit", "0f" * 20) == "gitcommit:" + "0f" * 20
    for alg, value in [("sha256", "ab"), ("sha256", "zz" * 32), ("sha 1", "ab"), ("", "ab"), ("sha1", "ab" * 21)]:
        with pytest.raises(BadRequest):
            search_key_for_hash(alg, value)


def test_search_key_for_identities() -> None:
    assert search_key_for_email("Alice@Example.COM") == "email:alice@example.com"
    assert search_key_for_uri("https://X/y") == "uri:https://X/y"
    for bad in ("", "no-at-sign"):
        with pytest.raises(BadRequest):
            search_key_for_email(bad)
    with pytest.raises(BadRequest):
        search_key_for_uri("")
