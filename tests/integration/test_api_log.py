"""The Rekor v1 API and the tiles API through Flask's test client, on SQLite and PostgreSQL.

Every response is checked by the independent spec client in ``tests/speclient.py``.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

import speclient
from tlog.api.app import create_app
from tlog.storage.models import APPEND_ONLY_TABLES


@pytest.fixture
def log_key(client) -> speclient.LogKey:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/log/publicKey")
    assert resp.status_code == 200
    assert resp.mimetype == "application/x-pem-file"
    return speclient.LogKey.from_pem(resp.data)


def ed25519_public(app):  # type: ignore[no-untyped-def]
    return app.extensions["tlog"].log.keys.ed25519.public_key()


def submit(client, body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/log/entries", json=body)


def test_empty_log_has_a_signed_checkpoint(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    info = client.get("/api/v1/log").get_json()
    assert info["treeSize"] == 0
    assert info["rootHash"] == hashlib.sha256(b"").hexdigest()
    cp = speclient.verify_checkpoint(info["signedTreeHead"], log_key, ed25519_public(app))
    assert (cp.origin, cp.size) == ("test.example/log", 0)
    tiles_cp = client.get("/checkpoint")
    assert tiles_cp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert tiles_cp.data.decode() == info["signedTreeHead"]


def test_submit_verify_and_read_back(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    alice = speclient.make_identity("alice@example.com")
    seen = []
    for i in range(5):
        req, _digest = speclient.hashedrekord(alice)
        resp = submit(client, req)
        assert resp.status_code == 201, resp.get_json()
        uuid, entry, cp = speclient.verify_entry(resp.get_json(), log_key)
        assert entry["logIndex"] == i
        assert len(uuid) == 80
        assert resp.headers["Location"] == f"/api/v1/log/entries/{uuid}"
        speclient.verify_checkpoint(entry["verification"]["inclusionProof"]["checkpoint"], log_key, ed25519_public(app))
        seen.append((uuid, entry))

    for i, (uuid, entry) in enumerate(seen):
        by_index = client.get(f"/api/v1/log/entries?logIndex={i}").get_json()
        by_uuid = client.get(f"/api/v1/log/entries/{uuid}").get_json()
        by_short_uuid = client.get(f"/api/v1/log/entries/{uuid[16:]}").get_json()
        for got in (by_index, by_uuid, by_short_uuid):
            (u, e), = got.items()
            assert u == uuid and e["body"] == entry["body"] and e["integratedTime"] == entry["integratedTime"]
            _, _, cp = speclient.verify_entry(got, log_key)
            assert cp.size == 5  # proofs are against the latest tree


def test_stored_body_is_the_canonical_hashedrekord(client, log_key) -> None:  # type: ignore[no-untyped-def]
    req, digest = speclient.hashedrekord(speclient.make_identity())
    _, entry, _ = speclient.verify_entry(submit(client, req).get_json(), log_key)
    body = base64.b64decode(entry["body"])
    import rfc8785

    assert body == rfc8785.dumps(req)  # the client's spec, canonical JSON
    assert f'"value":"{digest.hex()}"'.encode() in body


def test_dsse_entry(client, log_key) -> None:  # type: ignore[no-untyped-def]
    bob = speclient.make_identity("bob@example.com")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "pkg-1.0-py3-none-any.whl", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://docs.pypi.org/attestations/publish/v1",
        "predicate": {},
    }
    resp = submit(client, speclient.dsse(bob, statement))
    assert resp.status_code == 201, resp.get_json()
    uuid, entry, _ = speclient.verify_entry(resp.get_json(), log_key)
    import json

    body = json.loads(base64.b64decode(entry["body"]))
    assert body["kind"] == "dsse" and "proposedContent" not in body["spec"]
    found = client.post("/api/v1/index/retrieve", json={"hash": "sha256:" + "ab" * 32}).get_json()
    assert found == [uuid]


def test_duplicate_answers_409_and_adds_nothing(client, log_key) -> None:  # type: ignore[no-untyped-def]
    req, _ = speclient.hashedrekord(speclient.make_identity())
    first = submit(client, req)
    uuid, entry, _ = speclient.verify_entry(first.get_json(), log_key)
    before = client.get("/api/v1/log").get_json()
    again = submit(client, req)
    assert again.status_code == 409
    assert again.headers["Location"] == f"/api/v1/log/entries/{uuid}"
    err = again.get_json()
    assert err["code"] == 409 and str(entry["logIndex"]) in err["message"]
    assert client.get("/api/v1/log").get_json() == before


def test_consistency_proofs_between_every_pair_of_sizes(client, log_key) -> None:  # type: ignore[no-untyped-def]
    ident = speclient.make_identity()
    roots = {}
    for _ in range(9):
        resp = submit(client, speclient.hashedrekord(ident)[0])
        _, _, cp = speclient.verify_entry(resp.get_json(), log_key)
        roots[cp.size] = cp.root
    for size1 in range(1, 10):
        for size2 in range(size1, 10):
            resp = client.get(f"/api/v1/log/proof?firstSize={size1}&lastSize={size2}")
            assert resp.status_code == 200, resp.get_json()
            got = resp.get_json()
            assert got["rootHash"] == roots[size2].hex()
            speclient.verify_consistency(size1, size2, roots[size1], roots[size2], [bytes.fromhex(h) for h in got["hashes"]])


def test_tiles_and_entry_bundles(client, log_key) -> None:  # type: ignore[no-untyped-def]
    ident = speclient.make_identity()
    bodies = []
    for _ in range(3):
        _, entry, _ = speclient.verify_entry(submit(client, speclient.hashedrekord(ident)[0]).get_json(), log_key)
        bodies.append(base64.b64decode(entry["body"]))
    tile = client.get("/tile/0/000.p/3")
    assert tile.status_code == 200
    assert tile.data == b"".join(speclient.leaf_hash(b) for b in bodies)
    assert "immutable" not in tile.headers["Cache-Control"]
    bundle = client.get("/tile/entries/000.p/3")
    assert bundle.status_code == 200
    assert bundle.data == b"".join(len(b).to_bytes(2, "big") + b for b in bodies)
    assert client.get("/tile/0/000.p/4").status_code == 404  # beyond the tree
    assert client.get("/tile/0/000").status_code == 404  # full tile not there yet
    for bad in ("/tile/0/0", "/tile/0/x000/001", "/tile/0/000.p/0", "/tile/0/000.p/256", "/tile/64/000", "/tile/01/000"):
        resp = client.get(bad)
        assert resp.status_code == 400, bad
        assert resp.get_json()["code"] == 400


def test_full_tiles_and_level_one(client, app) -> None:  # type: ignore[no-untyped-def]
    """Fill 256 entries straight through the sequencer, then read full tiles."""
    from tlog import entries

    svc = app.extensions["tlog"]
    ident = speclient.make_identity()
    bodies = []
    from tlog.sequencer import integrate

    batch = [entries.canonicalize(speclient.hashedrekord(ident)[0]) for _ in range(257)]
    integrate(svc.log, batch[:100])
    integrate(svc.log, batch[100:])
    bodies = [c.body for c in batch]
    full = client.get("/tile/0/000")
    assert full.status_code == 200 and len(full.data) == 8192
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert full.data == b"".join(speclient.leaf_hash(b) for b in bodies[:256])
    level1 = client.get("/tile/1/000.p/1")
    assert level1.status_code == 200
    # The single level-1 hash is the root of the first 256 leaves.
    from speclient import node_hash

    level = [speclient.leaf_hash(b) for b in bodies[:256]]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    assert level1.data == level[0]
    assert client.get("/tile/0/001.p/1").data == speclient.leaf_hash(bodies[256])
    assert len(client.get("/tile/entries/000").data) == sum(2 + len(b) for b in bodies[:256])


def test_search_index(client, log_key) -> None:  # type: ignore[no-untyped-def]
    alice = speclient.make_identity("Alice@Example.com", uri="https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main")
    bob = speclient.make_identity("bob@example.com")
    req_a, digest_a = speclient.hashedrekord(alice, b"artifact-a")
    req_b, digest_b = speclient.hashedrekord(bob, b"artifact-a")  # same artifact, other signer
    uuid_a = next(iter(submit(client, req_a).get_json()))
    uuid_b = next(iter(submit(client, req_b).get_json()))

    def search(q):  # type: ignore[no-untyped-def]
        resp = client.post("/api/v1/index/retrieve", json=q)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    assert search({"hash": "sha256:" + digest_a.hex()}) == [uuid_a, uuid_b]
    assert search({"hash": digest_a.hex().upper()}) == [uuid_a, uuid_b]
    assert search({"email": "alice@example.com"}) == [uuid_a]
    assert search({"identity": "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"}) == [uuid_a]
    pem = base64.b64encode(alice.cert_pem).decode()
    assert search({"publicKey": {"format": "x509", "content": pem}}) == [uuid_a]
    assert search({"email": "bob@example.com", "hash": "sha256:" + digest_a.hex(), "operator": "and"}) == [uuid_b]
    assert search({"email": "nobody@example.com"}) == []


def test_retrieve_by_uuid_index_and_proposed_entry(client, log_key) -> None:  # type: ignore[no-untyped-def]
    ident = speclient.make_identity()
    req, _ = speclient.hashedrekord(ident)
    uuid = next(iter(submit(client, req).get_json()))
    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        for query in ({"entryUUIDs": [uuid]}, {"logIndexes": [0]}, {"entries": [req]}):
            resp = client.post(path, json=query)
            assert resp.status_code == 200, resp.get_json()
            got = resp.get_json()
            assert isinstance(got, list) and len(got) == 1 and next(iter(got[0])) == uuid
            speclient.verify_entry(got[0], log_key)
        assert client.post(path, json={"logIndexes": [5]}).get_json() == []


def test_restart_keeps_everything(settings, client, log_key) -> None:  # type: ignore[no-untyped-def]
    ident = speclient.make_identity()
    for _ in range(4):
        submit(client, speclient.hashedrekord(ident)[0])
    before = client.get("/api/v1/log").get_json()
    entry3 = client.get("/api/v1/log/entries?logIndex=3").get_json()

    again = create_app(settings)
    try:
        c2 = again.test_client()
        assert speclient.LogKey.from_pem(c2.get("/api/v1/log/publicKey").data).log_id == log_key.log_id
        assert c2.get("/api/v1/log").get_json() == before
        got = c2.get("/api/v1/log/entries?logIndex=3").get_json()
        assert next(iter(got.values()))["body"] == next(iter(entry3.values()))["body"]
        resp = c2.post("/api/v1/log/entries", json=speclient.hashedrekord(ident)[0])
        assert speclient.verify_entry(resp.get_json(), log_key)[1]["logIndex"] == 4
    finally:
        again.extensions["tlog"].engine.dispose()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_append_only_triggers(app, client, table) -> None:  # type: ignore[no-untyped-def]
    """Every table the schema declares append-only refuses UPDATE and DELETE once it holds rows."""
    ident = speclient.make_identity()
    submit(client, speclient.hashedrekord(ident)[0])
    statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", "digest": {"sha256": "cd" * 32}}]}
    assert submit(client, speclient.dsse(ident, statement)).status_code == 201  # a row in attestations
    engine = app.extensions["tlog"].engine
    if table == "cosignatures":  # witnesses add these in production; one row by hand will do here
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO cosignatures (tree, size, witness, line, received_at) "
                    "SELECT tree, size, 'w+00000000', 'a line', 0 FROM tree_heads WHERE size = 1"
                )
            )
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    assert count > 0
    for statement in (f"UPDATE {table} SET tree = tree", f"DELETE FROM {table}"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == count


def test_keys_are_private_files(settings, app) -> None:  # type: ignore[no-untyped-def]
    names = ["log-ecdsa-p256.pem", "log-ed25519.pem", "ca-root-key.pem", "ca-intermediate-key.pem", "ct-log-key.pem"]
    keys = [settings.data_dir / n for n in names]
    for k in keys:
        assert k.stat().st_mode & 0o777 == 0o600
        serialization.load_pem_private_key(k.read_bytes(), None)
