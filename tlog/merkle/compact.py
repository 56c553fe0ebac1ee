"""Compact Merkle ranges: the O(log n) state needed to keep extending a tree.

A compact range ``[begin, end)`` holds one hash per node of
``range_nodes(begin, end)``. Appending a leaf pushes its hash and then merges
the last two hashes once per trailing one bit of ``end`` (each such bit means
the new node has just become the right sibling of the last stored node), so an
append costs one leaf push plus, amortised, one hash. The log's sequencer uses
it to compute each new root while a *visitor* hands every newly completed
perfect node to storage, which is how storage ends up holding all perfect
subtree hashes that proofs need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from tlog.merkle.hasher import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, hash_children
from tlog.merkle.nodes import NodeID, make_node, range_nodes

__all__ = ["CompactRange", "Visitor", "root_from_leaf_hashes"]

Visitor = Callable[[NodeID, bytes], None]
"""Called with each perfect node created by an append, and its hash."""

_sha256 = hashlib.sha256


class CompactRange:
    """The hashes of the perfect subtrees tiling the leaf range ``[begin, end)``.

    Preconditions: ``0 <= begin <= end`` and ``hashes`` holds one hash per node
    of ``range_nodes(begin, end)``, in that order (``ValueError`` otherwise).
    """

    __slots__ = ("_begin", "_end", "_hashes")

    def __init__(self, begin: int = 0, end: int = 0, hashes: Sequence[bytes] = ()) -> None:
        want = len(range_nodes(begin, end))  # also rejects a bad range
        if len(hashes) != want:
            raise ValueError(
                f"compact range [{begin}, {end}) needs {want} hashes, got {len(hashes)}"
            )
        # Copied as immutable bytes (storage drivers may hand out memoryviews).
        copied = [bytes(h) for h in hashes]
        for h in copied:
            if len(h) != HASH_SIZE:
                raise ValueError(f"hash of {len(h)} bytes in compact range, want {HASH_SIZE}")
        self._begin = begin
        self._end = end
        self._hashes: list[bytes] = copied

    @classmethod
    def from_hashes(cls, begin: int, end: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a range from stored node hashes (e.g. when a log restarts).

        ``ValueError`` unless there is exactly one 32-byte hash per node of
        ``range_nodes(begin, end)``.
        """
        return cls(begin, end, hashes)

    @property
    def begin(self) -> int:
        """First leaf index in the range (inclusive)."""
        return self._begin

    @property
    def end(self) -> int:
        """Leaf index just past the range; the tree size when ``begin == 0``."""
        return self._end

    @property
    def hashes(self) -> list[bytes]:
        """A copy of the node hashes, in ``range_nodes(begin, end)`` order."""
        return list(self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(begin={self._begin}, end={self._end}, hashes=<{len(self._hashes)}>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self._begin, self._end, self._hashes) == (other._begin, other._end, other._hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def append(self, leaf_hash: bytes, visitor: Visitor | None = None) -> None:
        """Add the leaf hash of leaf ``end`` and extend the range by one.

        ``visitor`` (if given) sees the new leaf node and then every perfect
        node the append completes, bottom up. ``TypeError`` unless ``leaf_hash``
        is exactly ``bytes`` (a bytearray could change after being stored) and
        ``ValueError`` unless it is 32 bytes long.
        """
        self.extend((leaf_hash,), visitor)

    def extend(self, leaf_hashes: Iterable[bytes], visitor: Visitor | None = None) -> None:
        """Append each leaf hash in turn; see ``append``.

        If a hash is not ``bytes`` (``TypeError``) or not 32 bytes long
        (``ValueError``), or the visitor raises, the leaves before that one stay
        added and that one is not.
        """
        # One loop for both methods, with everything bound to locals: this is
        # the sequencer's inner loop.
        hashes = self._hashes
        pop = hashes.pop
        push = hashes.append
        sha = _sha256
        prefix = NODE_PREFIX
        begin = self._begin
        end = self._end
        node = make_node
        bytes_ = bytes
        hash_size = HASH_SIZE
        try:
            for h in leaf_hashes:
                # Checked up front so that nothing below can fail half way.
                if h.__class__ is not bytes_ or len(h) != hash_size:
                    _reject_leaf_hash(h)
                # Each trailing one bit of `end` is a completed left sibling.
                merges = (end ^ (end + 1)).bit_length() - 1
                if begin:
                    # ...unless the merged node would start before `begin`.
                    cap = (end + 1 - begin).bit_length() - 1
                    if cap < merges:
                        merges = cap
                if visitor is None:
                    for _ in range(merges):
                        h = sha(prefix + pop() + h).digest()
                else:
                    # Peek instead of pop so that a visitor that raises
                    # leaves the range as it was before this leaf.
                    visitor(node(0, end), h)
                    index = end
                    for level in range(1, merges + 1):
                        h = sha(prefix + hashes[-level] + h).digest()
                        index >>= 1
                        visitor(node(level, index), h)
                    if merges:
                        del hashes[-merges:]
                push(h)
                end += 1
        finally:
            self._end = end

    def extend_levels(self, leaf_hashes: Sequence[bytes]) -> list[tuple[int, list[bytes]]]:
        """Append all ``leaf_hashes`` and return every perfect node created, level by level.

        ``result[level] == (first, hashes)``: the new nodes of that level are
        ``(level, first), (level, first + 1), ...`` with those hashes (level 0
        holds the leaves themselves). Within a level the new nodes are always
        contiguous, so storage can write each level as one run. The nodes are
        exactly those ``extend`` would show a visitor, and the range ends in
        the same state.

        For a range starting at 0 (a tree) this hashes level by level, a
        whole level per list comprehension, with no per-leaf Python loop and
        no ``NodeID``: about three times as fast as ``extend`` with a visitor.
        It is all or nothing: if a hash is not ``bytes`` (``TypeError``) or not
        32 bytes long (``ValueError``), nothing is added.
        """
        leaves = list(leaf_hashes)
        hash_size = HASH_SIZE
        bytes_ = bytes
        for h in leaves:
            if h.__class__ is not bytes_ or len(h) != hash_size:
                _reject_leaf_hash(h)
        if not leaves:
            return []
        if self._begin:
            return self._extend_levels_visiting(leaves)
        old = self._end
        new = old + len(leaves)
        # The range's hashes, by level: one per set bit of `old`, highest first.
        carry: dict[int, bytes] = {}
        rest = iter(self._hashes)
        for level in range(old.bit_length() - 1, -1, -1):
            if (old >> level) & 1:
                carry[level] = next(rest)
        sha = _sha256
        out: list[tuple[int, list[bytes]]] = []
        level, current = 0, leaves
        while current:
            first = old >> level
            out.append((first, current))
            # Pair from an even index: an odd `first` pairs with its left sibling from the range.
            it = iter([carry[level], *current] if first & 1 else current)
            current = [sha(b"\x01" + left + right).digest() for left, right in zip(it, it)]
            level += 1
        # The new range: node (level, (new >> level) - 1) for each set bit of `new`.
        hashes: list[bytes] = []
        for lvl in range(new.bit_length() - 1, -1, -1):
            if (new >> lvl) & 1:
                if lvl < len(out) and (new >> lvl) > (old >> lvl):
                    hashes.append(out[lvl][1][-1])
                else:
                    hashes.append(carry[lvl])
        self._hashes[:] = hashes
        self._end = new
        return out

    def _extend_levels_visiting(self, leaves: list[bytes]) -> list[tuple[int, list[bytes]]]:
        out: list[tuple[int, list[bytes]]] = []

        def collect(node: NodeID, h: bytes) -> None:
            if node.level == len(out):
                out.append((node.index, []))
            out[node.level][1].append(h)

        self.extend(leaves, collect)
        return out

    def root(self) -> bytes:
        """Fold the hashes right to left: the tree root (RFC 6962 MTH) when ``begin == 0``.

        An empty range starting at 0 gives ``EMPTY_ROOT``. For ``begin > 0`` the
        fold is the hash of the unbalanced subtree over ``[begin, end)`` only if
        ``begin`` is a multiple of a power of two ``>= end - begin``; an empty
        range there has no hash (``ValueError``).
        """
        hashes = self._hashes
        if not hashes:
            if self._begin:
                raise ValueError(f"empty compact range at {self._begin} has no root")
            return EMPTY_ROOT
        acc = hashes[-1]
        for i in range(len(hashes) - 2, -1, -1):
            acc = hash_children(hashes[i], acc)
        return acc


def _reject_leaf_hash(h: object) -> None:
    if not isinstance(h, bytes):
        raise TypeError(f"leaf hash must be bytes, not {type(h).__name__}")
    raise ValueError(f"leaf hash of {len(h)} bytes, want {HASH_SIZE}")


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """The RFC 6962 root of the tree with these leaf hashes (``EMPTY_ROOT`` if none)."""
    cr = CompactRange()
    cr.extend(leaf_hashes)
    return cr.root()
