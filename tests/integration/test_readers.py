"""The hot-path readers (tlog.storage.store.DriverReader) agree with the Core reads, on both databases."""

from __future__ import annotations

import speclient

from tlog.api.app import create_app
from tlog.config import Settings
from tlog.storage import store


def test_head_and_entry_is_the_latest_head_and_the_entry_it_includes(settings: Settings) -> None:
    app = create_app(settings)
    client = app.test_client()
    ident = speclient.make_identity("reader@example.com")
    bodies = [speclient.hashedrekord(ident)[0], speclient.dsse(ident, {"_type": "x", "subject": []}), speclient.hashedrekord(ident)[0]]
    for body in bodies:
        assert client.post("/api/v1/log/entries", json=body).status_code == 201
    log, engine = app.extensions["tlog"].log, app.extensions["tlog"].engine
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
    finally:
        engine.dispose()
