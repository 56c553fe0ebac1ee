"""The monitor's durable state: per log origin, the last checkpoint it verified.

One SQLite file, ``<state-dir>/monitor.db``, with one row per origin in the
table ``logs``:

=================  ==========================================================
origin             the checkpoint origin (primary key)
url                where the log was last fetched from
size, root_hash    the verified tree (``root_hash`` is 32 raw bytes)
checkpoint         the signed checkpoint note that committed to that tree
vkeys              JSON list of C2SP vkeys pinned for the log
edge               the right edge of the verified tree: the hashes of
                   ``tlog.merkle.perfect_nodes(size)``, concatenated (at most
                   64 x 32 bytes), so that the next pass resumes the entry
                   audit at ``size`` instead of re-reading the log from 0
entries_audited    how many entries this monitor fetched and hashed, in total
updated_at         POSIX seconds of the last write
=================  ==========================================================

The only write is :meth:`StateStore.compare_and_swap`, one ``BEGIN
IMMEDIATE`` transaction that refuses to move a log backwards or to another
root at the same size. The file runs in WAL mode with ``synchronous=FULL``:
once ``compare_and_swap`` returns True the new state survives a power cut.
Each call opens its own connection, so a store may be shared by threads and
survives ``fork()`` (gunicorn).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tlog.merkle import EMPTY_ROOT, CompactRange, perfect_nodes

__all__ = ["STATE_FILE", "LogState", "StateError", "StateStore"]

STATE_FILE = "monitor.db"
_SCHEMA_VERSION = 1
_HASH = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin          TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    root_hash       BLOB NOT NULL CHECK (length(root_hash) = 32),
    checkpoint      TEXT NOT NULL,
    vkeys           TEXT NOT NULL,
    edge            BLOB NOT NULL,
    entries_audited INTEGER NOT NULL DEFAULT 0 CHECK (entries_audited >= 0),
    updated_at      REAL NOT NULL
)
"""
_COLUMNS = "origin, url, size, root_hash, checkpoint, vkeys, edge, entries_audited, updated_at"


class StateError(Exception):
    """The state file is unusable (newer schema, corrupt row)."""


@dataclass(frozen=True)
class LogState:
    """What the monitor has verified about one log.

    ``edge`` holds the hashes of ``perfect_nodes(size)`` (the compact range
    ``[0, size)``); :meth:`compact_range` rebuilds it. ``vkeys`` are the C2SP
    verifier keys pinned for the log, which every later checkpoint must be
    signed by.
    """

    origin: str
    url: str
    size: int
    root_hash: bytes
    checkpoint: str
    vkeys: tuple[str, ...]
    edge: tuple[bytes, ...] = ()
    entries_audited: int = 0
    updated_at: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"log state size {self.size} is negative")
        if len(self.root_hash) != _HASH:
            raise ValueError(f"log state root hash is {len(self.root_hash)} bytes, want {_HASH}")
        want = len(perfect_nodes(self.size))
        if len(self.edge) != want:
            raise ValueError(f"log state of size {self.size} needs {want} edge hashes, got {len(self.edge)}")

    def compact_range(self) -> CompactRange:
        """The compact range ``[0, size)``, ready to be extended with new leaves."""
        return CompactRange.from_hashes(0, self.size, self.edge)

    def with_url(self, url: str) -> LogState:
        """A copy fetched from another URL (the log moved, or a mirror)."""
        return replace(self, url=url)


class StateStore:
    """All logs' :class:`LogState` in ``<state_dir>/monitor.db``."""

    def __init__(self, state_dir: Path | str, *, busy_timeout: float = 30.0) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.state_dir / STATE_FILE
        self._busy_timeout = busy_timeout
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has schema version {version}; this tlog-monitor knows up to {_SCHEMA_VERSION}"
                )
            # WAL is a property of the file: set once, it sticks.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: no implicit transactions; we BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    # --- reads ---------------------------------------------------------------------------

    def get(self, origin: str) -> LogState | None:
        """The state of ``origin``, or None if it was never verified."""
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM logs WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else _state(row)

    def get_by_url(self, url: str) -> LogState | None:
        """The most recently updated state fetched from ``url``, or None."""
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM logs WHERE url = ? ORDER BY updated_at DESC LIMIT 1", (url,)
            ).fetchone()
        return None if row is None else _state(row)

    def all(self) -> list[LogState]:
        """Every log's state, by origin."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM logs ORDER BY origin").fetchall()
        return [_state(r) for r in rows]

    # --- the one write -------------------------------------------------------------------

    def compare_and_swap(self, origin: str, expected_size: int | None, new_state: LogState) -> bool:
        """Replace the state of ``origin`` with ``new_state`` if nobody moved it meanwhile.

        ``expected_size`` is the size the caller verified from (None: the log
        must not have a state yet). Returns False, writing nothing, if the
        stored size differs from it, if ``new_state`` would move the log
        backwards, or if it has the stored size but another root. Raises
        ``ValueError`` if ``new_state`` is not self-consistent (its edge does
        not fold to its root) or names another origin.
        """
        if new_state.origin != origin:
            raise ValueError(f"state for origin {new_state.origin!r} written under {origin!r}")
        expected_root = new_state.compact_range().root() if new_state.size else EMPTY_ROOT
        if expected_root != new_state.root_hash:
            raise ValueError(f"state of {origin!r}: edge hashes do not fold to the root hash")
        values = (
            origin,
            new_state.url,
            new_state.size,
            new_state.root_hash,
            new_state.checkpoint,
            json.dumps(list(new_state.vkeys)),
            b"".join(new_state.edge),
            new_state.entries_audited,
            time.time(),
        )
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT size, root_hash FROM logs WHERE origin = ?", (origin,)).fetchone()
                if row is None:
                    ok = expected_size is None
                else:
                    size, root = int(row[0]), bytes(row[1])
                    ok = (
                        expected_size == size
                        and new_state.size >= size
                        and (new_state.size > size or new_state.root_hash == root)
                    )
                if ok:
                    conn.execute(
                        f"INSERT INTO logs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (origin) DO UPDATE SET url = excluded.url, size = excluded.size, "
                        "root_hash = excluded.root_hash, checkpoint = excluded.checkpoint, "
                        "vkeys = excluded.vkeys, edge = excluded.edge, "
                        "entries_audited = excluded.entries_audited, updated_at = excluded.updated_at",
                        values,
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ok


def _state(row: Sequence[object]) -> LogState:
    origin, url, size, root, checkpoint, vkeys, edge, audited, updated = row
    raw_edge = bytes(edge)  # type: ignore[arg-type]
    if len(raw_edge) % _HASH:
        raise StateError(f"state of {origin!r}: edge is {len(raw_edge)} bytes, not a multiple of {_HASH}")
    try:
        return LogState(
            origin=str(origin),
            url=str(url),
            size=int(size),  # type: ignore[call-overload]
            root_hash=bytes(root),  # type: ignore[arg-type]
            checkpoint=str(checkpoint),
            vkeys=tuple(json.loads(str(vkeys))),
            edge=tuple(raw_edge[i : i + _HASH] for i in range(0, len(raw_edge), _HASH)),
            entries_audited=int(audited),  # type: ignore[call-overload]
            updated_at=float(updated),  # type: ignore[arg-type]
        )
    except (ValueError, TypeError) as exc:
        raise StateError(f"state of {origin!r} is corrupt: {exc}") from None
