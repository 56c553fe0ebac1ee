"""SQL reads and writes of one tree, on an open connection.

Every function takes the connection of the caller's transaction, so the
sequencer can write an entire batch (entries, attestations, nodes, index keys,
tree head) in one atomic commit, and readers see either all of it or none of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tlog.errors import Internal
from tlog.merkle import NodeID
from tlog.storage import db as storage_db
from tlog.storage.models import (
    NODE_INDEX_BITS,
    Attestation,
    Cosignature,
    Entry,
    Node,
    SearchKey,
    Tree,
    TreeHead,
    node_key,
)

_entries = Entry.__table__
_attestations = Attestation.__table__
_nodes = Node.__table__
_heads = TreeHead.__table__
_search = SearchKey.__table__
_trees = Tree.__table__
_cosigs = Cosignature.__table__

#: Most keys one IN (...) list may carry; SQLite's default variable limit is 32766.
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class TreeInfo:
    """The identity of a tree, fixed when it was created."""

    id: int
    purpose: str
    tree_id: int
    origin: str
    log_id: bytes
    created_at: int
    frozen_at: int | None


@dataclass(frozen=True, slots=True)
class TreeHeadRecord:
    """A signed tree head as stored."""

    size: int
    root_hash: bytes
    timestamp: int
    checkpoint: str


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """A dsse entry's DSSE payload and its type, as stored."""

    payload_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An integrated entry as stored.

    ``attestation`` (the entry's DSSE payload) and ``signed_entry_timestamp``
    (its stored Rekor SET, DER) are read together with the entry by the point
    reads the Rekor API serves (:func:`get_entry`,
    :func:`get_entry_by_leaf_hash` and the readers). Either is None where the
    entry has none: no payload (hashedrekord), no stored SET (logged before
    revision 0005, or by ``tlog load`` without ``--sets``). Both are always
    None from :func:`get_entries_range`, whose callers (tiles, the explorer)
    need only bodies.
    """

    log_index: int
    leaf_hash: bytes
    body: bytes
    integrated_time: int
    attestation: AttestationRecord | None = None
    signed_entry_timestamp: bytes | None = None


# --- trees -----------------------------------------------------------------------------


def get_tree(conn: Connection, *, purpose: str) -> TreeInfo | None:
    """The newest tree with this purpose (older ones are frozen shards)."""
    row = conn.execute(
        sa.select(_trees).where(_trees.c.purpose == purpose).order_by(_trees.c.id.desc()).limit(1)
    ).first()
    return TreeInfo(**row._mapping) if row else None


def get_tree_by_tree_id(conn: Connection, tree_id: int) -> TreeInfo | None:
    row = conn.execute(sa.select(_trees).where(_trees.c.tree_id == tree_id)).first()
    return TreeInfo(**row._mapping) if row else None


def list_trees(conn: Connection) -> list[TreeInfo]:
    return [TreeInfo(**r._mapping) for r in conn.execute(sa.select(_trees).order_by(_trees.c.id))]


def insert_tree(conn: Connection, info: TreeInfo) -> None:
    conn.execute(sa.insert(_trees).values(**dataclasses.asdict(info)))


def freeze_tree(conn: Connection, tree: int, frozen_at: int) -> None:
    """Retire a tree (key rotation): no batch may extend it afterwards, see :func:`is_frozen`."""
    conn.execute(sa.update(_trees).where(_trees.c.id == tree, _trees.c.frozen_at.is_(None)).values(frozen_at=frozen_at))


_FROZEN_AT = sa.select(_trees.c.frozen_at).where(_trees.c.id == sa.bindparam("tree"))


def is_frozen(conn: Connection, tree: int) -> bool:
    return conn.execute(_FROZEN_AT, {"tree": tree}).scalar() is not None


# --- tree heads ------------------------------------------------------------------------


# Hot-path statements are built once with bind parameters: constructing a
# SQLAlchemy statement costs more than running it on a warm connection.
_head_cols = (_heads.c.size, _heads.c.root_hash, _heads.c.timestamp, _heads.c.checkpoint)
_LATEST_HEAD = (
    sa.select(*_head_cols).where(_heads.c.tree == sa.bindparam("tree")).order_by(_heads.c.size.desc()).limit(1)
)


def latest_head(conn: Connection, tree: int) -> TreeHeadRecord | None:
    row = conn.execute(_LATEST_HEAD, {"tree": tree}).first()
    return TreeHeadRecord(*row) if row else None


def head_at(conn: Connection, tree: int, size: int) -> TreeHeadRecord | None:
    row = conn.execute(
        sa.select(_heads.c.size, _heads.c.root_hash, _heads.c.timestamp, _heads.c.checkpoint).where(
            _heads.c.tree == tree, _heads.c.size == size
        )
    ).first()
    return TreeHeadRecord(*row) if row else None


def insert_head(conn: Connection, tree: int, head: TreeHeadRecord) -> None:
    conn.execute(
        sa.insert(_heads).values(
            tree=tree, size=head.size, root_hash=head.root_hash, timestamp=head.timestamp, checkpoint=head.checkpoint
        )
    )


# --- witness cosignatures ------------------------------------------------------------


_COSIGNATURE_LINES = (
    sa.select(_cosigs.c.line)
    .where(_cosigs.c.tree == sa.bindparam("tree"), _cosigs.c.size == sa.bindparam("size"))
    .order_by(_cosigs.c.witness)
)


def cosignature_lines(conn: Connection, tree: int, size: int) -> list[str]:
    """Cosignature lines collected for the head of ``size``, in a stable order."""
    return list(conn.execute(_COSIGNATURE_LINES, {"tree": tree, "size": size}).scalars())


def cosigning_witnesses(conn: Connection, tree: int, size: int) -> set[str]:
    """Keys (``<name>+<hex key ID>``) of the witnesses that cosigned the head of ``size``."""
    return set(
        conn.execute(sa.select(_cosigs.c.witness).where(_cosigs.c.tree == tree, _cosigs.c.size == size)).scalars()
    )


def insert_cosignature(conn: Connection, tree: int, size: int, witness: str, line: str, received_at: int) -> bool:
    """Record a cosignature; False if this witness already cosigned this size."""
    if witness in cosigning_witnesses(conn, tree, size):
        return False
    conn.execute(sa.insert(_cosigs).values(tree=tree, size=size, witness=witness, line=line, received_at=received_at))
    return True


# --- nodes -----------------------------------------------------------------------------


def get_node_hashes(
    conn: Connection, tree: int, ids: Sequence[NodeID], *, known: Mapping[int, bytes] | None = None
) -> list[bytes]:
    """Hashes of the given perfect-subtree nodes, in the order asked, in one query.

    Keys already in ``known`` (e.g. nodes the caller just computed) are not
    read. A missing node means the database does not hold a tree it claims to
    hold.
    """
    if not ids:
        return []
    keys = [node_key(n.level, n.index) for n in ids]
    found: dict[int, bytes] = dict(known) if known else {}
    found.update(_reader(conn).node_hashes(tree, list(set(keys) - found.keys())))
    try:
        return [found[k] for k in keys]
    except KeyError as exc:
        k = exc.args[0]
        raise Internal(
            f"tree {tree} is missing node level={k >> NODE_INDEX_BITS} index={k & ((1 << NODE_INDEX_BITS) - 1)}"
        ) from None


def get_level_range(conn: Connection, tree: int, level: int, begin: int, end: int) -> list[bytes]:
    """Hashes of nodes ``[begin, end)`` of one level, as a range scan (for tiles)."""
    rows = conn.execute(
        sa.select(_nodes.c.hash)
        .where(
            _nodes.c.tree == tree,
            _nodes.c.key >= node_key(level, begin),
            _nodes.c.key < node_key(level, end),
        )
        .order_by(_nodes.c.key)
    ).scalars().all()
    if len(rows) != end - begin:
        raise Internal(f"tree {tree} level {level} holds {len(rows)} of nodes [{begin}, {end})")
    return list(rows)


def insert_nodes(conn: Connection, tree: int, nodes: Iterable[tuple[int, bytes]]) -> None:
    """Insert ``(node_key, hash)`` pairs."""
    rows = [{"tree": tree, "key": k, "hash": h} for k, h in nodes]
    if rows:
        conn.execute(sa.insert(_nodes), rows)


# One contiguous run of a level, written by the database itself from one
# concatenated blob: per row this costs SQLite ~0.9 us against ~1.5 us for a
# driver executemany of tuples and ~10 us through SQLAlchemy's parameter
# processing. The rows are the same as insert_nodes' (tree, node_key, hash).
_SQLITE_NODE_RUN = (
    "INSERT INTO nodes (tree, key, hash) "
    "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?3) "
    "SELECT ?1, ?2 + i, substr(?4, i * 32 + 1, 32) FROM seq"
)
# PostgreSQL: every level's run in one statement (one round trip per batch).
_PG_NODE_RUNS = (
    "INSERT INTO nodes (tree, key, hash) "
    "SELECT %(tree)s, r.key + i, substring(r.blob FROM i * 32 + 1 FOR 32) "
    "FROM unnest(%(keys)s::bigint[], %(counts)s::int[], %(blobs)s::bytea[]) AS r(key, n, blob), "
    "generate_series(0, r.n - 1) AS i"
)


def insert_node_levels(conn: Connection, tree: int, levels: Sequence[tuple[int, Sequence[bytes]]]) -> None:
    """Insert the nodes of :meth:`tlog.merkle.CompactRange.extend_levels`.

    ``levels[level] == (first, hashes)``: node ``(level, first + i)`` has
    ``hashes[i]``. One statement per level on SQLite, one in all on
    PostgreSQL (where each is a round trip). Every hash must be 32 bytes.
    """
    runs = []  # (first key, count, concatenated hashes) per level
    for level, (first, hashes) in enumerate(levels):
        if not hashes:
            continue
        blob = b"".join(hashes)
        if len(blob) != 32 * len(hashes):
            raise ValueError("node hashes must be 32 bytes")
        runs.append((node_key(level, first), len(hashes), blob))
    if conn.dialect.name == "sqlite":
        for run in runs:
            conn.exec_driver_sql(_SQLITE_NODE_RUN, (tree, *run))
    elif runs:
        keys, counts, blobs = zip(*runs)
        conn.exec_driver_sql(_PG_NODE_RUNS, {"tree": tree, "keys": list(keys), "counts": list(counts), "blobs": list(blobs)})


# --- entries ---------------------------------------------------------------------------

_entry_cols = (_entries.c.log_index, _entries.c.leaf_hash, _entries.c.body, _entries.c.integrated_time)
# Point reads take the stored SET and the attestation in the same statement (an
# outer join on its primary key): one round trip per entry read, whatever its
# kind. They run the readers' fixed SQL (_SELECT_ENTRY, below) on the caller's
# connection, so that statement exists once.


def _joined_record(row: Sequence[Any]) -> EntryRecord:
    """An :class:`EntryRecord` from a row of the entry columns, the stored SET, then
    payload_type and data (NULL when absent)."""
    log_index, leaf_hash, body, integrated_time, set_, payload_type, data = row
    attestation = None if data is None else AttestationRecord(payload_type, bytes(data))
    return EntryRecord(log_index, leaf_hash, body, integrated_time, attestation, None if set_ is None else bytes(set_))


def get_entry(conn: Connection, tree: int, log_index: int) -> EntryRecord | None:
    return _reader(conn).entries(tree, [log_index]).get(log_index)


def get_entry_by_leaf_hash(conn: Connection, tree: int, leaf_hash: bytes) -> EntryRecord | None:
    return _reader(conn).entry_by_leaf_hash(tree, leaf_hash)


def get_entries_range(conn: Connection, tree: int, begin: int, end: int) -> list[EntryRecord]:
    rows = conn.execute(
        sa.select(*_entry_cols)
        .where(_entries.c.tree == tree, _entries.c.log_index >= begin, _entries.c.log_index < end)
        .order_by(_entries.c.log_index)
    ).all()
    return [EntryRecord(*r) for r in rows]


def find_leaf_hashes(conn: Connection, tree: int, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
    """Which of these leaf hashes are already in the tree, and at what index."""
    found: dict[bytes, int] = {}
    sql = _driver_sql(conn)
    for chunk in _chunks(list(set(leaf_hashes))):
        found.update((bytes(h), i) for h, i in conn.exec_driver_sql(*sql.matching(sql.leaves_in, tree, items=chunk)))
    return found


_SQLITE_INSERT_ENTRIES = (
    "INSERT INTO entries (tree, log_index, leaf_hash, body, integrated_time, signed_entry_timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


_PG_INSERT_ENTRIES = (
    "INSERT INTO entries (tree, log_index, leaf_hash, body, integrated_time, signed_entry_timestamp) "
    "SELECT %(tree)s, * FROM unnest(%(log_index)s::bigint[], %(leaf_hash)s::bytea[], %(body)s::bytea[], "
    "%(integrated_time)s::bigint[], %(set)s::bytea[])"
)


def insert_entries(conn: Connection, tree: int, entries: Sequence[EntryRecord]) -> None:
    if not entries:
        return
    if conn.dialect.name == "sqlite":
        # The driver's executemany over plain tuples: SQLAlchemy's per-row
        # parameter processing costs more than SQLite's insert itself.
        conn.exec_driver_sql(
            _SQLITE_INSERT_ENTRIES,
            [(tree, e.log_index, e.leaf_hash, e.body, e.integrated_time, e.signed_entry_timestamp) for e in entries],
        )
    else:  # one statement, one array per column: no per-row work in SQLAlchemy
        conn.exec_driver_sql(
            _PG_INSERT_ENTRIES,
            {
                "tree": tree,
                "log_index": [e.log_index for e in entries],
                "leaf_hash": [e.leaf_hash for e in entries],
                "body": [e.body for e in entries],
                "integrated_time": [e.integrated_time for e in entries],
                "set": [e.signed_entry_timestamp for e in entries],
            },
        )


_SQLITE_INSERT_ATTESTATIONS = "INSERT INTO attestations (tree, log_index, payload_type, data) VALUES (?, ?, ?, ?)"


def insert_attestations(conn: Connection, tree: int, entries: Sequence[EntryRecord]) -> None:
    """Insert the attestation of each entry that has one.

    Call it in the transaction that inserts the entries themselves: that is
    what makes an entry and its attestation visible together or not at all.
    """
    rows = [(tree, e.log_index, a.payload_type, a.data) for e in entries if (a := e.attestation) is not None]
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT_ATTESTATIONS, rows)
    else:
        conn.exec_driver_sql(
            "INSERT INTO attestations (tree, log_index, payload_type, data) "
            "SELECT %(tree)s, * FROM unnest(%(log_index)s::bigint[], %(payload_type)s::text[], %(data)s::bytea[])",
            {"tree": tree, "log_index": [r[1] for r in rows], "payload_type": [r[2] for r in rows], "data": [r[3] for r in rows]},
        )


# --- search index ----------------------------------------------------------------------


def insert_search_keys(conn: Connection, tree: int, pairs: Iterable[tuple[str, int]]) -> None:
    if conn.dialect.name == "sqlite":
        tuples = [(k, tree, i) for k, i in pairs]
        if tuples:
            conn.exec_driver_sql("INSERT INTO search_index (key, tree, log_index) VALUES (?, ?, ?)", tuples)
        return
    rows = list(pairs)
    if rows:
        conn.exec_driver_sql(
            "INSERT INTO search_index (key, tree, log_index) "
            "SELECT k, %(tree)s, i FROM unnest(%(keys)s::text[], %(indexes)s::bigint[]) AS t(k, i)",
            {"tree": tree, "keys": [k for k, _ in rows], "indexes": [i for _, i in rows]},
        )


def search(conn: Connection, tree: int, key: str, *, limit: int) -> list[int]:
    """Log indexes of entries indexed under ``key``, oldest first, at most ``limit``."""
    return list(
        conn.execute(
            sa.select(_search.c.log_index)
            .where(_search.c.key == key, _search.c.tree == tree)
            .order_by(_search.c.log_index)
            .limit(limit)
        ).scalars()
    )


def _chunks(items: Sequence[object]) -> Iterable[list]:  # type: ignore[type-arg]
    for i in range(0, len(items), _IN_CHUNK):
        yield list(items[i : i + _IN_CHUNK])


# --- hot-path readers ------------------------------------------------------------------
#
# A proof request is a handful of indexed point reads. Through SQLAlchemy Core
# each statement costs ~18 us of Python on SQLite (compiled-cache lookup,
# parameter and result processing) against ~3-15 us for the read itself, and
# ~70 us more than the driver alone on PostgreSQL (160-190 us against 86-107 us
# per statement, round trip included; measured). The readers therefore run
# fixed SQL on the driver's own connection: on SQLite this thread's read-only
# connection, on PostgreSQL the pooled connection's psycopg connection in
# autocommit, with server-side prepared statements. Driver errors become
# SQLAlchemy's DBAPIError as Core would raise them (so the API still answers
# 503). Both databases run the same statements; only the placeholder and the
# way a list is passed differ.

_SELECT_LATEST_HEAD = "SELECT size, root_hash, timestamp, checkpoint FROM tree_heads WHERE tree = ? ORDER BY size DESC LIMIT 1"
_LATEST_HEAD_CTE = f"WITH h AS ({_SELECT_LATEST_HEAD}) "


def _head_and_entry(column: str) -> str:
    """The latest head and the entry whose ``column`` is the parameter if that head includes it
    (NULLs if none), in one statement and so one snapshot."""
    return (
        _LATEST_HEAD_CTE + "SELECT h.size, h.root_hash, h.timestamp, h.checkpoint, "
        "e.log_index, e.leaf_hash, e.body, e.integrated_time, e.signed_entry_timestamp, a.payload_type, a.data "
        f"FROM h LEFT JOIN entries AS e ON e.tree = ? AND e.{column} = ? AND e.log_index < h.size "
        "LEFT JOIN attestations AS a ON a.tree = e.tree AND a.log_index = e.log_index"
    )


_SELECT_HEAD_AND_ENTRY = _head_and_entry("log_index")
# The latest head with each cosignature line collected for it (one row with NULLs if none).
_SELECT_HEAD_AND_COSIGNATURES = (
    _LATEST_HEAD_CTE + "SELECT h.size, h.root_hash, h.timestamp, h.checkpoint, c.line FROM h "
    "LEFT JOIN cosignatures AS c ON c.tree = ? AND c.size = h.size ORDER BY c.witness"
)
# _SELECT_HEAD_AND_ENTRY's row, then one row per node (NULL head columns, key and hash where
# log_index and leaf_hash were): a proof by index in one statement.
_SELECT_HEAD_ENTRY_AND_NODES = (
    _SELECT_HEAD_AND_ENTRY + " UNION ALL SELECT NULL, NULL, NULL, NULL, key, hash, NULL, NULL, NULL, NULL, NULL "
    "FROM nodes WHERE tree = ? AND key"
)
# The latest head (the row whose size is set) and some nodes (the rows with a key), in one statement.
_SELECT_HEAD_AND_NODES = (
    _LATEST_HEAD_CTE + "SELECT size, root_hash, timestamp, checkpoint, NULL, NULL FROM h "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, key, hash FROM nodes WHERE tree = ? AND key"
)
_SELECT_ENTRY = (
    # An entry, its stored SET and its attestation (outer join) in one statement: every entry read.
    "SELECT e.log_index, e.leaf_hash, e.body, e.integrated_time, e.signed_entry_timestamp, a.payload_type, a.data "
    "FROM entries AS e "
    "LEFT JOIN attestations AS a ON a.tree = e.tree AND a.log_index = e.log_index WHERE e.tree = ? AND "
)


@dataclass(frozen=True)
class _DriverSQL:
    """One database's spelling of the hot-path statements (readers and the write path's lookups)."""

    latest_head: str
    head_and_entry: str
    head_and_entry_by_leaf: str
    head_and_cosignatures: str
    head_entry_and_nodes_in: str
    head_and_nodes_in: str
    entry_by_leaf: str
    level_range: str
    bodies_range: str
    entries_in: str  # ends with the column to match against a list
    nodes_in: str
    leaves_in: str
    #: psycopg takes a list as one array parameter, so every list length shares
    #: one prepared statement; sqlite3 takes ``IN (?, ...)``.
    array_lists: bool

    def matching(self, select: str, *params: object, items: Sequence[object]) -> tuple[str, tuple[object, ...]]:
        """``select`` (ending in a column) restricted to the column's values in ``items``, with its parameters."""
        if not self.array_lists:
            return f"{select} IN ({','.join('?' * len(items))})", (*params, *items)
        if items and isinstance(items[0], int):
            # Integers as one bigint[] literal: psycopg works out a Python
            # list's array type on every call, ~40 us of CPU against ~1 us to
            # format the literal (int() keeps it to digits).
            return select + " = ANY(%s::bigint[])", (*params, "{" + ",".join([str(int(i)) for i in items]) + "}")  # type: ignore[call-overload]
        return select + " = ANY(%s)", (*params, list(items))

    @classmethod
    def for_dialect(cls, name: str) -> _DriverSQL:
        sqlite = name == "sqlite"
        spell = str if sqlite else (lambda sql: sql.replace("?", "%s"))
        return cls(
            latest_head=spell(_SELECT_LATEST_HEAD),
            head_and_entry=spell(_SELECT_HEAD_AND_ENTRY),
            head_and_entry_by_leaf=spell(_head_and_entry("leaf_hash")),
            head_and_cosignatures=spell(_SELECT_HEAD_AND_COSIGNATURES),
            head_entry_and_nodes_in=spell(_SELECT_HEAD_ENTRY_AND_NODES),
            head_and_nodes_in=spell(_SELECT_HEAD_AND_NODES),
            entry_by_leaf=spell(_SELECT_ENTRY + "e.leaf_hash = ?"),
            level_range=spell("SELECT hash FROM nodes WHERE tree = ? AND key >= ? AND key < ? ORDER BY key"),
            bodies_range=spell("SELECT body FROM entries WHERE tree = ? AND log_index >= ? AND log_index < ? ORDER BY log_index"),
            entries_in=spell(_SELECT_ENTRY + "e.log_index"),
            nodes_in=spell("SELECT key, hash FROM nodes WHERE tree = ? AND key"),
            leaves_in=spell("SELECT leaf_hash, log_index FROM entries WHERE tree = ? AND leaf_hash"),
            array_lists=not sqlite,
        )


_SQLITE_SQL = _DriverSQL.for_dialect("sqlite")
_PG_SQL = _DriverSQL.for_dialect("postgresql")


def _driver_sql(conn: Connection) -> _DriverSQL:
    return _SQLITE_SQL if conn.dialect.name == "sqlite" else _PG_SQL


def _reader(conn: Connection) -> DriverReader:
    """The hot-path readers' statements, run in the caller's transaction on a Core connection."""
    return DriverReader(conn.exec_driver_sql, _driver_sql(conn))


def _head_and_entry_of(row: Sequence[Any] | None) -> tuple[TreeHeadRecord | None, EntryRecord | None]:
    """The head and entry (if any) of a row of :func:`_head_and_entry`'s columns."""
    if row is None:
        return None, None
    return TreeHeadRecord(*row[:4]), (_joined_record(row[4:]) if row[4] is not None else None)


class DriverReader:
    """Reads of one tree as fixed SQL on a driver connection (see above)."""

    __slots__ = ("_execute", "_sql")

    def __init__(self, execute: Any, sql: _DriverSQL) -> None:
        self._execute = execute  # (sql, params) -> a cursor with fetchone() and iteration
        self._sql = sql

    def level_range(self, tree: int, level: int, begin: int, end: int) -> list[bytes]:
        """Hashes of nodes ``[begin, end)`` of one level, in order (those that exist)."""
        rows = self._execute(self._sql.level_range, (tree, node_key(level, begin), node_key(level, end)))
        return [bytes(r[0]) for r in rows]

    def bodies_range(self, tree: int, begin: int, end: int) -> list[bytes]:
        """Bodies of entries ``[begin, end)``, in order (those that exist)."""
        return [bytes(r[0]) for r in self._execute(self._sql.bodies_range, (tree, begin, end))]

    def latest_head(self, tree: int) -> TreeHeadRecord | None:
        row = self._execute(self._sql.latest_head, (tree,)).fetchone()
        return TreeHeadRecord(*row) if row else None

    def head_and_entry(self, tree: int, log_index: int) -> tuple[TreeHeadRecord | None, EntryRecord | None]:
        """The latest head and the entry at ``log_index`` if that head includes it: one round trip, one snapshot."""
        return _head_and_entry_of(self._execute(self._sql.head_and_entry, (tree, tree, log_index)).fetchone())

    def head_and_entry_by_leaf_hash(self, tree: int, leaf_hash: bytes) -> tuple[TreeHeadRecord | None, EntryRecord | None]:
        """The latest head and the entry with this leaf hash if that head includes it, in one statement."""
        return _head_and_entry_of(self._execute(self._sql.head_and_entry_by_leaf, (tree, tree, leaf_hash)).fetchone())

    def head_and_cosignatures(self, tree: int) -> tuple[TreeHeadRecord | None, list[str]]:
        """The latest head and the cosignature lines collected for it (by witness), in one statement."""
        rows = self._execute(self._sql.head_and_cosignatures, (tree, tree)).fetchall()
        if not rows:
            return None, []
        return TreeHeadRecord(*rows[0][:4]), [row[4] for row in rows if row[4] is not None]

    def head_entry_and_nodes(
        self, tree: int, log_index: int, keys: Sequence[int]
    ) -> tuple[TreeHeadRecord | None, EntryRecord | None, dict[int, bytes]]:
        """:meth:`head_and_entry` and the stored hashes of these node keys, in one statement.

        The keys are a guess made before the head is known (see
        ``TransparencyLog.entry_by_index``); the caller reads whatever the
        real head needs beyond them.
        """
        unique = sorted(set(keys))
        if not unique or len(unique) > _IN_CHUNK:
            return (*self.head_and_entry(tree, log_index), self.node_hashes(tree, unique))
        head_row, found = self._head_row_and_nodes(self._sql.head_entry_and_nodes_in, (tree, tree, log_index, tree), unique)
        return (*_head_and_entry_of(head_row), found)

    def entries(self, tree: int, log_indexes: Sequence[int]) -> dict[int, EntryRecord]:
        found: dict[int, EntryRecord] = {}
        for chunk in _chunks(sorted(set(log_indexes))):
            for row in self._execute(*self._sql.matching(self._sql.entries_in, tree, items=chunk)):
                found[row[0]] = _joined_record(row)
        return found

    def entry_by_leaf_hash(self, tree: int, leaf_hash: bytes) -> EntryRecord | None:
        row = self._execute(self._sql.entry_by_leaf, (tree, leaf_hash)).fetchone()
        return _joined_record(row) if row else None

    def head_and_nodes(self, tree: int, keys: Sequence[int]) -> tuple[TreeHeadRecord | None, dict[int, bytes]]:
        """The latest head and the stored hashes of these node keys: one round trip, one snapshot."""
        unique = sorted(set(keys))
        if not unique or len(unique) > _IN_CHUNK:
            return self.latest_head(tree), self.node_hashes(tree, unique)
        head_row, found = self._head_row_and_nodes(self._sql.head_and_nodes_in, (tree, tree), unique)
        return (TreeHeadRecord(*head_row[:4]) if head_row is not None else None), found

    def _head_row_and_nodes(
        self, sql: str, params: tuple[object, ...], keys: Sequence[int]
    ) -> tuple[Sequence[Any] | None, dict[int, bytes]]:
        """Run a head-and-nodes statement: its one row with the head (size set), and the
        nodes of the other rows, whose key and hash stand in the fifth and sixth columns."""
        head_row, found = None, {}
        for row in self._execute(*self._sql.matching(sql, *params, items=keys)):
            if row[0] is not None:
                head_row = row
            else:
                found[row[4]] = bytes(row[5])
        return head_row, found

    def node_hashes(self, tree: int, keys: Sequence[int]) -> dict[int, bytes]:
        """The stored hashes of these node keys (missing ones are simply absent)."""
        found: dict[int, bytes] = {}
        for chunk in _chunks(sorted(set(keys))):
            found.update((k, bytes(h)) for k, h in self._execute(*self._sql.matching(self._sql.nodes_in, tree, items=chunk)))
        return found


Reader = DriverReader


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Reader]:
    """Reads of committed state, statement by statement.

    On SQLite each statement runs on its own (autocommit) on this thread's
    read connection (:func:`tlog.storage.db.sqlite_reader`), with no
    surrounding transaction: every table a reader touches is append-only
    (triggers refuse UPDATE and DELETE), and every read is bounded by the tree
    head read first, whose entries and nodes were committed with it or
    before. So later statements can only see *more* rows, never different
    ones, and need no common snapshot.
    """
    if engine.dialect.name != "sqlite":
        yield from _postgres_reading(engine)
        return
    try:
        yield DriverReader(storage_db.sqlite_reader(engine).execute, _SQLITE_SQL)
    except sqlite3.Error as exc:
        storage_db.discard_sqlite_reader(engine)
        raise _dbapi_error(engine, exc, sqlite3.Error, invalidated=True) from exc


def _dbapi_error(engine: Engine, exc: Exception, driver_error: type, *, invalidated: bool) -> sa.exc.DBAPIError:
    """A driver's error as SQLAlchemy's DBAPIError, as Core would raise it (so the API answers 503)."""
    return sa.exc.DBAPIError.instance(
        None, None, exc, driver_error, connection_invalidated=invalidated, dialect=engine.dialect
    )


def _postgres_reading(engine: Engine) -> Iterator[Reader]:
    import psycopg

    # A connection straight from the pool, in autocommit, without a Core
    # Connection around it: its execution options and reset cost ~40 us of CPU
    # per read. Autocommit saves BEGIN and ROLLBACK, two of a proof's five
    # round trips, and loses nothing: under PostgreSQL's READ COMMITTED each
    # statement saw its own snapshot anyway, and the reasoning in reading()
    # holds. The pool's other users expect transactions, so autocommit is
    # switched off again before the connection goes back (the pool's
    # rollback on return is then a no-op: nothing is open). psycopg prepares a
    # statement on the server after its fifth use on a connection.
    try:
        fairy = engine.raw_connection()  # unlike engine.connect(), raises the driver's own errors
    except psycopg.Error as exc:
        raise _dbapi_error(engine, exc, psycopg.Error, invalidated=True) from exc
    raw = fairy.driver_connection
    assert raw is not None
    gone = False
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            yield DriverReader(cursor.execute, _PG_SQL)
    except psycopg.Error as exc:
        gone = isinstance(exc, psycopg.OperationalError) or raw.closed
        raise _dbapi_error(engine, exc, psycopg.Error, invalidated=gone) from exc
    finally:
        if not gone:
            try:
                raw.autocommit = False
            except psycopg.Error:
                gone = True
        if gone:
            fairy.invalidate()  # never back into the pool
        fairy.close()
