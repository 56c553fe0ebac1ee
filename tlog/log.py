"""The transparency log service: one Merkle tree, its keys, reads and proofs.

``TransparencyLog`` has no Flask in it. Writes go through
:mod:`tlog.sequencer`; everything here is a read of committed state, so any
number of threads, processes and frontend machines may call it at once.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from tlog import canonical_json, merkle
from tlog.checkpoint import Checkpoint, add_signatures, sign_checkpoint
from tlog.errors import BadRequest, Internal, NotFound, TlogError
from tlog.keys import LogKeys
from tlog.note import ECDSASigner, Ed25519Signer, NoteSigner, vkey
from tlog.storage import store
from tlog.storage.models import NODE_INDEX_BITS
from tlog.storage.store import EntryRecord, TreeHeadRecord, TreeInfo

log = logging.getLogger(__name__)

#: Width of a C2SP tile: 2**8 hashes or entries.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

#: Node hashes are immutable once written (perfect subtrees never change), so
#: each process keeps the upper levels of the tree in memory: every proof
#: needs one node per level and the upper ones are shared by all proofs. Kept:
#: levels >= max(_CACHE_MIN_LEVEL, tree height - _CACHE_SPAN), i.e. at most
#: about 2**(_CACHE_SPAN + 1) nodes (~10 MB) however large the tree grows, and
#: never more than _CACHE_MAX. On a 1M-leaf tree this leaves ~8 of the ~24
#: rows of an inclusion proof to read (levels 6-19 come from memory).
_CACHE_MIN_LEVEL = 6
_CACHE_SPAN = 15
_CACHE_MAX = 1 << 17


class OriginError(TlogError):
    """The configured origin cannot be used or does not match the stored tree."""


def validate_origin(origin: str) -> str:
    """Origins double as signed-note key names: non-empty, no whitespace, no '+'."""
    if not origin or len(origin) > 255 or any(c.isspace() for c in origin) or "+" in origin:
        raise OriginError(f"invalid origin {origin!r}: it must be 1-255 characters with no spaces and no '+'")
    if not origin.isprintable():
        raise OriginError(f"invalid origin {origin!r}: it must be printable")
    return origin


def insert_new_tree(conn: Connection, keys: LogKeys, *, purpose: str, origin: str, now_ms: int) -> TreeInfo:
    """Add a tree (the next free id, a random public tree ID) and its signed empty
    checkpoint, in the caller's transaction: a tree never exists without a head."""
    info = TreeInfo(
        id=max((t.id for t in store.list_trees(conn)), default=0) + 1,
        purpose=purpose,
        tree_id=int.from_bytes(os.urandom(8), "big") >> 1,
        origin=origin,
        log_id=keys.log_id,
        created_at=now_ms,
        frozen_at=None,
    )
    store.insert_tree(conn, info)
    empty = Checkpoint(origin=origin, size=0, root_hash=merkle.EMPTY_ROOT)
    signers = (ECDSASigner(origin, keys.ecdsa), Ed25519Signer(origin, keys.ed25519))
    store.insert_head(conn, info.id, TreeHeadRecord(0, merkle.EMPTY_ROOT, now_ms, sign_checkpoint(empty, signers).decode()))
    return info


def _node_keys(levels: Sequence[int], indexes: Sequence[int]) -> list[int]:
    """:func:`tlog.storage.models.node_key` of many nodes, inlined (proofs are a hot path)."""
    return [(lvl << NODE_INDEX_BITS) | i for lvl, i in zip(levels, indexes)]


def _keyed(path: merkle.NodePath) -> tuple[list[int], int, int]:
    """A node path as the storage keys of its nodes, and its rehash bounds."""
    levels, indexes, begin, end = path
    return _node_keys(levels, indexes), begin, end


@dataclass(frozen=True, slots=True)
class Inclusion:
    """An entry together with its inclusion proof against a signed tree head."""

    entry: EntryRecord
    head: TreeHeadRecord
    proof: list[bytes]


class TransparencyLog:
    """Reads, proofs and signatures of one tree; writes go through the sequencer."""

    def __init__(self, engine: Engine, keys: LogKeys, info: TreeInfo, *, index_offset: int = 0) -> None:
        self.engine = engine
        self.keys = keys
        self.info = info
        self.tree = info.id
        self.log_id = keys.log_id
        self.log_id_hex = self.log_id.hex()
        self.tree_id_hex = f"{info.tree_id:016x}"
        self.signers: tuple[NoteSigner, ...] = (
            ECDSASigner(info.origin, keys.ecdsa),
            Ed25519Signer(info.origin, keys.ed25519),
        )
        #: Global log index of this tree's first entry: the total size of the
        #: frozen shards before it (see :mod:`tlog.shards`); 0 for a first shard.
        self.index_offset = index_offset
        self._node_cache: dict[int, bytes] = {}
        #: Size of the latest head this process has read (it only grows): the
        #: guess entry_by_index reads proof nodes for along with the head.
        self._size_hint = 0

    # --- set-up ------------------------------------------------------------------------

    @classmethod
    def open(cls, engine: Engine, keys: LogKeys, *, purpose: str, origin: str | None) -> TransparencyLog:
        """Open the newest tree for ``purpose``, creating it (with a signed empty head) if absent.

        ``origin`` is only used when the tree is created; afterwards it must
        match (or be None), because changing a log's origin would make every
        checkpoint it ever signed unverifiable under the new name.
        """
        with engine.begin() as conn:
            info = store.get_tree(conn, purpose=purpose)
        if info is None:
            if origin is None:
                raise OriginError(f"no {purpose} tree exists yet and no origin was given")
            info = cls._create_tree(engine, keys, purpose=purpose, origin=validate_origin(origin))
        elif origin is not None and origin != info.origin:
            raise OriginError(
                f"the {purpose} log was created with origin {info.origin!r}; "
                f"--origin {origin!r} does not match (a new origin needs a new shard: `tlog rotate`)"
            )
        if info.log_id != keys.log_id:
            raise OriginError(
                f"the {purpose} log {info.origin!r} was created with log ID {info.log_id.hex()} "
                f"but the configured ECDSA key has log ID {keys.log_id.hex()} "
                "(if a `tlog rotate` was interrupted, run it again to finish it)"
            )
        return cls(engine, keys, info)

    @classmethod
    def _create_tree(cls, engine: Engine, keys: LogKeys, *, purpose: str, origin: str) -> TreeInfo:
        try:
            with engine.begin() as conn:
                info = insert_new_tree(conn, keys, purpose=purpose, origin=origin, now_ms=int(time.time() * 1000))
            log.info("created %s tree %s (origin %r)", purpose, f"{info.tree_id:016x}", origin)
            return info
        except IntegrityError:
            # Another process created it at the same moment; use theirs.
            with engine.begin() as conn:
                existing = store.get_tree(conn, purpose=purpose)
            if existing is None:
                raise
            return existing

    def preload_upper_levels(self) -> int:
        """Fill this process's node cache with the levels it keeps (one range scan per level).

        Without it the first few thousand proofs of a fresh process each read
        their upper nodes from the database; with it they only read the ~6
        lowest. Called where proofs are served (each worker's app), not by
        every process that opens the log. About 31,000 hashes (~25 ms, ~5 MB) on a 1M-entry tree.
        Returns the number of nodes loaded.
        """
        with self.engine.connect() as conn:
            size = self._size_hint = self._head(conn).size
            floor = max(_CACHE_MIN_LEVEL, size.bit_length() - _CACHE_SPAN)
            loaded = 0
            for level in range(floor, size.bit_length()):
                count = size >> level
                if count == 0 or loaded + count > _CACHE_MAX:
                    break
                hashes = store.get_level_range(conn, self.tree, level, 0, count)
                base = level << NODE_INDEX_BITS
                self._node_cache.update(zip(range(base, base + count), hashes))
                loaded += count
        return loaded

    # --- identifiers and signatures ----------------------------------------------------

    @property
    def vkeys(self) -> list[str]:
        """C2SP verifier keys of the checkpoint signatures (ECDSA, then Ed25519), for witnesses and monitors."""
        return [vkey(s.verifier()) for s in self.signers]  # type: ignore[attr-defined]

    def entry_uuid(self, leaf_hash: bytes) -> str:
        """Rekor's entry UUID: 16 hex digits of tree ID, then the 64-hex leaf hash."""
        return self.tree_id_hex + leaf_hash.hex()

    def leaf_hash_from_uuid(self, uuid: str) -> bytes:
        """Accept both the 80-hex (tree ID + leaf hash) and the 64-hex UUID forms."""
        u = uuid.lower()
        if len(u) == 80:
            if u[:16] != self.tree_id_hex:
                raise NotFound(f"entry {uuid} belongs to tree {u[:16]}, not to this log ({self.tree_id_hex})")
            u = u[16:]
        if len(u) != 64 or any(c not in "0123456789abcdef" for c in u):
            raise BadRequest(f"invalid entry UUID {uuid!r}: expected 64 or 80 hexadecimal digits")
        return bytes.fromhex(u)

    def signed_entry_timestamp(self, entry: EntryRecord) -> bytes:
        """Rekor v1 SET: ECDSA over RFC 8785 JSON of body, integratedTime, logID, logIndex.

        The sequencer signs each entry's SET once, when it integrates it, and
        stores it; reads call this only for entries stored without one. The
        ``logIndex`` is global (:attr:`index_offset`), so the log must know its
        offset (:meth:`tlog.shards.ShardedLog.open`) before it signs.
        """
        payload = canonical_json.dumps(
            {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": self.log_id_hex,
                "logIndex": self.index_offset + entry.log_index,
            }
        )
        return self.keys.ecdsa.sign(payload, ec.ECDSA(hashes.SHA256()))

    def sign_head(self, size: int, root_hash: bytes, timestamp_ms: int) -> TreeHeadRecord:
        cp = Checkpoint(origin=self.info.origin, size=size, root_hash=root_hash)
        return TreeHeadRecord(size, root_hash, timestamp_ms, sign_checkpoint(cp, self.signers).decode())

    # --- reads -------------------------------------------------------------------------

    def latest_head(self) -> TreeHeadRecord:
        with store.reading(self.engine) as r:
            return self._head(r)

    def latest_cosigned_head(self) -> TreeHeadRecord:
        """The latest head, its checkpoint carrying every witness cosignature collected so far."""
        with store.reading(self.engine) as r:
            head, lines = r.head_and_cosignatures(self.tree)
        if head is None:
            raise NotFound("the log has no signed tree head")
        if not lines:
            return head
        note = add_signatures(head.checkpoint, "".join(line + "\n" for line in lines))
        return TreeHeadRecord(head.size, head.root_hash, head.timestamp, note.decode())

    def entry_by_index(self, log_index: int) -> Inclusion:
        with store.reading(self.engine) as r:
            if not 0 <= log_index < 1 << 63:
                head = self._head(r)
                raise NotFound(f"no entry at logIndex {log_index}: the tree has {head.size} entries")
            # Head, entry and proof nodes in one statement (on PostgreSQL each
            # statement is a round trip). The nodes are those of the proof in
            # the last tree this process saw: node hashes never change, so a
            # guess can only be incomplete (the tree grew near this leaf since),
            # and _node_hashes then reads the rest.
            size = max(self._size_hint, log_index + 1)
            keys, begin, end = _keyed(merkle.inclusion_path(log_index, size))
            cache = self._node_cache
            head, entry, found = r.head_entry_and_nodes(self.tree, log_index, [k for k in keys if k not in cache])
            if head is None:
                raise NotFound("the log has no signed tree head")
            self._size_hint = head.size
            if not 0 <= log_index < head.size:
                raise NotFound(f"no entry at logIndex {log_index}: the tree has {head.size} entries")
            if entry is None:
                raise NotFound(f"no entry at logIndex {log_index}")
            if head.size != size:
                keys, begin, end = _keyed(merkle.inclusion_path(log_index, head.size))
            proof = merkle.rehash(self._node_hashes(r, keys, head.size, prefetched=found), begin, end)
            return Inclusion(entry, head, proof)

    def entry_by_leaf_hash(self, leaf_hash: bytes) -> Inclusion:
        with store.reading(self.engine) as r:
            head, entry = r.head_and_entry_by_leaf_hash(self.tree, leaf_hash)
            if head is None:
                raise NotFound("the log has no signed tree head")
            if entry is None:
                raise NotFound(f"no entry with UUID {self.entry_uuid(leaf_hash)}")
            return Inclusion(entry, head, self._inclusion(r, entry.log_index, head.size))

    def consistency_proof(self, *, size1: int, size2: int) -> tuple[TreeHeadRecord, list[bytes]]:
        """Proof that the tree of ``size1`` is a prefix of the tree of ``size2``.

        Returns the latest head (whose size must be >= size2) and the proof.
        """
        with store.reading(self.engine) as r:
            head = self._head(r)
            return head, self._consistency(r, head, size1, size2)

    def root_at(self, size: int) -> bytes:
        """Root hash of the tree at ``size`` (any size up to the current one)."""
        with store.reading(self.engine) as r:
            return self._root_at(r, size, self._head(r))

    def consistency_with_root(self, *, size1: int, size2: int) -> tuple[list[bytes], bytes]:
        """:meth:`consistency_proof` and the root of the tree of ``size2`` (the Rekor proof API).

        The nodes depend only on the two sizes, so they are read with the head,
        in one statement (a round trip per statement on PostgreSQL).
        """
        with store.reading(self.engine) as r:
            if not 0 < size1 < size2 < 1 << 63:
                head = self._head(r)
                return self._consistency(r, head, size1, size2), self._root_at(r, size2, head)
            levels, indexes, begin, end = merkle.consistency_path(size1=size1, size2=size2)
            roots = merkle.perfect_nodes(size2)
            levels, indexes = [*levels, *(n.level for n in roots)], [*indexes, *(n.index for n in roots)]
            keys = _node_keys(levels, indexes)
            head, found = r.head_and_nodes(self.tree, [k for k in keys if k not in self._node_cache])
            if head is None:
                raise NotFound("the log has no signed tree head")
            self._check_sizes(head, size1, size2)
            hashes = self._node_hashes(r, keys, head.size, prefetched=found)
            n = len(hashes) - len(roots)
            proof = merkle.rehash(hashes[:n], begin, end)
            if size2 == head.size:
                return proof, head.root_hash  # signed, so no need to recompute it
            return proof, merkle.CompactRange.from_hashes(0, size2, hashes[n:]).root()

    @staticmethod
    def _check_sizes(head: TreeHeadRecord, size1: int, size2: int) -> None:
        if size2 > head.size:
            raise BadRequest(f"lastSize {size2} is beyond the current tree size {head.size}")
        if not 0 <= size1 <= size2:
            raise BadRequest(f"firstSize {size1} must be between 0 and lastSize {size2}")

    def _consistency(self, r: store.Reader, head: TreeHeadRecord, size1: int, size2: int) -> list[bytes]:
        self._check_sizes(head, size1, size2)
        if size1 == 0 or size1 == size2:
            return []
        keys, begin, end = _keyed(merkle.consistency_path(size1=size1, size2=size2))
        return merkle.rehash(self._node_hashes(r, keys, head.size), begin, end)

    def _root_at(self, r: store.Reader, size: int, head: TreeHeadRecord) -> bytes:
        if not 0 <= size <= head.size:
            raise BadRequest(f"size {size} is beyond the current tree size {head.size}")
        if size == head.size:
            return head.root_hash  # signed, so no need to recompute it
        ids = merkle.perfect_nodes(size)
        hashes = self._node_hashes(r, _node_keys([n.level for n in ids], [n.index for n in ids]), head.size)
        return merkle.CompactRange.from_hashes(0, size, hashes).root()

    def entries(self, indexes: Sequence[int]) -> list[Inclusion]:
        """The entries at these indexes that exist, in the order asked, with proofs (two reads in all)."""
        with store.reading(self.engine) as r:
            head = self._head(r)
            found = r.entries(self.tree, [i for i in indexes if 0 <= i < head.size])
            entries = [found[i] for i in indexes if i in found]
            proofs = self._inclusions(r, [e.log_index for e in entries], head.size)
            return [Inclusion(e, head, p) for e, p in zip(entries, proofs)]

    def entries_by_leaf_hashes(self, leaf_hashes: Sequence[bytes]) -> list[Inclusion]:
        with store.reading(self.engine) as r:
            head = self._head(r)
            entries = []
            for h in leaf_hashes:
                entry = r.entry_by_leaf_hash(self.tree, h)
                if entry is not None and entry.log_index < head.size:
                    entries.append(entry)
            proofs = self._inclusions(r, [e.log_index for e in entries], head.size)
            return [Inclusion(e, head, p) for e, p in zip(entries, proofs)]

    def search(self, key: str, *, limit: int) -> list[int]:
        with self.engine.connect() as conn:
            return store.search(conn, self.tree, key, limit=limit)

    def leaf_hashes_of(self, indexes: Sequence[int]) -> list[bytes]:
        with self.engine.connect() as conn:
            return [e.leaf_hash for i in indexes if (e := store.get_entry(conn, self.tree, i)) is not None]

    # --- tiles (C2SP tlog-tiles) -------------------------------------------------------

    def tile(self, level: int, index: int, width: int) -> bytes:
        """Tile ``level``/``index`` of ``width`` hashes; only tiles the tree already covers."""
        with store.reading(self.engine) as r:
            size = self._head(r).size
            # Nodes of tile level L are tree nodes at height 8L; the node with
            # index j exists once (j+1) * 256**L leaves are in the tree.
            available = (size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH
            if available < width:
                raise NotFound(f"tile {level}/{index} of width {width} is not in the tree of size {size}")
            begin = index * TILE_WIDTH
            hashes = r.level_range(self.tree, TILE_HEIGHT * level, begin, begin + width)
        if len(hashes) != width:
            raise Internal(f"tree {self.tree} holds {len(hashes)} of the {width} nodes of tile {level}/{index}")
        return b"".join(hashes)

    def entry_bundle(self, index: int, width: int) -> bytes:
        """Entry bundle ``index`` of ``width`` entries, each prefixed by a big-endian uint16 length."""
        with store.reading(self.engine) as r:
            size = self._head(r).size
            begin = index * TILE_WIDTH
            if size - begin < width:
                raise NotFound(f"entry bundle {index} of width {width} is not in the tree of size {size}")
            bodies = r.bodies_range(self.tree, begin, begin + width)
        if len(bodies) != width:
            raise NotFound(f"entry bundle {index} is incomplete")
        return b"".join(len(b).to_bytes(2, "big") + b for b in bodies)

    # --- helpers -----------------------------------------------------------------------

    def _head(self, conn: object) -> TreeHeadRecord:
        """The latest head, on a Core connection or a :data:`store.Reader`."""
        if isinstance(conn, store.DriverReader):
            head = conn.latest_head(self.tree)
        else:
            head = store.latest_head(conn, self.tree)  # type: ignore[arg-type]
        if head is None:
            raise NotFound("the log has no signed tree head")
        return head

    def _inclusion(self, r: store.Reader, index: int, size: int) -> list[bytes]:
        keys, begin, end = _keyed(merkle.inclusion_path(index, size))
        return merkle.rehash(self._node_hashes(r, keys, size), begin, end)

    def _inclusions(self, r: store.Reader, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of these leaves in the tree of ``size``, with one read for all their nodes."""
        paths = [merkle.inclusion_path(i, size) for i in indexes]
        levels = [lvl for p in paths for lvl in p[0]]
        positions = [i for p in paths for i in p[1]]
        hashes = self._node_hashes(r, _node_keys(levels, positions), size)
        out, at = [], 0
        for lv, _ix, begin, end in paths:
            n = len(lv)
            out.append(merkle.rehash(hashes[at : at + n], begin, end))
            at += n
        return out

    def _node_hashes(
        self,
        r: store.Reader,
        keys: Sequence[int],
        size: int,
        *,
        prefetched: dict[int, bytes] | None = None,
    ) -> list[bytes]:
        """Hashes of the perfect nodes with these keys: from this process's cache of the upper
        levels, then from ``prefetched`` (read with the head), the rest in one read. A missing
        node means the database does not hold a tree it claims to hold."""
        bits = NODE_INDEX_BITS
        cache = self._node_cache
        hashes = list(map(cache.get, keys))
        if None not in hashes:
            return hashes  # type: ignore[return-value]
        missing = [k for k, h in zip(keys, hashes) if h is None]
        found = {} if prefetched is None else prefetched  # the caller's, added to
        if unread := [k for k in missing if k not in found]:
            found.update(r.node_hashes(self.tree, unread))
        if not found.keys() >= set(missing):
            k = min(set(missing) - found.keys())
            raise Internal(f"tree {self.tree} is missing node level={k >> bits} index={k & ((1 << bits) - 1)}")
        if len(cache) < _CACHE_MAX:
            floor = max(_CACHE_MIN_LEVEL, size.bit_length() - _CACHE_SPAN) << bits
            cache.update((k, h) for k, h in found.items() if k >= floor)
        return [h if h is not None else found[k] for k, h in zip(keys, hashes)]
