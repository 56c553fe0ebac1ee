"""dsse entries keep their DSSE payload, returned as Rekor v1's ``attestation.data``.

On SQLite and PostgreSQL: real signed submissions over the API, read back by
every route that returns a LogEntry (each response verified by the independent
``tests/speclient.py``); the payload limit refuses without writing anything;
an entry and its attestation are written in one transaction; the table is
append-only; a restarted server and the bulk loader keep the payloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import speclient
from conftest import LiveServer
from tlog import entries
from tlog.api.app import create_app
from tlog.config import Settings
from tlog.errors import Conflict
from tlog.sequencer import integrate
from tlog.storage.models import Base

IN_TOTO = "application/vnd.in-toto+json"


def statement(digest: str) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "pkg-1.0-py3-none-any.whl", "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"builder": {"id": "https://ci.example.com"}},
    }


def dsse_request(identity: speclient.Identity, payload: bytes, payload_type: str = IN_TOTO) -> dict[str, Any]:
    """A dsse submission over any payload bytes (speclient.dsse only signs JSON statements)."""
    ptype = payload_type.encode()
    pae = b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(payload), payload)
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"sig": base64.b64encode(identity.key.sign(pae, ec.ECDSA(hashes.SHA256()))).decode()}],
    }
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(envelope), "verifiers": [base64.b64encode(identity.cert_pem).decode()]}},
    }


def sent_payload(request: dict[str, Any]) -> bytes:
    """The payload a dsse request carries, decoded here without the server's code."""
    return base64.b64decode(json.loads(request["spec"]["proposedContent"]["envelope"])["payload"])


def check_entry(log_entry: dict[str, Any], key: speclient.LogKey, payload: bytes | None) -> dict[str, Any]:
    """Verify the LogEntry, then its attestation: the payload for dsse (hashed by the body), none otherwise."""
    _uuid, entry, _cp = speclient.verify_entry(log_entry, key)
    body = json.loads(base64.b64decode(entry["body"]))
    if payload is None:
        assert body["kind"] == "hashedrekord" and "attestation" not in entry
        return entry
    assert body["kind"] == "dsse"
    assert set(entry["attestation"]) == {"data"}
    data = base64.b64decode(entry["attestation"]["data"], validate=True)
    assert data == payload
    assert hashlib.sha256(data).hexdigest() == body["spec"]["payloadHash"]["value"]
    return entry


def table_rows(engine: sa.Engine) -> dict[str, int]:
    """Row counts of every table in the database, whoever created it."""
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in names}


@pytest.fixture
def log_key(client) -> speclient.LogKey:  # type: ignore[no-untyped-def]
    return speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)


def test_every_route_returns_the_payload_of_dsse_entries_only(client, log_key) -> None:  # type: ignore[no-untyped-def]
    alice = speclient.make_identity("alice@example.com")
    in_toto = speclient.dsse(alice, statement("ab" * 32))  # shaped as sigstore-python sends it
    raw = dsse_request(alice, b"\x00\xff not UTF-8, not JSON \x80\r\n", "application/octet-stream")
    hashed, _digest = speclient.hashedrekord(alice)
    submitted = [(in_toto, sent_payload(in_toto)), (hashed, None), (raw, sent_payload(raw))]

    uuids = []
    for index, (req, payload) in enumerate(submitted):
        resp = client.post("/api/v1/log/entries", json=req)
        assert resp.status_code == 201, resp.get_json()
        assert check_entry(resp.get_json(), log_key, payload)["logIndex"] == index
        uuids.append(resp.headers["ETag"])

    for index, ((req, payload), uuid) in enumerate(zip(submitted, uuids)):
        for url in (f"/api/v1/log/entries?logIndex={index}", f"/api/v1/log/entries/{uuid}", f"/api/v1/log/entries/{uuid[16:]}"):
            resp = client.get(url)
            assert resp.status_code == 200, url
            check_entry(resp.get_json(), log_key, payload)

    by_index = {i: p for i, (_, p) in enumerate(submitted)}
    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        for query in ({"logIndexes": [2, 0, 1]}, {"entryUUIDs": [uuids[1], uuids[2], uuids[0]]}, {"entries": [r for r, _ in submitted]}):
            found = client.post(path, json=query).get_json()
            assert len(found) == 3, query
            for log_entry in found:  # each entry with its own payload, not a neighbour's
                (entry,) = log_entry.values()
                check_entry(log_entry, log_key, by_index[entry["logIndex"]])

    # The monitor's route: the in-toto subject is readable from the log alone.
    (entry,) = client.get("/api/v1/log/entries?logIndex=0").get_json().values()
    subject = json.loads(base64.b64decode(entry["attestation"]["data"]))["subject"]
    assert subject[0]["digest"] == {"sha256": "ab" * 32}


def test_payload_over_the_limit_is_refused_and_nothing_is_written(settings: Settings) -> None:
    # The request limit is raised so that the default attestation limit (100 KiB, as Rekor's) is the one that bites.
    app = create_app(settings.replace(max_request_bytes=512 * 1024))
    try:
        client, engine = app.test_client(), app.extensions["tlog"].engine
        key = speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)
        bob = speclient.make_identity("bob@example.com")
        limit = Settings().max_attestation_bytes
        assert limit == 100 * 1024

        at_limit = dsse_request(bob, os.urandom(limit), "application/octet-stream")
        resp = client.post("/api/v1/log/entries", json=at_limit)
        assert resp.status_code == 201, resp.get_json()
        check_entry(resp.get_json(), key, sent_payload(at_limit))

        before = (table_rows(engine), client.get("/api/v1/log").get_json())
        for payload in (os.urandom(limit + 1), json.dumps({**statement("cd" * 32), "pad": "x" * limit}).encode()):
            resp = client.post("/api/v1/log/entries", json=dsse_request(bob, payload))
            assert resp.status_code == 413
            assert resp.get_json() == {
                "code": 413,
                "message": f"spec.proposedContent.envelope.payload: the DSSE payload is {len(payload)} bytes; "
                f"this log stores attestations of at most {limit} bytes",
            }
        assert (table_rows(engine), client.get("/api/v1/log").get_json()) == before
        assert client.post("/api/v1/index/retrieve", json={"hash": "sha256:" + "cd" * 32}).get_json() == []
    finally:
        app.extensions["tlog"].engine.dispose()


def test_payload_type_with_nul_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL text cannot hold NUL: stored, it would fail the whole batch, so it is refused up front."""
    resp = client.post("/api/v1/log/entries", json=dsse_request(speclient.make_identity(), b"{}", "application/x\u0000y"))
    assert resp.status_code == 400
    assert resp.get_json()["message"] == "spec.proposedContent.envelope.payloadType: contains NUL, which the log cannot store"
    assert client.get("/api/v1/log").get_json()["treeSize"] == 0


def test_entry_and_attestation_are_written_in_one_transaction(app) -> None:  # type: ignore[no-untyped-def]
    tlog = app.extensions["tlog"].log
    carol = speclient.make_identity("carol@example.com")
    first = entries.canonicalize(speclient.dsse(carol, statement("01" * 32)))
    hashed = entries.canonicalize(speclient.hashedrekord(carol)[0])
    second = entries.canonicalize(dsse_request(carol, b"second payload", "text/plain"))

    # One batch mixing kinds, with a duplicate inside: each attestation lands on its own entry.
    results = integrate(tlog, [first, hashed, first, second])
    assert [r.log_index if isinstance(r, Conflict) else r.entry.log_index for r in results] == [0, 1, 0, 2]
    stored = {inc.entry.log_index: inc.entry.attestation for inc in tlog.entries([0, 1, 2])}
    assert stored[1] is None
    assert stored[0] is not None and (stored[0].payload_type, stored[0].data) == (IN_TOTO, first.attestation)
    assert stored[2] is not None and (stored[2].payload_type, stored[2].data) == ("text/plain", b"second payload")

    # A stray row where the next attestation goes makes that insert fail after
    # the entries' insert succeeded: the whole batch must be rolled back.
    engine = tlog.engine
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO attestations (tree, log_index, payload_type, data) VALUES (:t, 3, 'x', :d)"),
            {"t": tlog.tree, "d": b"stray"},
        )
    before = table_rows(engine)
    third = entries.canonicalize(speclient.dsse(carol, statement("02" * 32)))
    with pytest.raises(sa.exc.IntegrityError):
        integrate(tlog, [third, entries.canonicalize(speclient.hashedrekord(carol)[0])])
    assert table_rows(engine) == before
    assert tlog.latest_head().size == 3


def test_attestations_are_append_only(app, client, log_key, database_url: str) -> None:  # type: ignore[no-untyped-def]
    req = speclient.dsse(speclient.make_identity(), statement("ef" * 32))
    assert client.post("/api/v1/log/entries", json=req).status_code == 201
    engine = app.extensions["tlog"].engine
    tampering = ["UPDATE attestations SET data = :d", "DELETE FROM attestations"]
    if database_url.startswith("postgresql"):
        tampering.append("TRUNCATE attestations")  # bypasses row triggers; a statement trigger refuses it
    for sql in tampering:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql), {"d": b"forged"} if ":d" in sql else {})
    check_entry(client.get("/api/v1/log/entries?logIndex=0").get_json(), log_key, sent_payload(req))


def test_served_limit_and_restart(settings: Settings) -> None:
    """``tlog serve --max-attestation-bytes`` over real HTTP, and the payloads survive a restart."""
    import requests

    dave = speclient.make_identity("dave@example.com")
    small = dsse_request(dave, os.urandom(4096), "application/octet-stream")
    server = LiveServer(settings, workers=1, threads=4, extra_args=("--max-attestation-bytes", "4096")).start()
    try:
        resp = requests.post(server.url + "/api/v1/log/entries", json=small, timeout=30)
        assert resp.status_code == 201, resp.text
        refused = requests.post(server.url + "/api/v1/log/entries", json=dsse_request(dave, os.urandom(4097)), timeout=30)
        assert refused.status_code == 413 and "at most 4096 bytes" in refused.json()["message"], refused.text
    finally:
        server.stop()

    server = LiveServer(settings, workers=1, threads=4).start()
    try:
        key = speclient.LogKey.from_pem(requests.get(server.url + "/api/v1/log/publicKey", timeout=10).content)
        assert requests.get(server.url + "/api/v1/log", timeout=10).json()["treeSize"] == 1
        resp = requests.get(server.url + "/api/v1/log/entries", params={"logIndex": 0}, timeout=10)
        check_entry(resp.json(), key, sent_payload(small))
    finally:
        server.stop()


def test_serve_option_defaults_to_100_kib() -> None:
    from tlog.cli import main

    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--max-attestation-bytes" in help_text and "102400" in help_text


def test_bulk_loaded_dsse_entries_keep_their_payload(settings: Settings, tmp_path: Path) -> None:
    erin = speclient.make_identity("erin@example.com")
    proposed = [speclient.dsse(erin, statement(f"{i:02x}" * 32)) for i in range(3)]
    proposed.insert(1, speclient.hashedrekord(erin)[0])
    source = tmp_path / "entries.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in proposed))
    cmd = [sys.executable, "-m", "tlog.cli", "load", "--data-dir", str(settings.data_dir), "--origin", str(settings.origin),
           "--source", str(source), "--batch", "2", "--jobs", "2", "--no-progress"]  # fmt: skip
    if settings.database_url:
        cmd += ["--database-url", settings.database_url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    app = create_app(settings)
    try:
        client = app.test_client()
        key = speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)
        for index, req in enumerate(proposed):
            payload = sent_payload(req) if req["kind"] == "dsse" else None
            check_entry(client.get(f"/api/v1/log/entries?logIndex={index}").get_json(), key, payload)
    finally:
        app.extensions["tlog"].engine.dispose()


def test_migrations_build_exactly_the_models(app) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["tlog"].engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
