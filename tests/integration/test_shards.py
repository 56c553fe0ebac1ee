"""Key rotation as a new shard (``tlog rotate``), on SQLite and PostgreSQL.

The old shard must stay readable and frozen under its old keys, its entries
keep their global indexes, the new shard continues the index after it, and
every response still verifies with the independent spec client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import speclient
from tlog.api.app import create_app
from tlog.config import Settings
from tlog.keys import ECDSA_KEY_FILE, ED25519_KEY_FILE
from tlog.rotation import NEXT_KEYS_DIR, RotationError, rotate
from tlog.storage import db


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tlog.cli", *args, "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        cmd += ["--database-url", settings.database_url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def key_of(client, tree_id: str | None = None) -> speclient.LogKey:  # type: ignore[no-untyped-def]
    url = "/api/v1/log/publicKey" + (f"?treeID={tree_id}" if tree_id else "")
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_json()
    return speclient.LogKey.from_pem(resp.data)


def submit_entries(client, n: int, email: str) -> list[tuple[dict, bytes]]:  # type: ignore[no-untyped-def,type-arg]
    """Submit ``n`` fresh entries; return (proposed entry, response) pairs."""
    out = []
    ident = speclient.make_identity(email)
    for _ in range(n):
        req, _digest = speclient.hashedrekord(ident)
        resp = client.post("/api/v1/log/entries", json=req)
        assert resp.status_code == 201, resp.get_json()
        out.append((req, resp.get_json()))
    return out


def reopen(app, settings: Settings):  # type: ignore[no-untyped-def]
    app.extensions["tlog"].engine.dispose()
    return create_app(settings)


def table_counts(settings: Settings) -> dict[str, int]:
    engine = db.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("trees", "entries", "nodes", "tree_heads", "search_index", "attestations")
            }
    finally:
        engine.dispose()


def test_rotation_freezes_the_old_shard_and_continues_the_index(settings: Settings) -> None:
    app = create_app(settings)
    client = app.test_client()
    old_key = key_of(client)
    old_ed = app.extensions["tlog"].log.keys.ed25519.public_key()
    before = submit_entries(client, 5, "before@example.com")
    old_info = client.get("/api/v1/log").get_json()
    old_tree_id = old_info["treeID"]
    old_checkpoint = old_info["signedTreeHead"]

    done = run_cli(settings, "rotate", "--origin", "test.example/log-2")
    assert done.returncode == 0, done.stderr
    assert "frozen: test.example/log (treeID" in done.stdout and "5 entries" in done.stdout

    # A server still running on the old keys may not extend the frozen tree.
    counts = table_counts(settings)
    stale = client.post("/api/v1/log/entries", json=speclient.hashedrekord(speclient.make_identity())[0])
    assert stale.status_code == 503
    assert "frozen by a key rotation" in stale.get_json()["message"]
    assert table_counts(settings) == counts

    app = reopen(app, settings.replace(origin="test.example/log-2"))
    client = app.test_client()
    new_key = key_of(client)
    assert new_key.log_id != old_key.log_id
    assert key_of(client, old_tree_id).log_id == old_key.log_id

    info = client.get("/api/v1/log").get_json()
    assert info["treeSize"] == 0 and info["treeID"] != old_tree_id
    speclient.verify_checkpoint(info["signedTreeHead"], new_key)
    (inactive,) = info["inactiveShards"]
    assert inactive == {
        "rootHash": old_info["rootHash"],
        "signedTreeHead": old_checkpoint,
        "treeID": old_tree_id,
        "treeSize": 5,
    }
    assert speclient.verify_checkpoint(old_checkpoint, old_key, old_ed).origin == "test.example/log"

    # The old entries: same global index, body and time, proofs against the
    # frozen checkpoint, and the very SETs of their 201s (stored, so made
    # under the old key), which verify under it.
    for i, (_req, acked) in enumerate(before):
        ((uuid, entry),) = acked.items()
        for got in (
            client.get(f"/api/v1/log/entries?logIndex={i}").get_json(),
            client.get(f"/api/v1/log/entries/{uuid}").get_json(),
            client.get(f"/api/v1/log/entries/{uuid[16:]}").get_json(),
        ):
            u, e, cp = speclient.verify_entry(got, old_key)
            assert (u, e["logIndex"], e["body"], e["integratedTime"]) == (uuid, i, entry["body"], entry["integratedTime"])
            assert _set_of(got) == _set_of(acked)
            assert cp.text == speclient.verify_checkpoint(old_checkpoint, old_key).text

    # New entries continue the global index; their proofs are local to the new shard.
    after = submit_entries(client, 3, "after@example.com")
    for j, (_req, acked) in enumerate(after):
        u, e, cp = speclient.verify_entry(acked, new_key, index_offset=5)
        assert e["logIndex"] == 5 + j and e["verification"]["inclusionProof"]["logIndex"] == j
        assert cp.origin == "test.example/log-2"
        assert u.startswith(f"{int(info['treeID']):016x}")
        again = client.get(f"/api/v1/log/entries?logIndex={5 + j}").get_json()
        speclient.verify_entry(again, new_key, index_offset=5)
        assert _set_of(again) == _set_of(acked)  # stored by the new shard, over the global index
    assert client.get("/api/v1/log/entries?logIndex=8").status_code == 404

    # Batch retrieval and search span both shards, in global index order.
    uuids = [next(iter(r)) for _q, r in before + after]
    got = client.post("/api/v1/log/entries/retrieve", json={"logIndexes": [7, 0, 4, 5, 99]}).get_json()
    assert [next(iter(g.values()))["logIndex"] for g in got] == [7, 0, 4, 5]
    got = client.post("/api/v1/log/entries/retrieve", json={"entryUUIDs": [uuids[1], uuids[6][16:]]}).get_json()
    assert [next(iter(g)) for g in got] == [uuids[1], uuids[6]]
    got = client.post("/api/v1/log/entries/retrieve", json={"entries": [before[2][0], after[0][0]]}).get_json()
    assert {next(iter(g)) for g in got} == {uuids[2], uuids[5]}
    found = client.post("/api/v1/index/retrieve", json={"email": "before@example.com"}).get_json()
    assert found == uuids[:5]
    found = client.post("/api/v1/index/retrieve", json={"email": "after@example.com"}).get_json()
    assert found == uuids[5:]

    # Consistency proofs per shard; the frozen shard's tiles stay served.
    proof = client.get(f"/api/v1/log/proof?firstSize=2&lastSize=5&treeID={old_tree_id}").get_json()
    assert proof["rootHash"] == old_info["rootHash"]
    assert client.get("/api/v1/log/proof?firstSize=1&lastSize=5").status_code == 400  # the active shard has 3
    assert client.get("/api/v1/log/proof?lastSize=2&treeID=12345").status_code == 404
    assert client.get("/api/v1/log/proof?lastSize=2&treeID=abc").status_code == 400
    hex_id = f"{int(old_tree_id):016x}"
    assert client.get(f"/shards/{hex_id}/checkpoint").data.decode() == old_checkpoint
    bundle = client.get(f"/shards/{hex_id}/tile/entries/000.p/5")
    assert bundle.status_code == 200
    assert client.get("/tile/entries/000.p/3").status_code == 200

    # An entry of the frozen shard may be logged again in the new one (as in Rekor, duplicates are per shard).
    again = client.post("/api/v1/log/entries", json=before[0][0])
    assert again.status_code == 201
    assert next(iter(again.get_json().values()))["logIndex"] == 8
    app.extensions["tlog"].engine.dispose()


def _set_of(log_entry: dict) -> str:  # type: ignore[type-arg]
    return str(next(iter(log_entry.values()))["verification"]["signedEntryTimestamp"])


def test_a_frozen_shard_signs_the_sets_it_did_not_store_with_its_own_key(settings: Settings) -> None:
    """Bulk-loaded entries have no stored SET: on reads each shard signs theirs with its own key and global index."""
    from tlog import bulk

    app = create_app(settings)
    client = app.test_client()
    old_key = key_of(client)
    submitted = submit_entries(client, 2, "stored@example.com")
    bulk.load(app.extensions["tlog"].log, bulk.synthetic_batches(2, 2, processes=1), progress=False)
    app.extensions["tlog"].engine.dispose()
    assert run_cli(settings, "rotate", "--origin", "test.example/log-2").returncode == 0

    app = create_app(settings.replace(origin="test.example/log-2"))
    client = app.test_client()
    new_key = key_of(client)
    bulk.load(app.extensions["tlog"].log, bulk.synthetic_batches(1, 1, processes=1), progress=False)
    (new,) = [r for _q, r in submit_entries(client, 1, "new@example.com")]
    for i in range(4):
        first, second = (client.get(f"/api/v1/log/entries?logIndex={i}").get_json() for _ in range(2))
        for got in (first, second):
            assert speclient.verify_entry(got, old_key)[1]["logIndex"] == i
        if i < 2:
            assert _set_of(first) == _set_of(second) == _set_of(submitted[i][1])
        else:
            assert _set_of(first) != _set_of(second)  # signed on each read, with the retired key
    loaded = client.get("/api/v1/log/entries?logIndex=4").get_json()
    assert speclient.verify_entry(loaded, new_key, index_offset=4)[1]["logIndex"] == 4
    got = client.get("/api/v1/log/entries?logIndex=5").get_json()
    assert speclient.verify_entry(got, new_key, index_offset=4)[1]["logIndex"] == 5
    assert _set_of(got) == _set_of(new)
    app.extensions["tlog"].engine.dispose()


def test_keys_of_the_frozen_shard_are_kept_0600_and_trust_config_lists_both(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings)
    old_pem = app.extensions["tlog"].log.keys.public_key_pem
    tree_id = app.extensions["tlog"].log.info.tree_id
    app.extensions["tlog"].engine.dispose()
    assert run_cli(settings, "rotate", "--origin", "test.example/log-2").returncode == 0

    kept = settings.data_dir / "shards" / f"{tree_id:016x}"
    for name in (ECDSA_KEY_FILE, ED25519_KEY_FILE):
        assert stat.S_IMODE((kept / name).stat().st_mode) == 0o600
        assert stat.S_IMODE((settings.data_dir / name).stat().st_mode) == 0o600
    assert not (settings.data_dir / NEXT_KEYS_DIR).exists()

    out = run_cli(settings.replace(origin=None), "trust-config", "--url", "http://127.0.0.1:1")
    assert out.returncode == 0, out.stderr
    tlogs = json.loads(out.stdout)["trustedRoot"]["tlogs"]
    assert len(tlogs) == 2
    old, new = tlogs
    from cryptography.hazmat.primitives import serialization

    old_der = serialization.load_pem_public_key(old_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(old["publicKey"]["rawBytes"]) == old_der
    assert base64.b64decode(old["logId"]["keyId"]) == hashlib.sha256(old_der).digest()
    assert "end" in old["publicKey"]["validFor"] and "end" not in new["publicKey"]["validFor"]
    assert old["publicKey"]["validFor"]["end"] >= new["publicKey"]["validFor"]["start"]

    info = json.loads(run_cli(settings.replace(origin=None), "info").stdout)
    assert info["origin"] == "test.example/log-2" and info["indexOffset"] == 0
    assert [s["origin"] for s in info["inactiveShards"]] == ["test.example/log"]


def test_two_rotations_chain_offsets(settings: Settings) -> None:
    app = create_app(settings)
    client = app.test_client()
    submit_entries(client, 3, "a@example.com")
    app.extensions["tlog"].engine.dispose()
    engine = db.create_engine(settings.resolved_database_url)
    try:
        rotate(engine, settings.data_dir, origin="test.example/log-2")
        app = create_app(settings.replace(origin=None))
        client = app.test_client()
        submit_entries(client, 2, "b@example.com")
        app.extensions["tlog"].engine.dispose()
        rotate(engine, settings.data_dir, origin="test.example/log-3")
        with pytest.raises(RotationError, match="already used"):
            rotate(engine, settings.data_dir, origin="test.example/log-2")
    finally:
        engine.dispose()
    app = create_app(settings.replace(origin=None))
    client = app.test_client()
    (resp,) = [r for _q, r in submit_entries(client, 1, "c@example.com")]
    speclient.verify_entry(resp, key_of(client), index_offset=5)
    assert next(iter(resp.values()))["logIndex"] == 5
    info = client.get("/api/v1/log").get_json()
    assert [s["treeSize"] for s in info["inactiveShards"]] == [3, 2]
    by_email = {}
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        by_email[email] = client.post("/api/v1/index/retrieve", json={"email": email}).get_json()
    for i, email in enumerate(["a@example.com"] * 3 + ["b@example.com"] * 2 + ["c@example.com"]):
        got = client.get(f"/api/v1/log/entries?logIndex={i}").get_json()
        ((u, e),) = got.items()
        assert e["logIndex"] == i and u in by_email[email]
    app.extensions["tlog"].engine.dispose()


def test_an_interrupted_rotation_is_finished_by_running_it_again(settings: Settings) -> None:
    """The on-disk state after a crash between the database commit and the key move."""
    app = create_app(settings)
    app.extensions["tlog"].engine.dispose()
    engine = db.create_engine(settings.resolved_database_url)
    try:
        rotate(engine, settings.data_dir, origin="test.example/log-2")
    finally:
        engine.dispose()
    # Put the keys back where a crash before step 4 would have left them.
    tree_dirs = list((settings.data_dir / "shards").iterdir())
    next_dir = settings.data_dir / NEXT_KEYS_DIR
    next_dir.mkdir(mode=0o700)
    for name in (ECDSA_KEY_FILE, ED25519_KEY_FILE):
        os.replace(settings.data_dir / name, next_dir / name)
        (settings.data_dir / name).write_bytes((tree_dirs[0] / name).read_bytes())
        os.chmod(settings.data_dir / name, 0o600)

    refused = run_cli(settings.replace(origin=None), "info")
    assert refused.returncode != 0 and "run it again to finish it" in refused.stderr
    finished = run_cli(settings, "rotate")
    assert finished.returncode == 0, finished.stderr
    assert "active: test.example/log-2" in finished.stdout
    assert json.loads(run_cli(settings.replace(origin=None), "info").stdout)["origin"] == "test.example/log-2"
    nothing = run_cli(settings, "rotate")
    assert nothing.returncode != 0 and "give --origin" in nothing.stderr


def test_rotation_refuses_bad_origins_and_changes_nothing(settings: Settings) -> None:
    app = create_app(settings)
    app.extensions["tlog"].engine.dispose()
    counts = table_counts(settings)
    for origin in ("test.example/log", "has space", "a+b", ""):
        out = run_cli(settings, "rotate", "--origin", origin)
        assert out.returncode != 0
        assert "Error" in out.stderr
    assert table_counts(settings) == counts
    assert not (settings.data_dir / NEXT_KEYS_DIR).exists()


def test_monitor_client_follows_the_active_shard_over_both_apis(settings: Settings) -> None:
    """Over the Rekor API the monitor asks for global indexes; over tiles, local ones."""
    from conftest import LiveServer
    from monitor.client import LogClient

    server = LiveServer(settings, workers=1).start()
    try:
        first = speclient.submit_many(server.url, 4, "one@example.com")
    finally:
        server.stop()
    assert run_cli(settings, "rotate", "--origin", "test.example/log-2").returncode == 0
    server = LiveServer(settings.replace(origin="test.example/log-2"), workers=1).start()
    try:
        second = speclient.submit_many(server.url, 3, "two@example.com", index_offset=4)
        tiles, rekor = LogClient(server.url, mode="tiles"), LogClient(server.url, mode="rekor")
        assert tiles.checkpoint() == rekor.checkpoint()
        via_tiles = list(tiles.entries(0, 3))
        via_rekor = list(rekor.entries(0, 3))
        assert via_tiles == via_rekor and [i for i, _ in via_rekor] == [0, 1, 2]
        bodies = {base64.b64decode(b) for b in _bodies(server.url, [4, 5, 6])}
        assert {body for _i, body in via_rekor} == bodies
        # retrieve() (the publisher watch's attestation fetch) takes tree positions in either mode.
        for c in (tiles, rekor):
            got = c.retrieve([0, 2])
            assert sorted(got) == [0, 2] and got[0].body == via_tiles[0][1] and got[2].body == via_tiles[2][1]
        # The frozen shard is still followable over tiles at its own prefix.
        old_tree_id = requests_json(server.url + "/api/v1/log")["inactiveShards"][0]["treeID"]
        frozen = LogClient(f"{server.url}/shards/{int(old_tree_id):016x}", mode="tiles")
        assert b"test.example/log\n4\n" in frozen.checkpoint()
        assert {body for _i, body in frozen.entries(0, 4)} == {base64.b64decode(b) for b in _bodies(server.url, [0, 1, 2, 3])}
        for c in (tiles, rekor, frozen):
            c.close()
    finally:
        server.stop()
    assert len(first) == 4 and len(second) == 3


def requests_json(url: str) -> dict:  # type: ignore[type-arg]
    import requests

    resp = requests.get(url, timeout=10)
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


def _bodies(url: str, indexes: list[int]) -> list[str]:
    import requests

    got = requests.post(url + "/api/v1/log/entries/retrieve", json={"logIndexes": indexes}, timeout=10).json()
    return [next(iter(g.values()))["body"] for g in got]


def test_the_database_keeps_a_frozen_shard_frozen(settings: Settings) -> None:
    """Even SQL that bypasses the sequencer cannot unfreeze a shard, rename it or give it a new head."""
    app = create_app(settings)
    submit_entries(app.test_client(), 2, "a@example.com")
    app.extensions["tlog"].engine.dispose()
    assert run_cli(settings, "rotate", "--origin", "test.example/log-2").returncode == 0
    engine = db.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            frozen_id, size, root = conn.execute(
                sa.text(
                    "SELECT t.id, h.size, h.root_hash FROM trees t JOIN tree_heads h ON h.tree = t.id "
                    "WHERE t.frozen_at IS NOT NULL ORDER BY h.size DESC LIMIT 1"
                )
            ).one()
        attempts = [
            ("UPDATE trees SET frozen_at = NULL WHERE id = :id", {}),
            ("UPDATE trees SET origin = 'evil.example/log' WHERE id = :id", {}),
            ("UPDATE trees SET frozen_at = frozen_at + 1 WHERE id = :id", {}),
            ("DELETE FROM trees WHERE id = :id", {}),
            (
                "INSERT INTO tree_heads (tree, size, root_hash, timestamp, checkpoint) VALUES (:id, :size, :root, 0, 'x')",
                {"size": size + 1, "root": root},
            ),
        ]
        for sql, params in attempts:
            with pytest.raises(sa.exc.DBAPIError, match="tlog: "):
                with engine.begin() as conn:
                    conn.execute(sa.text(sql), {"id": frozen_id, **params})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT frozen_at IS NOT NULL FROM trees WHERE id = :id"), {"id": frozen_id}).scalar()
            assert conn.execute(sa.text("SELECT max(size) FROM tree_heads WHERE tree = :id"), {"id": frozen_id}).scalar() == size
    finally:
        engine.dispose()


def test_explorer_shows_global_indexes_and_entries_of_frozen_shards(settings: Settings) -> None:
    app = create_app(settings)
    submit_entries(app.test_client(), 2, "old@example.com")
    app.extensions["tlog"].engine.dispose()
    assert run_cli(settings, "rotate", "--origin", "test.example/log-2").returncode == 0
    app = create_app(settings.replace(origin=None))
    client = app.test_client()
    submit_entries(client, 1, "new@example.com")
    with app.test_request_context():
        from flask import url_for

        home = client.get(url_for("explorer.home")).data.decode()
    assert ">2</a>" in home  # the active shard's first entry is global index 2
    old = client.get(_entry_path(app, 1))
    assert old.status_code == 200
    page = old.data.decode()
    assert 'id="entry-index">1<' in page and "test.example/log" in page
    new = client.get(_entry_path(app, 2)).data.decode()
    assert 'id="entry-index">2<' in new and "(index 0 in shard test.example/log-2)" in new
    found = client.get(_search_path(app, "2")).data.decode()
    assert ">2</a>" in found
    app.extensions["tlog"].engine.dispose()


def _entry_path(app, index: int) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        from flask import url_for

        return url_for("explorer.entry", index=str(index))


def _search_path(app, q: str) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        from flask import url_for

        return url_for("explorer.search", q=q)
