"""Which node hashes make up an inclusion or consistency proof.

Node selection is kept apart from hashing so that a log can work out the proof
shape first, fetch all hashes in one storage round trip, then assemble:

    nodes = inclusion(index, size)
    proof = nodes.rehash(storage.get_hashes(nodes.ids))

Every selected id is a *perfect* node (its leaves all lie inside the tree), so
storage that keeps each perfect-subtree hash can serve it. A tree whose size is
not a power of two also has one *ephemeral* node on its right border whose
subtree is incomplete; its hash is not stored but folded from the perfect nodes
``ids[begin:end]`` (right to left, as a compact range root) by ``rehash``.

Proof layout (RFC 6962 §2.1.1 PATH, §2.1.2 PROOF; RFC 9162 §2.1.3, §2.1.4),
leaf to root, for a start node X inside perfect subtree P_j of the tree, whose
perfect subtrees are P_0 (leftmost, largest) ... P_k:

1. the siblings of X and its ancestors inside P_j, bottom up;
2. the hash of everything right of P_j (one perfect node, or the ephemeral
   fold of several), if j < k;
3. P_{j-1}, ..., P_0.

For inclusion X is the leaf. For consistency X is the last perfect subtree of
the old tree, and its own hash is prepended unless it *is* the old tree (old
size a power of two, when the verifier already holds it as ``root1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tlog.merkle.hasher import hash_children
from tlog.merkle.nodes import NodeID, make_node

__all__ = ["NodePath", "Nodes", "consistency", "consistency_path", "inclusion", "inclusion_path", "rehash"]


@dataclass(frozen=True, slots=True)
class Nodes:
    """The node ids of a proof, and where its ephemeral node is folded.

    ``ids`` lists the perfect nodes whose hashes the caller must fetch.
    ``ids[begin:end]`` are the two or more perfect nodes that together make up
    the ephemeral node; ``rehash`` replaces that slice with their fold. When
    nothing needs folding, ``begin == end``. Every other id maps one to one to
    a proof hash.
    """

    ids: tuple[NodeID, ...]
    begin: int = 0
    end: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.begin <= self.end <= len(self.ids):
            raise ValueError(f"bad fold slice [{self.begin}:{self.end}] of {len(self.ids)} ids")

    def rehash(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the fetched hashes (one per id, same order) into the proof, leaf to root.

        ``ValueError`` if the number of hashes does not match ``ids``.
        """
        if len(hashes) != len(self.ids):
            raise ValueError(f"got {len(hashes)} hashes for {len(self.ids)} proof nodes")
        return rehash(hashes, self.begin, self.end)


NodePath = tuple[list[int], list[int], int, int]
"""A proof's nodes without ``NodeID`` objects, for hot paths: ``(levels,
indexes, begin, end)``; node ``i`` is ``NodeID(levels[i], indexes[i])`` and
``begin``/``end`` are those of :class:`Nodes`."""


def rehash(hashes: Sequence[bytes], begin: int, end: int) -> list[bytes]:
    """:meth:`Nodes.rehash` for a :data:`NodePath`: fold ``hashes[begin:end]`` into one (length not checked)."""
    if end - begin < 2:
        return list(hashes)
    acc = hashes[end - 1]
    for i in range(end - 2, begin - 1, -1):
        acc = hash_children(hashes[i], acc)
    out = list(hashes[:begin])
    out.append(acc)
    out.extend(hashes[end:])
    return out


def _path(level: int, index: int, size: int) -> NodePath:
    """Proof nodes linking the perfect node (level, index) to the root of a tree of ``size``.

    Precondition: ``(index + 1) << level <= size`` (the node is perfect).
    """
    first = index << level
    # The perfect subtree P_j holding the node: its level is the highest bit in
    # which `first` and `size` differ (there `size` has a 1 and `first` a 0).
    top = (first ^ size).bit_length() - 1
    levels = list(range(level, top))
    indexes = [(index >> (lvl - level)) ^ 1 for lvl in levels]
    begin = len(levels)
    # The right border [(size >> top) << top, size), aligned to 2**top and
    # narrower than that: one perfect node per set bit of its width, largest
    # first (what range_nodes returns for it).
    pos = (size >> top) << top
    width = size - pos
    lvl = top
    while width:
        if (width >> lvl) & 1:
            levels.append(lvl)
            indexes.append(pos >> lvl)
            pos += 1 << lvl
            width -= 1 << lvl
        lvl -= 1
    end = len(levels)
    if end - begin < 2:  # zero or one perfect node: nothing to fold
        begin = end
    # P_{j-1} .. P_0: one per set bit of `size` above `top`, smallest first.
    rest = size >> (top + 1)
    lvl = top + 1
    while rest:
        if rest & 1:
            levels.append(lvl)
            indexes.append(rest - 1)
        rest >>= 1
        lvl += 1
    return levels, indexes, begin, end


def _nodes(path: NodePath) -> Nodes:
    levels, indexes, begin, end = path
    return Nodes(tuple(map(make_node, levels, indexes)), begin, end)


def inclusion_path(index: int, size: int) -> NodePath:
    """:func:`inclusion` as a :data:`NodePath` (no ``NodeID`` objects)."""
    if index < 0 or index >= size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    return _path(0, index, size)


def inclusion(index: int, size: int) -> Nodes:
    """Nodes of the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Precondition: ``0 <= index < size``; ``ValueError`` otherwise.
    """
    return _nodes(inclusion_path(index, size))


def consistency_path(*, size1: int, size2: int) -> NodePath:
    """:func:`consistency` as a :data:`NodePath` (no ``NodeID`` objects)."""
    if size1 <= 0 or size2 < size1:
        raise ValueError(f"invalid consistency sizes: size1={size1}, size2={size2}")
    if size1 == size2:
        return [], [], 0, 0
    # The last (smallest) perfect subtree of the old tree starts the path.
    shift = (size1 & -size1).bit_length() - 1
    start = (size1 >> shift) - 1
    levels, indexes, begin, end = _path(shift, start, size2)
    if start == 0:  # size1 is a power of two: the start node is root1 itself
        return levels, indexes, begin, end
    return [shift, *levels], [start, *indexes], begin + 1, end + 1


def consistency(*, size1: int, size2: int) -> Nodes:
    """Nodes of the proof that the tree of ``size1`` leaves is a prefix of that of ``size2``.

    Precondition: ``0 < size1 <= size2``; ``ValueError`` otherwise. Equal sizes
    give an empty proof.
    """
    return _nodes(consistency_path(size1=size1, size2=size2))
