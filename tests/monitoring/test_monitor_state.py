"""monitor.state: the durable per-origin state and its compare-and-swap."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from monitor.state import STATE_FILE, LogState, StateError, StateStore
from tlog.merkle import EMPTY_ROOT, CompactRange, hash_leaf


def state_at(size: int, *, origin: str = "example.com/log", branch: bytes = b"a", url: str = "http://log") -> LogState:
    cr = CompactRange()
    cr.extend([hash_leaf(branch + b"%d" % i) for i in range(size)])
    return LogState(
        origin=origin,
        url=url,
        size=size,
        root_hash=cr.root(),
        checkpoint=f"{origin}\n{size}\n...\n",
        vkeys=("example.com/log+00000000+AA==",),
        edge=tuple(cr.hashes),
        entries_audited=size,
    )


def test_first_write_needs_expected_none(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.get("example.com/log") is None
    assert not store.compare_and_swap("example.com/log", 0, state_at(5))
    assert store.compare_and_swap("example.com/log", None, state_at(5))
    got = store.get("example.com/log")
    assert got == state_at(5)
    assert got is not None and got.updated_at > 0
    # A second "first write" loses: somebody already created the row.
    assert not store.compare_and_swap("example.com/log", None, state_at(6))


def test_advances_only_from_the_expected_size(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.compare_and_swap("example.com/log", None, state_at(5))
    assert not store.compare_and_swap("example.com/log", 4, state_at(9))  # stale expectation
    assert store.compare_and_swap("example.com/log", 5, state_at(9))
    assert store.get("example.com/log") == state_at(9)


def test_never_moves_backwards_or_to_another_root(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.compare_and_swap("example.com/log", None, state_at(9))
    assert not store.compare_and_swap("example.com/log", 9, state_at(5))
    assert not store.compare_and_swap("example.com/log", 9, state_at(9, branch=b"fork"))
    assert store.compare_and_swap("example.com/log", 9, state_at(9, url="http://mirror"))  # same tree, new URL
    got = store.get("example.com/log")
    assert got is not None and got.size == 9 and got.url == "http://mirror"


def test_rejects_a_state_whose_edge_does_not_fold_to_its_root(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    good = state_at(7)
    bad = LogState(**{**good.__dict__, "root_hash": b"\x00" * 32})
    with pytest.raises(ValueError, match="do not fold"):
        store.compare_and_swap(good.origin, None, bad)
    with pytest.raises(ValueError, match="origin"):
        store.compare_and_swap("other.example/log", None, good)
    with pytest.raises(ValueError, match="edge hashes"):
        LogState(**{**good.__dict__, "edge": good.edge[:-1]})


def test_empty_log_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    empty = LogState("e.example/log", "http://e", 0, EMPTY_ROOT, "cp", ())
    assert store.compare_and_swap("e.example/log", None, empty)
    got = store.get("e.example/log")
    assert got is not None and got.compact_range().end == 0 and got.edge == ()


def test_survives_reopening_and_lists_by_origin_and_url(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.compare_and_swap("b.example/log", None, state_at(3, origin="b.example/log", url="http://b"))
    store.compare_and_swap("a.example/log", None, state_at(4, origin="a.example/log", url="http://a"))
    again = StateStore(tmp_path)
    assert [s.origin for s in again.all()] == ["a.example/log", "b.example/log"]
    by_url = again.get_by_url("http://b")
    assert by_url is not None and by_url.origin == "b.example/log"
    assert again.get_by_url("http://nowhere") is None
    # The resumed edge continues the same tree as a fresh computation.
    resumed = again.get("a.example/log")
    assert resumed is not None
    cr = resumed.compact_range()
    cr.extend([hash_leaf(b"a%d" % i) for i in range(4, 10)])
    assert cr.root() == state_at(10).root_hash


def test_file_is_wal_with_one_logs_table(tmp_path: Path) -> None:
    StateStore(tmp_path)
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables == ["logs"]
    finally:
        conn.close()


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    StateStore(tmp_path)
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="schema version 99"):
        StateStore(tmp_path)


def test_concurrent_swaps_from_one_size_have_one_winner(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.compare_and_swap("example.com/log", None, state_at(2))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def swap(n: int) -> None:
        barrier.wait()
        results.append(StateStore(tmp_path).compare_and_swap("example.com/log", 2, state_at(3 + n)))

    threads = [threading.Thread(target=swap, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
