"""SQL reads and writes of one tree, on an open connection.

Every function takes the connection of the caller's transaction, so the
sequencer can write an entire batch (entries, nodes, index keys, tree head) in
one atomic commit, and readers see either all of it or none of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tlog.errors import Internal
from tlog.merkle import NodeID
from tlog.storage.models import NODE_INDEX_BITS, Cosignature, Entry, Node, SearchKey, Tree, TreeHead, node_key

_entries = Entry.__table__
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
class EntryRecord:
    """An integrated entry as stored."""

    log_index: int
    leaf_hash: bytes
    body: bytes
    integrated_time: int


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


_NODE_HASHES = sa.select(_nodes.c.key, _nodes.c.hash).where(
    _nodes.c.tree == sa.bindparam("tree"), _nodes.c.key.in_(sa.bindparam("keys", expanding=True))
)


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
    for chunk in _chunks(sorted(set(keys) - found.keys())):
        found.update(conn.execute(_NODE_HASHES, {"tree": tree, "keys": chunk}).all())
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


# --- entries ---------------------------------------------------------------------------

_entry_cols = (_entries.c.log_index, _entries.c.leaf_hash, _entries.c.body, _entries.c.integrated_time)
_ENTRY = sa.select(*_entry_cols).where(
    _entries.c.tree == sa.bindparam("tree"), _entries.c.log_index == sa.bindparam("log_index")
)
_ENTRY_BY_LEAF = sa.select(*_entry_cols).where(
    _entries.c.tree == sa.bindparam("tree"), _entries.c.leaf_hash == sa.bindparam("leaf_hash")
)


def get_entry(conn: Connection, tree: int, log_index: int) -> EntryRecord | None:
    row = conn.execute(_ENTRY, {"tree": tree, "log_index": log_index}).first()
    return EntryRecord(*row) if row else None


def get_entry_by_leaf_hash(conn: Connection, tree: int, leaf_hash: bytes) -> EntryRecord | None:
    row = conn.execute(_ENTRY_BY_LEAF, {"tree": tree, "leaf_hash": leaf_hash}).first()
    return EntryRecord(*row) if row else None


def get_entries_range(conn: Connection, tree: int, begin: int, end: int) -> list[EntryRecord]:
    rows = conn.execute(
        sa.select(*_entry_cols)
        .where(_entries.c.tree == tree, _entries.c.log_index >= begin, _entries.c.log_index < end)
        .order_by(_entries.c.log_index)
    ).all()
    return [EntryRecord(*r) for r in rows]


_LEAVES = sa.select(_entries.c.leaf_hash, _entries.c.log_index).where(
    _entries.c.tree == sa.bindparam("tree"), _entries.c.leaf_hash.in_(sa.bindparam("leaves", expanding=True))
)


def find_leaf_hashes(conn: Connection, tree: int, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
    """Which of these leaf hashes are already in the tree, and at what index."""
    found: dict[bytes, int] = {}
    for chunk in _chunks(list(set(leaf_hashes))):
        found.update(conn.execute(_LEAVES, {"tree": tree, "leaves": chunk}).all())
    return found


def insert_entries(conn: Connection, tree: int, entries: Sequence[EntryRecord]) -> None:
    if entries:
        conn.execute(
            sa.insert(_entries),
            [
                {
                    "tree": tree,
                    "log_index": e.log_index,
                    "leaf_hash": e.leaf_hash,
                    "body": e.body,
                    "integrated_time": e.integrated_time,
                }
                for e in entries
            ],
        )


# --- search index ----------------------------------------------------------------------


def insert_search_keys(conn: Connection, tree: int, pairs: Iterable[tuple[str, int]]) -> None:
    rows = [{"key": k, "tree": tree, "log_index": i} for k, i in pairs]
    if rows:
        conn.execute(sa.insert(_search), rows)


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
