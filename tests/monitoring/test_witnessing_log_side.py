"""A real `tlog serve --witnesses` collecting cosignatures from a real witness over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

import speclient
from conftest import LiveServer
from monitor.witness import load_or_create_key, vkey
from witness_testlib import WitnessServer
from tlog.api.state import Services
from tlog.checkpoint import open_checkpoint
from tlog.config import Settings
from tlog.note import verifier_from_vkey

pytestmark = pytest.mark.slow


@pytest.fixture
def witnessed(tmp_path: Path, settings: Settings) -> Iterator[tuple[LiveServer, WitnessServer]]:
    # Create the log first to learn its vkeys, as an operator would from `tlog info`.
    svc = Services.open(settings, migrate=True)
    log_vkeys = svc.log.vkeys
    svc.engine.dispose()
    witness = WitnessServer(tmp_path / "witness", [log_vkeys[1]])  # the Ed25519 key
    witnesses = tmp_path / "witnesses.txt"
    witnesses.write_text(f"# test witness\n{witness.url} {vkey(witness.key)}\n")
    server = LiveServer(settings, extra_args=("--witnesses", str(witnesses))).start()
    try:
        yield server, witness
    finally:
        server.stop()
        witness.stop()


def wait_for_cosigned(url: str, size: int, witness_vkey: str, timeout: float = 20) -> str:
    verifier = verifier_from_vkey(witness_vkey)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = requests.get(url + "/checkpoint", timeout=10).text
        cp, _, verified = open_checkpoint(note, [verifier]) if verifier.name in note else (None, None, [])
        if cp is not None and cp.size == size and verified:
            return note
        time.sleep(0.2)
    raise AssertionError(f"no cosigned checkpoint of size {size} within {timeout}s: {note!r}")


def test_checkpoints_carry_witness_cosignatures(witnessed, settings) -> None:  # type: ignore[no-untyped-def]
    server, witness = witnessed
    key = speclient.LogKey.from_pem(requests.get(server.url + "/api/v1/log/publicKey").content)
    wait_for_cosigned(server.url, 0, vkey(witness.key))  # the empty tree is witnessed too
    expected = 0
    for batch in (3, 4):
        speclient.submit_many(server.url, batch, f"w{batch}@example.com")
        expected += batch
        note = wait_for_cosigned(server.url, expected, vkey(witness.key))
        # Still a valid Rekor-style checkpoint for sigstore clients.
        assert speclient.verify_checkpoint(note, key).size == expected
    info = requests.get(server.url + "/api/v1/log").json()
    assert witness.key.name in info["signedTreeHead"]
    # The cosignatures are stored append-only.
    svc = Services.open(settings, migrate=False)
    try:
        with svc.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM cosignatures")).scalar_one() >= 3
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with svc.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM cosignatures"))
    finally:
        svc.engine.dispose()


def test_a_down_witness_does_not_stop_the_log(tmp_path: Path, settings: Settings) -> None:
    witnesses = tmp_path / "witnesses.txt"
    unused = load_or_create_key(tmp_path / "w", name="witness.test/down")
    witnesses.write_text(f"http://127.0.0.1:9 {vkey(unused)}\n")
    server = LiveServer(settings, extra_args=("--witnesses", str(witnesses))).start()
    try:
        acknowledged = speclient.submit_many(server.url, 3, "d@example.com")
        assert len(acknowledged) == 3
        note = requests.get(server.url + "/checkpoint").text
        assert "witness.test/down" not in note
    finally:
        server.stop()
