"""Each entry's SET is signed once, at integration, stored with it, and served from storage.

On SQLite and PostgreSQL, with real signatures, every SET verified by the
independent spec client. ECDSA signatures are randomised, so SETs that are
byte-identical across responses were read, not signed again; SETs that
differ between two reads of one entry were signed on the fly.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import sqlalchemy as sa

import speclient
from conftest import LiveServer
from tlog import bulk
from tlog.api.app import create_app
from tlog.config import Settings
from tlog.storage import db

#: The columns of ``entries`` as revisions 0001-0004 made them.
COLUMNS_0004 = ["tree", "log_index", "leaf_hash", "body", "integrated_time"]


def set_of(log_entry: dict[str, Any]) -> str:
    """The base64 SET of a Rekor LogEntry ``{uuid: entry}``."""
    return str(next(iter(log_entry.values()))["verification"]["signedEntryTimestamp"])


def stored_sets(engine: sa.Engine) -> dict[int, bytes | None]:
    """The SET column of every entry, by log index, read with plain SQL."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT log_index, signed_entry_timestamp FROM entries ORDER BY log_index"))
        return {i: None if s is None else bytes(s) for i, s in rows}


def triggers_on_entries(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'entries' ORDER BY name"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'entries'::regclass AND NOT tgisinternal ORDER BY tgname"
        return list(conn.execute(sa.text(sql)).scalars())


def submit(client, n: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """``n`` fresh hashedrekord entries and a dsse one, through the API; their 201 bodies."""
    ident = speclient.make_identity("set@example.com")
    requests_ = [speclient.hashedrekord(ident)[0] for _ in range(n)]
    requests_.append(speclient.dsse(ident, {"_type": "https://in-toto.io/Statement/v1", "subject": []}))
    out = []
    for req in requests_:
        resp = client.post("/api/v1/log/entries", json=req)
        assert resp.status_code == 201, resp.get_json()
        out.append(resp.get_json())
    return out


def reads_of(client, index: int, uuid: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The entry as every route that returns a LogEntry serves it."""
    got = [
        client.get(f"/api/v1/log/entries?logIndex={index}").get_json(),
        client.get(f"/api/v1/log/entries/{uuid}").get_json(),
        client.get(f"/api/v1/log/entries/{uuid[16:]}").get_json(),
    ]
    for query in ({"entryUUIDs": [uuid]}, {"logIndexes": [index]}):
        (one,) = client.post("/api/v1/log/entries/retrieve", json=query).get_json()
        got.append(one)
    return got


@pytest.fixture
def log_key(client) -> speclient.LogKey:  # type: ignore[no-untyped-def]
    return speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)


def test_the_set_of_the_201_is_stored_and_served_byte_for_byte(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    acked = submit(client, 3)
    stored = stored_sets(app.extensions["tlog"].engine)
    assert [base64.b64encode(s).decode() for s in stored.values() if s is not None] == [set_of(a) for a in acked]
    for index, ack in enumerate(acked):
        uuid, _entry, _cp = speclient.verify_entry(ack, log_key)
        for got in reads_of(client, index, uuid):
            speclient.verify_entry(got, log_key)
            assert next(iter(got)) == uuid and set_of(got) == set_of(ack)
    by_proposed = client.post("/api/v1/log/entries/retrieve", json={"logIndexes": [3, 0, 2, 1]}).get_json()
    assert [set_of(g) for g in by_proposed] == [set_of(acked[i]) for i in (3, 0, 2, 1)]


def test_entries_stored_without_a_set_get_one_signed_on_each_read(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    """The bulk loader stores no SET; the API signs one for each read of such an entry."""
    svc = app.extensions["tlog"]
    loaded = bulk.load(svc.log, bulk.synthetic_batches(3, 2, processes=1), progress=False)
    assert loaded.added == 3
    (acked,) = submit(client, 0)  # a submission after them still stores its own
    assert stored_sets(svc.engine) == {0: None, 1: None, 2: None, 3: base64.b64decode(set_of(acked))}
    for index in range(3):
        first, second = (client.get(f"/api/v1/log/entries?logIndex={index}").get_json() for _ in range(2))
        uuid, _entry, _cp = speclient.verify_entry(first, log_key)
        speclient.verify_entry(second, log_key)
        assert set_of(first) != set_of(second)  # signed for each read, as before SETs were stored
        for got in reads_of(client, index, uuid):
            speclient.verify_entry(got, log_key)
    for got in reads_of(client, 3, next(iter(acked))):
        assert set_of(got) == set_of(acked)


def test_bulk_load_with_sets_stores_them_and_reads_serve_them(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    """``tlog load --sets``: each loaded entry's SET is signed once and every read serves that one."""
    svc = app.extensions["tlog"]
    loaded = bulk.load(svc.log, bulk.synthetic_batches(3, 2, processes=1), progress=False, with_sets=True)
    assert loaded.added == 3
    stored = stored_sets(svc.engine)
    assert sorted(stored) == [0, 1, 2] and all(stored.values())
    for index in range(3):
        first, second = (client.get(f"/api/v1/log/entries?logIndex={index}").get_json() for _ in range(2))
        uuid, _entry, _cp = speclient.verify_entry(first, log_key)
        assert set_of(first) == set_of(second) == base64.b64encode(stored[index]).decode()  # type: ignore[arg-type]
        for got in reads_of(client, index, uuid):
            assert set_of(got) == set_of(first)


def test_a_stored_set_is_written_only_by_its_insert(app, client, log_key) -> None:  # type: ignore[no-untyped-def]
    (acked,) = submit(client, 0)
    engine = app.extensions["tlog"].engine
    for sql in ("UPDATE entries SET signed_entry_timestamp = :forged", "UPDATE entries SET signed_entry_timestamp = NULL"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql), {"forged": b"forged"} if ":forged" in sql else {})
    got = client.get("/api/v1/log/entries?logIndex=0").get_json()
    assert set_of(got) == set_of(acked)
    speclient.verify_entry(got, log_key)


def test_upgrade_from_0004_keeps_the_entries_and_signs_their_sets_on_reads(settings: Settings) -> None:
    """A 0004 database holding entries (made by downgrading, which 0005 allows) upgrades with NULL SETs."""
    app = create_app(settings)
    acked = submit(app.test_client(), 2)
    engine = app.extensions["tlog"].engine
    triggers = triggers_on_entries(engine)
    assert triggers  # the append-only ones of revision 0001
    engine.dispose()

    engine = db.create_engine(settings.resolved_database_url)
    try:
        db.downgrade(engine, "0004")
        assert [c["name"] for c in sa.inspect(engine).get_columns("entries")] == COLUMNS_0004
        assert not db.schema_is_current(engine)
        assert triggers_on_entries(engine) == triggers
        with pytest.raises(RuntimeError, match="append-only"):
            db.downgrade(engine, "0003")  # the earlier revisions would lose history
        db.upgrade(engine)
        assert db.schema_is_current(engine)
        assert triggers_on_entries(engine) == triggers
        assert stored_sets(engine) == {0: None, 1: None, 2: None}
    finally:
        engine.dispose()

    app = create_app(settings)
    try:
        client = app.test_client()
        key = speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)
        for index, ack in enumerate(acked):
            got = client.get(f"/api/v1/log/entries?logIndex={index}").get_json()
            uuid, entry, _cp = speclient.verify_entry(got, key)
            before = next(iter(ack.values()))
            assert (uuid, entry["body"], entry["integratedTime"]) == (next(iter(ack)), before["body"], before["integratedTime"])
            assert set_of(got) != set_of(ack)  # the stored one went with the column; this one is fresh
        (new,) = submit(client, 0)
        assert stored_sets(app.extensions["tlog"].engine)[3] == base64.b64decode(set_of(new))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), app.extensions["tlog"].engine.begin() as conn:
            conn.execute(sa.text("UPDATE entries SET signed_entry_timestamp = NULL"))
    finally:
        app.extensions["tlog"].engine.dispose()


def test_the_writer_process_hands_the_stored_set_to_the_worker(settings: Settings) -> None:
    """Under ``tlog serve`` the writer signs and stores the SET; the worker's 201 carries that one."""
    server = LiveServer(settings, workers=1, threads=4).start()
    try:
        session = requests.Session()
        key = speclient.LogKey.from_pem(session.get(server.url + "/api/v1/log/publicKey", timeout=10).content)
        ident = speclient.make_identity()
        for index in range(3):
            resp = session.post(server.url + "/api/v1/log/entries", json=speclient.hashedrekord(ident)[0], timeout=30)
            assert resp.status_code == 201, resp.text
            speclient.verify_entry(resp.json(), key)
            got = session.get(server.url + "/api/v1/log/entries", params={"logIndex": index}, timeout=10).json()
            speclient.verify_entry(got, key)
            assert set_of(got) == set_of(resp.json())
    finally:
        server.stop()
