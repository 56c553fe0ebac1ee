"""The database schema: typed SQLAlchemy 2 models on one ``MetaData``.

Several Merkle trees live side by side, each a row of ``trees``: the entry log,
the certificate log of the CA, and frozen shards after a key rotation. Every
other table is keyed by ``tree`` first.

The tables of :data:`APPEND_ONLY_TABLES` are append-only: the migrations
install triggers that refuse UPDATE and DELETE on them, so even a bug (or an
operator with a SQL shell and no migration) cannot rewrite history without
first dropping a trigger.

Node hashes are stored for every *perfect* subtree (``nodes``), keyed by
``node_key(level, index)``. That is about two rows per entry and makes every
inclusion or consistency proof a single indexed read of O(log n) rows; tiles of
the C2SP tlog-tiles API are range reads of the same table.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Bits of a node key that hold the index within a level; levels go above.
NODE_INDEX_BITS = 48


def node_key(level: int, index: int) -> int:
    """Pack a Merkle node position into one integer key.

    Keys of one level are contiguous in ``index``, so a tile (256 consecutive
    nodes of one level) is a single range scan.
    """
    return (level << NODE_INDEX_BITS) | index


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tree(Base):
    """One Merkle tree: its identity, origin and purpose."""

    __tablename__ = "trees"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    #: What the tree holds: "entries" (the Rekor-style log) or "certificates" (the CA's log).
    purpose: Mapped[str] = mapped_column(String(32))
    #: Public random 63-bit identifier; the first 16 hex digits of a Rekor entry UUID.
    tree_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    #: The checkpoint origin line (C2SP tlog-checkpoint).
    origin: Mapped[str] = mapped_column(String(255), unique=True)
    #: SHA-256 of the log's ECDSA SubjectPublicKeyInfo (Rekor's log ID).
    log_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Milliseconds since the epoch when the tree was frozen (a retired shard), or NULL.
    frozen_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Entry(Base):
    """An integrated log entry: its index, exact body bytes and integration time."""

    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint("log_index >= 0", name="log_index_nonnegative"),
        Index("ix_entries_leaf_hash", "tree", "leaf_hash", unique=True),
        {"sqlite_with_rowid": False},
    )

    tree: Mapped[int] = mapped_column(SmallInteger, ForeignKey("trees.id"), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: RFC 6962 leaf hash of ``body``; also the Rekor entry UUID (with the tree ID prefixed).
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: Seconds since the epoch (Rekor's ``integratedTime``).
    integrated_time: Mapped[int] = mapped_column(BigInteger)
    #: The Rekor SET (DER ECDSA signature), signed once when the entry was
    #: integrated and written by its INSERT. NULL for entries written before
    #: revision 0005 or by ``tlog load`` without ``--sets``: the API signs
    #: theirs on each read.
    signed_entry_timestamp: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Attestation(Base):
    """The exact DSSE payload of a ``dsse`` entry, which its body only hashes.

    Written in the same transaction as the entry, so a reader sees both or
    neither; the API returns it as Rekor's ``attestation.data`` so that
    monitors can read the in-toto subject of every dsse entry.
    """

    __tablename__ = "attestations"
    # A rowid table, unlike its neighbours: SQLite keeps WITHOUT ROWID rows in
    # the primary-key b-tree itself, which suits small rows, not payloads of up
    # to --max-attestation-bytes. No foreign key to entries either (see Node).

    tree: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: The envelope's ``payloadType`` (e.g. ``application/vnd.in-toto+json``).
    payload_type: Mapped[str] = mapped_column(Text)
    #: The decoded payload, byte for byte; its SHA-256 is the body's ``payloadHash``.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Node(Base):
    """The hash of one perfect subtree, keyed by :func:`node_key`."""

    __tablename__ = "nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)

    # No foreign key here or in search_index: these take several rows per entry
    # and PostgreSQL checks a foreign key with a trigger per row.
    tree: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeHead(Base):
    """A signed tree head, one per integration batch, with its checkpoint note."""

    __tablename__ = "tree_heads"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_nonnegative"),
        {"sqlite_with_rowid": False},
    )

    tree: Mapped[int] = mapped_column(SmallInteger, ForeignKey("trees.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: Milliseconds since the epoch when the head was signed.
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: The signed checkpoint (C2SP signed note) as served.
    checkpoint: Mapped[str] = mapped_column(Text)


class SearchKey(Base):
    """Search index: ``key`` (e.g. ``sha256:<hex>``, ``email:<addr>``) to entry.

    Written in the same transaction as the entry it points at, so the index can
    never disagree with the log.
    """

    __tablename__ = "search_index"
    __table_args__ = ({"sqlite_with_rowid": False},)

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    tree: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Cosignature(Base):
    """A witness's cosignature line on one of the tree's checkpoints (C2SP tlog-cosignature)."""

    __tablename__ = "cosignatures"
    __table_args__ = (
        ForeignKeyConstraint(["tree", "size"], ["tree_heads.tree", "tree_heads.size"]),
        {"sqlite_with_rowid": False},
    )

    tree: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: The witness's key name and hex key ID, ``<name>+<hex8>``.
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: The signature line as the witness returned it, without the trailing newline.
    line: Mapped[str] = mapped_column(Text)
    #: Milliseconds since the epoch when the log received it.
    received_at: Mapped[int] = mapped_column(BigInteger)


#: Tables whose rows may never change once written.
APPEND_ONLY_TABLES = ("entries", "nodes", "tree_heads", "search_index", "cosignatures", "attestations")
