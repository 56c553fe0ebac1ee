"""Every class of malformed request gets a 4xx JSON error naming the problem, and changes nothing."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

import speclient


def snapshot(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Row counts of every table and the latest checkpoint: the log's whole visible state."""
    engine = app.extensions["tlog"].engine
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("entries", "nodes", "tree_heads", "search_index")}
        cp = conn.execute(sa.text("SELECT checkpoint FROM tree_heads ORDER BY size DESC LIMIT 1")).scalar_one()
    return {"counts": counts, "checkpoint": cp}


@pytest.fixture
def seeded(app, client):  # type: ignore[no-untyped-def]
    """A log with one entry, and a valid request to mutate."""
    ident = speclient.make_identity()
    req, digest = speclient.hashedrekord(ident)
    assert client.post("/api/v1/log/entries", json=req).status_code == 201
    fresh, fresh_digest = speclient.hashedrekord(ident)
    return {"ident": ident, "request": fresh, "digest": fresh_digest}


def mutate(req: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(req)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


DELETE = object()


def other_key_pem(kind: str) -> tuple[str, Any]:
    if kind == "rsa1024":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    elif kind == "secp256k1":
        key = ec.generate_private_key(ec.SECP256K1())
    else:
        raise ValueError(kind)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode(), key


BAD_SUBMISSIONS: list[tuple[str, Any, str]] = [
    # (description, mutation(req, digest) -> body or raw bytes, expected words in the message)
    ("not an object", lambda r, d: [r], "object"),
    ("missing kind", lambda r, d: mutate(r, "kind", DELETE), "kind"),
    ("kind not a string", lambda r, d: mutate(r, "kind", 5), "kind"),
    ("unknown kind", lambda r, d: mutate(r, "kind", "rekord"), "rekord"),
    ("unknown version", lambda r, d: mutate(r, "apiVersion", "0.0.9"), "0.0.9"),
    ("spec not an object", lambda r, d: mutate(r, "spec", "x"), "spec"),
    ("missing signature", lambda r, d: mutate(r, "spec.signature", DELETE), "signature"),
    ("signature content not a string", lambda r, d: mutate(r, "spec.signature.content", 12), "content"),
    ("bad base64 signature", lambda r, d: mutate(r, "spec.signature.content", "not base64!"), "base64"),
    ("bad base64 key", lambda r, d: mutate(r, "spec.signature.publicKey.content", "%%%"), "base64"),
    ("garbage PEM", lambda r, d: mutate(r, "spec.signature.publicKey.content", base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").decode()), "key"),
    ("RSA-1024 key", lambda r, d: mutate(r, "spec.signature.publicKey.content", other_key_pem("rsa1024")[0]), "RSA"),
    ("secp256k1 key", lambda r, d: mutate(r, "spec.signature.publicKey.content", other_key_pem("secp256k1")[0]), "unsupported"),
    ("bad hex digest", lambda r, d: mutate(r, "spec.data.hash.value", "zz" * 32), "hex"),
    ("short digest", lambda r, d: mutate(r, "spec.data.hash.value", "ab" * 16), "expected 64 hex"),
    ("unknown hash algorithm", lambda r, d: mutate(r, "spec.data.hash.algorithm", "md5"), "md5"),
    ("digest mismatch", lambda r, d: mutate(r, "spec.data.hash.value", hashlib.sha256(b"other").hexdigest()), "signature"),
    ("wrong signature", lambda r, d: mutate(r, "spec.signature.content", base64.b64encode(ec.generate_private_key(ec.SECP256R1()).sign(d, ec.ECDSA(utils.Prehashed(hashes.SHA256())))).decode()), "signature"),
]


@pytest.mark.parametrize("desc,make,words", BAD_SUBMISSIONS, ids=[b[0] for b in BAD_SUBMISSIONS])
def test_bad_submission_is_refused_and_changes_nothing(app, client, seeded, desc, make, words) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    resp = client.post("/api/v1/log/entries", json=make(seeded["request"], seeded["digest"]))
    assert 400 <= resp.status_code < 500, (desc, resp.status_code, resp.data)
    err = resp.get_json()
    assert set(err) == {"code", "message"} and err["code"] == resp.status_code
    assert words.lower() in err["message"].lower(), (desc, err["message"])
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "data,content_type,words",
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"", "application/json", "empty"),
        (b"\xff\xfe", "application/json", "UTF-8"),
        (b"[" * 60_000 + b"]" * 60_000, "application/json", "JSON"),
        (b"null", "application/json", "object"),
    ],
    ids=["syntax", "empty", "not-utf8", "too-deep", "null"],
)
def test_unparseable_bodies(app, client, seeded, data, content_type, words) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    resp = client.post("/api/v1/log/entries", data=data, content_type=content_type)
    assert resp.status_code == 400, resp.data
    assert words.lower() in resp.get_json()["message"].lower()
    assert snapshot(app) == before


def test_body_over_the_limit_names_the_limit(app, client, seeded) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    big = json.dumps({"kind": "hashedrekord", "pad": "x" * (200 * 1024)})
    resp = client.post("/api/v1/log/entries", data=big, content_type="application/json")
    assert resp.status_code == 413
    assert "131072" in resp.get_json()["message"]
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "url,status",
    [
        ("/api/v1/log/entries", 400),
        ("/api/v1/log/entries?logIndex=", 400),
        ("/api/v1/log/entries?logIndex=-1", 400),
        ("/api/v1/log/entries?logIndex=abc", 400),
        ("/api/v1/log/entries?logIndex=1e3", 400),
        ("/api/v1/log/entries?logIndex=99999999999999999999", 400),
        ("/api/v1/log/entries?logIndex=7", 404),
        ("/api/v1/log/entries/xyz", 400),
        ("/api/v1/log/entries/" + "ab" * 32, 404),
        ("/api/v1/log/entries/" + "00" * 8 + "ab" * 32, 404),
        ("/api/v1/log/proof", 400),
        ("/api/v1/log/proof?lastSize=0", 400),
        ("/api/v1/log/proof?lastSize=5", 400),
        ("/api/v1/log/proof?firstSize=2&lastSize=1", 400),
        ("/api/v1/log/proof?firstSize=x&lastSize=1", 400),
        ("/api/v1/log/proof?lastSize=1&treeID=42", 404),
        ("/api/v1/log/proof?lastSize=1&treeID=4x", 400),
        ("/api/v1/nothing", 404),
        ("/tile/entries/001", 404),
    ],
)
def test_bad_queries(client, seeded, url, status) -> None:  # type: ignore[no-untyped-def]
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.data)
    err = resp.get_json()
    assert err["code"] == status and err["message"]


def test_wrong_method_is_405_json(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.delete("/api/v1/log/entries")
    assert resp.status_code == 405
    assert resp.get_json()["code"] == 405
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize(
    "path,query,words",
    [
        ("/api/v1/index/retrieve", {}, "at least one"),
        ("/api/v1/index/retrieve", {"hash": "md5:abc"}, "hash"),
        ("/api/v1/index/retrieve", {"hash": 5}, "hash"),
        ("/api/v1/index/retrieve", {"email": "no-at-sign"}, "email"),
        ("/api/v1/index/retrieve", {"email": "a@b", "operator": "xor"}, "operator"),
        ("/api/v1/index/retrieve", {"publicKey": {"format": "pgp", "content": "AA=="}}, "pgp"),
        ("/api/v1/index/retrieve", {"publicKey": {"format": "x509", "content": "!!"}}, "base64"),
        ("/api/v1/index/retrieve", {"publicKey": {"format": "x509", "url": "http://169.254.169.254/"}}, "url"),
        ("/api/v1/index/retrieve", {"bogus": 1}, "bogus"),
        ("/api/v1/index/retrieve", [1], "object"),
        ("/api/v1/log/entries/retrieve", {}, "at least one"),
        ("/api/v1/log/entries/retrieve", {"logIndexes": "0"}, "array"),
        ("/api/v1/log/entries/retrieve", {"logIndexes": [-1]}, "logIndexes[0]"),
        ("/api/v1/log/entries/retrieve", {"logIndexes": [True]}, "logIndexes[0]"),
        ("/api/v1/log/entries/retrieve", {"logIndexes": list(range(101))}, "at most 100"),
        ("/api/v1/log/entries/retrieve", {"entryUUIDs": [7]}, "entryUUIDs[0]"),
        ("/api/v1/log/entries/retrieve", {"entryUUIDs": ["xyz"]}, "uuid"),
        ("/api/v1/log/entries/retrieve", {"entries": [{"kind": "nope"}]}, "entries[0]"),
    ],
)
def test_bad_search_queries(app, client, seeded, path, query, words) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    resp = client.post(path, json=query)
    assert resp.status_code == 400, resp.data
    assert words.lower() in resp.get_json()["message"].lower()
    assert snapshot(app) == before
