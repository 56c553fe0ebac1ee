"""The witness's durable identity and state: key and name files, restart,
atomic check-and-update across threads and processes, persist-before-reply."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from witness_testlib import NOW, FakeLog, body, fixed_clock

from monitor.witness import (
    KEY_FILE,
    NAME_FILE,
    STATE_FILE,
    Conflict,
    StoredCheckpoint,
    WitnessConfig,
    WitnessKey,
    WitnessKeyError,
    WitnessState,
    load_or_create_key,
    origin_hash,
    process_add_checkpoint,
    vkey,
)
from tlog.keys import KeyFileError, write_private_key
from tlog.note import CosignatureV1Verifier, verifier_from_vkey

HERE = Path(__file__).resolve().parent


# --- Key and name ---------------------------------------------------------


def test_key_is_created_0600_and_stable(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads((tmp_path / NAME_FILE).read_text()) == {"name": "witness.example/w1"}
    again = load_or_create_key(tmp_path)  # name comes from witness.json now
    assert again.name == "witness.example/w1"
    assert vkey(again) == vkey(key)
    parsed = verifier_from_vkey(vkey(key))
    assert isinstance(parsed, CosignatureV1Verifier)
    assert parsed.key_id == key.key_id


def test_default_name_is_schemeless_and_persisted(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert key.name.startswith("witness.")
    assert "+" not in key.name and " " not in key.name
    assert load_or_create_key(tmp_path).vkey == key.vkey


def test_a_different_name_later_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, name="witness.example/w1")
    with pytest.raises(WitnessKeyError, match="differs"):
        load_or_create_key(tmp_path, name="witness.example/w2")


def test_invalid_name_is_refused_and_not_persisted(tmp_path: Path) -> None:
    for bad in ("has space", "has+plus", ""):
        with pytest.raises(WitnessKeyError):
            load_or_create_key(tmp_path, name=bad)
    assert not (tmp_path / NAME_FILE).exists()


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    write_private_key(tmp_path / KEY_FILE, Ed25519PrivateKey.generate())
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(KeyFileError, match="accessible by other users"):
        load_or_create_key(tmp_path, name="w.example")


def test_db_settings(tmp_path: Path) -> None:
    state = WitnessState.open(tmp_path)
    assert state.path == tmp_path / STATE_FILE
    with sqlite3.connect(state.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with state._connect() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# --- Restart --------------------------------------------------------------


def test_restart_keeps_state_and_identity(tmp_path: Path) -> None:
    log = FakeLog()
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    state = WitnessState.open(tmp_path)
    process_add_checkpoint(body(0, [], log.checkpoint(10)), config, state, key, fixed_clock())
    del state, key

    # "Restart": new objects over the same directory.
    key2 = load_or_create_key(tmp_path)
    state2 = WitnessState.open(tmp_path)
    assert key2.name == "witness.example/w1"
    stored = state2.latest(log.origin)
    assert stored is not None and (stored.size, stored.root_hash) == (10, log.root(10))
    assert state2.latest_by_origin_hash(origin_hash(log.origin)) == stored
    with pytest.raises(Conflict) as err:
        process_add_checkpoint(body(0, [], log.checkpoint(12)), config, state2, key2, fixed_clock())
    assert err.value.size == 10
    process_add_checkpoint(body(10, log.proof(10, 12), log.checkpoint(12)), config, state2, key2, fixed_clock())


def test_the_database_refuses_a_rollback_even_if_the_code_asked(tmp_path: Path) -> None:
    state = WitnessState.open(tmp_path)
    row = StoredCheckpoint("o", 10, b"\x01" * 32, b"note", NOW)
    with state.transaction() as tx:
        tx.put(row)
    with pytest.raises(sqlite3.IntegrityError, match="roll back"):
        with state.transaction() as tx:
            tx.put(StoredCheckpoint("o", 9, b"\x02" * 32, b"note", NOW))
    assert state.latest("o") == row


def test_a_failure_before_commit_stores_nothing_and_returns_no_cosignature(tmp_path: Path) -> None:
    log = FakeLog()
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    state = WitnessState.open(tmp_path)

    def crash() -> None:
        raise OSError("disk on fire")

    state._testing_before_update = crash
    with pytest.raises(OSError):
        process_add_checkpoint(body(0, [], log.checkpoint(3)), config, state, key, fixed_clock())
    assert WitnessState.open(tmp_path).latest(log.origin) is None


# --- Atomicity ------------------------------------------------------------


def _race(tmp_path: Path, *, writers: int, sizes_per_writer: int, stall: float) -> None:
    """Writers (each with its own WitnessState over one file, as separate
    workers would have) push interleaved increasing sizes; each learns the
    current size from 409s and proves consistency from it."""
    log = FakeLog().grow_to(writers * sizes_per_writer + 1)
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    WitnessState.open(tmp_path)  # create the schema once
    accepted: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def writer(w: int) -> None:
        try:
            state = WitnessState.open(tmp_path)
            if stall:
                state._testing_before_update = lambda: time.sleep(stall)
            checker = WitnessState.open(tmp_path)
            targets = [1 + w + writers * i for i in range(sizes_per_writer)]
            known = 0
            seen: list[int] = []
            barrier.wait()
            for target in targets:
                while known < target:
                    try:
                        process_add_checkpoint(
                            body(known, log.proof(known, target), log.checkpoint(target)),
                            config, state, key, fixed_clock(),
                        )  # fmt: skip
                    except Conflict as exc:
                        seen.append(exc.size)
                        known = exc.size
                        continue
                    # The reply came back: the state must already say >= target.
                    stored = checker.latest(log.origin)
                    assert stored is not None and stored.size >= target
                    accepted.append(target)
                    known = target
            # What this writer saw of the stored size only ever went up.
            assert seen == sorted(seen), seen
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    stored = WitnessState.open(tmp_path).latest(log.origin)
    assert accepted, "nothing was accepted"
    assert stored is not None
    assert stored.size == max(accepted) == writers * sizes_per_writer
    assert stored.root_hash == log.root(stored.size)


def test_concurrent_threads_never_roll_back(tmp_path: Path) -> None:
    _race(tmp_path, writers=8, sizes_per_writer=12, stall=0)


def test_concurrent_threads_with_a_stall_inside_the_transaction(tmp_path: Path) -> None:
    """The stall sits between the size check and the write, the exact window
    in which the spec's rollback race happens without atomicity."""
    _race(tmp_path, writers=6, sizes_per_writer=4, stall=0.005)


_WORKER = """
import pathlib, sys, time
sys.path.insert(0, {here!r})
from witness_testlib import FakeLog, body, fixed_clock
from monitor.witness import Conflict, WitnessConfig, WitnessState, load_or_create_key, process_add_checkpoint

w, writers, per, state_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
log = FakeLog().grow_to(writers * per + 1)
config = WitnessConfig.from_vkeys([log.vkey])
key = load_or_create_key(state_dir)
state = WitnessState.open(state_dir)
state._testing_before_update = lambda: time.sleep(0.02)
checker = WitnessState.open(state_dir)
known, seen, accepted = 0, [], []
# Start together: every worker announces itself, then waits for the others.
pathlib.Path(state_dir, f"ready.{{w}}").touch()
while len(list(pathlib.Path(state_dir).glob("ready.*"))) < writers:
    time.sleep(0.001)
for target in [1 + w + writers * i for i in range(per)]:
    while known < target:
        try:
            process_add_checkpoint(body(known, log.proof(known, target), log.checkpoint(target)),
                                   config, state, key, fixed_clock())
        except Conflict as exc:
            seen.append(exc.size)
            known = exc.size
            continue
        assert checker.latest(log.origin).size >= target
        accepted.append(target)
        known = target
assert seen == sorted(seen), seen
print(max(accepted) if accepted else 0)
"""


def test_concurrent_processes_never_roll_back(tmp_path: Path) -> None:
    writers, per = 4, 8
    load_or_create_key(tmp_path, name="witness.example/w1")
    WitnessState.open(tmp_path)
    script = _WORKER.format(here=str(HERE))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(w), str(writers), str(per), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(writers)
    ]
    maxima = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        maxima.append(int(out))
    stored = WitnessState.open(tmp_path).latest(FakeLog().origin)
    assert stored is not None
    assert stored.size == max(maxima) == writers * per


# The spec's race, step by step: request A (size N) has passed its checks and
# not yet written; request B (size N+K) arrives. Without atomicity B is
# cosigned, then A's write rolls the state back to N. Here A runs in another
# process and holds its transaction open until B is done or a timeout passes.

_STALLED_A = """
import pathlib, sys, time
sys.path.insert(0, {here!r})
from witness_testlib import FakeLog, body, fixed_clock
from monitor.witness import WitnessConfig, WitnessState, load_or_create_key, process_add_checkpoint

state_dir = pathlib.Path(sys.argv[1])
log = FakeLog()
state = WitnessState.open(state_dir)

def stall():
    (state_dir / "a-in-transaction").touch()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not (state_dir / "b-done").exists():
        time.sleep(0.005)

state._testing_before_update = stall
config = WitnessConfig.from_vkeys([log.vkey])
process_add_checkpoint(body(0, [], log.checkpoint(10)), config, state, load_or_create_key(state_dir), fixed_clock())
"""


def test_the_specs_rollback_race_across_processes(tmp_path: Path) -> None:
    log = FakeLog()
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    state = WitnessState.open(tmp_path)
    a = subprocess.Popen(
        [sys.executable, "-c", _STALLED_A.format(here=str(HERE)), str(tmp_path)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "a-in-transaction").exists():
            assert a.poll() is None and time.monotonic() < deadline, "A never reached its transaction"
            time.sleep(0.005)
        # B: old 0, size 20. A holds the write transaction, so B waits for it
        # and then learns that the witness is at 10.
        with pytest.raises(Conflict) as err:
            process_add_checkpoint(body(0, [], log.checkpoint(20)), config, state, key, fixed_clock())
        assert err.value.size == 10
        process_add_checkpoint(body(10, log.proof(10, 20), log.checkpoint(20)), config, state, key, fixed_clock())
        (tmp_path / "b-done").touch()
    finally:
        _, stderr = a.communicate(timeout=60)
    assert a.returncode == 0, stderr.decode()
    stored = state.latest(log.origin)
    assert stored is not None and stored.size == 20


def test_the_specs_rollback_race_across_threads(tmp_path: Path) -> None:
    log = FakeLog()
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/w1")
    state_a, state_b = WitnessState.open(tmp_path), WitnessState.open(tmp_path)
    a_in_transaction, b_done = threading.Event(), threading.Event()

    def stall() -> None:
        a_in_transaction.set()
        b_done.wait(timeout=1.0)

    state_a._testing_before_update = stall
    results: list[object] = []

    def request_a() -> None:
        try:
            results.append(
                process_add_checkpoint(body(0, [], log.checkpoint(10)), config, state_a, key, fixed_clock())
            )
        except BaseException as exc:  # noqa: BLE001 - checked below
            results.append(exc)

    thread = threading.Thread(target=request_a)
    thread.start()
    assert a_in_transaction.wait(timeout=30)
    try:
        with pytest.raises(Conflict) as err:
            process_add_checkpoint(body(0, [], log.checkpoint(20)), config, state_b, key, fixed_clock())
        assert err.value.size == 10
    finally:
        b_done.set()
        thread.join()
    assert isinstance(results[0], bytes), results
    stored = state_b.latest(log.origin)
    assert stored is not None and stored.size == 10


def test_witness_key_object_validates_its_name() -> None:
    with pytest.raises(WitnessKeyError):
        WitnessKey("bad name", Ed25519PrivateKey.generate())
