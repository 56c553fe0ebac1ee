"""The entry log across key rotations: frozen shards, then the active one.

A key rotation (:mod:`tlog.rotation`) never re-signs history. It freezes the
current tree, whose last checkpoint stays verifiable under the old keys
forever, and starts a new tree with a new origin and new keys. Clients see one
log, as with Rekor's shards:

* ``logIndex`` is *global*: a frozen shard's entries keep the indexes they
  were given, and the active shard's local index ``i`` is ``offset + i``,
  where ``offset`` is the total size of the frozen shards before it;
* an inclusion proof's ``logIndex`` and ``treeSize`` are local to the shard
  whose checkpoint it is checked against;
* an entry UUID starts with its shard's tree ID, so a UUID names one shard;
* each shard's entries are signed (SETs) and checkpointed with that shard's
  own keys, which is why retired keys are kept.

A frozen shard never changes, so its size and offset are read once at start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from tlog.errors import BadRequest, Internal, NotFound
from tlog.keys import (
    ECDSA_KEY_FILE,
    KeyFileError,
    LogKeys,
)
from tlog.log import Inclusion, TransparencyLog
from tlog.storage import store
from tlog.storage.store import TreeInfo

log = logging.getLogger(__name__)

#: Tree purpose of the Rekor-style entry log.
ENTRIES = "entries"

#: Where a retired shard's keys live, under the data directory: ``shards/<tree ID hex>/``.
SHARD_KEYS_DIR = "shards"


def retired_keys_dir(data_dir: Path, info: TreeInfo) -> Path:
    return data_dir / SHARD_KEYS_DIR / f"{info.tree_id:016x}"


def load_retired_keys(data_dir: Path, info: TreeInfo) -> LogKeys:
    """The keys a frozen shard was signed with, checked against its stored log ID."""
    where = retired_keys_dir(data_dir, info)
    keys = LogKeys.read(where)
    if keys.log_id != info.log_id:
        raise KeyFileError(
            f"the key in {where / ECDSA_KEY_FILE} has log ID {keys.log_id.hex()}, "
            f"but shard {info.origin!r} was signed by log ID {info.log_id.hex()}"
        )
    return keys


@dataclass(frozen=True, slots=True)
class Shard:
    """One tree of the entry log, with the global index of its first entry."""

    log: TransparencyLog
    #: Global index of local index 0.
    offset: int
    #: Final size of a frozen shard; None for the active one.
    size: int | None

    @property
    def frozen(self) -> bool:
        return self.size is not None


class ShardedLog:
    """Reads of the entry log by global index, UUID or search key, over every shard."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        if not shards or shards[-1].frozen or any(not s.frozen for s in shards[:-1]):
            raise Internal("a sharded log needs frozen shards followed by exactly one active shard")
        self.shards = tuple(shards)
        self.active = shards[-1]
        self.frozen = self.shards[:-1]
        self._by_tree_id = {s.log.tree_id_hex: s for s in self.shards}

    @classmethod
    def open(cls, engine: Engine, active: TransparencyLog, data_dir: Path) -> ShardedLog:
        """Attach the frozen shards that precede ``active`` (keys from ``data_dir/shards``)."""
        with engine.connect() as conn:
            older = [t for t in store.list_trees(conn) if t.purpose == active.info.purpose and t.id < active.tree]
        shards: list[Shard] = []
        offset = 0
        for info in older:
            if info.frozen_at is None:
                raise Internal(f"shard {info.origin!r} precedes the active shard but was never frozen")
            shard_log = TransparencyLog(engine, load_retired_keys(data_dir, info), info, index_offset=offset)
            size = shard_log.latest_head().size
            shards.append(Shard(shard_log, offset, size))
            offset += size
        active.index_offset = offset
        shards.append(Shard(active, offset, None))
        if older:
            log.info("entry log: %d frozen shard(s) of %d entries before the active shard %r", len(older), offset, active.info.origin)
        return cls(shards)

    # --- routing -----------------------------------------------------------------------

    def by_tree_id(self, tree_id: str | None) -> Shard:
        """The shard named by a ``treeID`` query parameter (decimal, as Rekor), or the active one."""
        if tree_id is None:
            return self.active
        if not tree_id.isascii() or not tree_id.isdigit() or len(tree_id) > 19:
            raise BadRequest(f"treeID {tree_id[:40]!r} is not a decimal tree ID")
        shard = self._by_tree_id.get(f"{int(tree_id):016x}")
        if shard is None:
            raise NotFound(f"treeID {tree_id} is not a shard of this log")
        return shard

    def locate(self, global_index: int) -> tuple[Shard, int] | None:
        """The shard holding ``global_index`` and its local index there, if it is in a shard's range."""
        for shard in self.frozen:
            if global_index < shard.offset + shard.size:  # type: ignore[operator]
                return (shard, global_index - shard.offset) if global_index >= shard.offset else None
        if global_index >= self.active.offset:
            return self.active, global_index - self.active.offset
        return None

    def _shards_for_uuid(self, uuid: str) -> tuple[list[Shard], bytes]:
        """Shards an entry UUID may be in (one for 80 hex digits, all for 64) and its leaf hash."""
        u = uuid.lower()
        if len(u) == 80 and u[:16] in self._by_tree_id:
            shard = self._by_tree_id[u[:16]]
            return [shard], shard.log.leaf_hash_from_uuid(u)
        if len(u) == 80:
            self.active.log.leaf_hash_from_uuid(u[16:])  # a malformed UUID is a 400 before it is a 404
            raise NotFound(f"entry {uuid} belongs to tree {u[:16]}, which is not a shard of this log")
        return list(reversed(self.shards)), self.active.log.leaf_hash_from_uuid(u)

    # --- reads -------------------------------------------------------------------------

    def entry_by_index(self, global_index: int) -> tuple[Shard, Inclusion]:
        where = self.locate(global_index)
        if where is None:
            raise NotFound(f"no entry at logIndex {global_index}")
        shard, local = where
        try:
            return shard, shard.log.entry_by_index(local)
        except NotFound:
            raise NotFound(f"no entry at logIndex {global_index}") from None

    def entry_by_uuid(self, uuid: str) -> tuple[Shard, Inclusion]:
        shards, leaf_hash = self._shards_for_uuid(uuid)
        for shard in shards:
            try:
                return shard, shard.log.entry_by_leaf_hash(leaf_hash)
            except NotFound:
                continue
        raise NotFound(f"no entry with UUID {uuid}")

    def entries(self, global_indexes: Sequence[int]) -> list[tuple[Shard, Inclusion]]:
        """Entries at these global indexes that exist, in the order asked (one batch per shard)."""
        wanted: dict[int, list[int]] = {}
        located: list[tuple[Shard, int]] = []
        for g in global_indexes:
            where = self.locate(g)
            if where is not None:
                located.append(where)
                wanted.setdefault(id(where[0]), []).append(where[1])
        found: dict[tuple[int, int], Inclusion] = {}
        for shard in self.shards:
            if id(shard) in wanted:
                for inc in shard.log.entries(wanted[id(shard)]):
                    found[(id(shard), inc.entry.log_index)] = inc
        return [(s, found[(id(s), i)]) for s, i in located if (id(s), i) in found]

    def entries_by_uuids(self, uuids: Iterable[str]) -> list[tuple[Shard, Inclusion]]:
        """Entries named by UUID; unknown ones (and other trees' UUIDs) are left out."""
        out = []
        for u in uuids:
            try:
                out.append(self.entry_by_uuid(u))
            except NotFound:
                continue
        return out

    def entries_by_leaf_hashes(self, leaf_hashes: Sequence[bytes]) -> list[tuple[Shard, Inclusion]]:
        out: list[tuple[Shard, Inclusion]] = []
        remaining = list(leaf_hashes)
        for shard in reversed(self.shards):
            if not remaining:
                break
            found = shard.log.entries_by_leaf_hashes(remaining)
            out.extend((shard, inc) for inc in found)
            hit = {inc.entry.leaf_hash for inc in found}
            remaining = [h for h in remaining if h not in hit]
        return out

    def search(self, key: str, *, limit: int) -> list[tuple[int, str]]:
        """``(global index, UUID)`` of entries under a search key in every shard, lowest index first."""
        hits: list[tuple[int, str]] = []
        for shard in self.shards:
            local = shard.log.search(key, limit=limit)
            for i, leaf in zip(local, shard.log.leaf_hashes_of(local)):
                hits.append((shard.offset + i, shard.log.entry_uuid(leaf)))
        return sorted(hits)[:limit]
