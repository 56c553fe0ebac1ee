"""The hot-path readers (tlog.storage.store.DriverReader) agree with the Core reads, on both databases."""

from __future__ import annotations

import base64

import speclient
from sqlalchemy.engine import Engine

from tlog.api.app import create_app
from tlog.config import Settings
from tlog.log import TransparencyLog
from tlog.storage import store


def _three_entries(settings: Settings) -> tuple[TransparencyLog, Engine]:
    """A log of three entries (the middle one a dsse, so with an attestation), and its engine."""
    app = create_app(settings)
    client = app.test_client()
    ident = speclient.make_identity("reader@example.com")
    bodies = [speclient.hashedrekord(ident)[0], speclient.dsse(ident, {"_type": "x", "subject": []}), speclient.hashedrekord(ident)[0]]
    for body in bodies:
        assert client.post("/api/v1/log/entries", json=body).status_code == 201
    return app.extensions["tlog"].log, app.extensions["tlog"].engine


def test_head_and_entry_is_the_latest_head_and_the_entry_it_includes_by_index_or_leaf_hash(settings: Settings) -> None:
    log, engine = _three_entries(settings)
    try:
        with engine.connect() as conn:
            head = store.latest_head(conn, log.tree)
            expected = [store.get_entry(conn, log.tree, i) for i in range(3)]
        assert head is not None and head.size == 3
        with store.reading(engine) as r:
            for i in range(3):
                got_head, entry = r.head_and_entry(log.tree, i)
                assert got_head == head and entry == expected[i]
            assert expected[1].attestation is not None  # the dsse entry's payload came along
            assert r.head_and_entry(log.tree, 3) == (head, None)  # not in the tree (yet)
            assert r.entries(log.tree, [2, 0, 7]) == {0: expected[0], 2: expected[2]}
            assert r.latest_head(log.tree) == head
            assert r.head_and_entry(log.tree + 100, 0) == (None, None)  # no such tree
            for e in expected:
                assert r.head_and_entry_by_leaf_hash(log.tree, e.leaf_hash) == (head, e)
            assert r.head_and_entry_by_leaf_hash(log.tree, b"\x00" * 32) == (head, None)
            assert r.head_and_entry_by_leaf_hash(log.tree + 100, expected[0].leaf_hash) == (None, None)
    finally:
        engine.dispose()


def test_head_entry_and_nodes_is_head_and_entry_plus_the_nodes(settings: Settings) -> None:
    log, engine = _three_entries(settings)
    leaves = store.node_key(0, 0), store.node_key(0, 2)
    inner = store.node_key(1, 0)
    absent = store.node_key(1, 1), store.node_key(5, 0)  # not perfect in a tree of 3
    try:
        with store.reading(engine) as r:
            stored = r.node_hashes(log.tree, [*leaves, inner])
            assert len(stored) == 3
            for i in range(4):
                head, entry = r.head_and_entry(log.tree, i)
                assert r.head_entry_and_nodes(log.tree, i, [*leaves, inner, *absent]) == (head, entry, stored)
                assert r.head_entry_and_nodes(log.tree, i, []) == (head, entry, {})
            assert r.head_entry_and_nodes(log.tree + 100, 0, [inner]) == (None, None, {})  # no such tree, so no nodes
            assert r.head_entry_and_nodes(log.tree, 1, [inner])[1].attestation is not None  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_inclusion_proofs_stay_right_while_the_tree_grows_under_the_guessed_nodes(settings: Settings) -> None:
    """entry_by_index reads the nodes of the proof in the last tree it saw along with the head.

    After the tree grows, every leaf's proof must still be the one for the new
    head: checked for every leaf of every size up to 40, with the process's
    last-seen size set to 1, to the previous size and to the current one.
    """
    app = create_app(settings)
    client = app.test_client()
    ident = speclient.make_identity("grower@example.com")
    svc = app.extensions["tlog"]
    bodies: list[bytes] = []
    try:
        for size in range(1, 41):
            response = client.post("/api/v1/log/entries", json=speclient.hashedrekord(ident)[0])
            assert response.status_code == 201
            bodies.append(base64.b64decode(next(iter(response.get_json().values()))["body"]))
            root = speclient.root_of([speclient.leaf_hash(b) for b in bodies])
            for hint in (1, size - 1, size):
                for i in range(size):
                    svc.log._size_hint = hint
                    inc = svc.log.entry_by_index(i)
                    assert inc.head.size == size and inc.head.root_hash == root
                    assert speclient.root_from_inclusion(i, size, speclient.leaf_hash(bodies[i]), inc.proof) == root
    finally:
        svc.engine.dispose()


def test_head_and_cosignatures_is_the_latest_head_and_its_lines_by_witness(settings: Settings) -> None:
    app = create_app(settings)
    client = app.test_client()
    ident = speclient.make_identity("reader@example.com")
    log, engine = app.extensions["tlog"].log, app.extensions["tlog"].engine
    try:
        assert client.post("/api/v1/log/entries", json=speclient.hashedrekord(ident)[0]).status_code == 201
        with store.reading(engine) as r:
            head = r.latest_head(log.tree)
            assert head is not None and head.size == 1
            assert r.head_and_cosignatures(log.tree) == (head, [])
            assert r.head_and_cosignatures(log.tree + 100) == (None, [])
        with engine.begin() as conn:
            store.insert_cosignature(conn, log.tree, 1, "zeta+01", "— zeta line", 1)
            store.insert_cosignature(conn, log.tree, 1, "alpha+02", "— alpha line", 2)
            store.insert_cosignature(conn, log.tree, 0, "beta+03", "— an older head's line", 3)
            expected = store.cosignature_lines(conn, log.tree, 1)
        assert expected == ["— alpha line", "— zeta line"]
        with store.reading(engine) as r:
            assert r.head_and_cosignatures(log.tree) == (head, expected)
        assert client.post("/api/v1/log/entries", json=speclient.hashedrekord(ident)[0]).status_code == 201
        with store.reading(engine) as r:
            newer = r.latest_head(log.tree)
            assert newer is not None and r.head_and_cosignatures(log.tree) == (newer, [])  # none for size 2 yet
    finally:
        engine.dispose()
