"""Node addressing for Merkle trees that grow to the right.

A node is named by ``NodeID(level, index)``: the ``index``-th node (0-based,
left to right) at height ``level`` above the leaves. It covers the leaf range
``[index * 2**level, (index + 1) * 2**level)``. The name does not depend on the
tree size, so a node hash never changes once every leaf under it exists; such a
node is *perfect* in a tree of size ``n`` when its whole range is ``<= n``.
Storage keeps exactly these perfect nodes, and every other hash (roots, the
"ephemeral" right-border nodes of proofs) is folded from them on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["NodeID", "make_node", "perfect_nodes", "range_nodes"]


@dataclass(frozen=True, slots=True)
class NodeID:
    """The node at height ``level`` (0 = leaves) and position ``index`` in that level.

    Preconditions (not checked, as NodeIDs are built on hot paths):
    ``level >= 0`` and ``index >= 0``.
    """

    level: int
    index: int

    @property
    def begin(self) -> int:
        """First leaf index covered by this node (inclusive)."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """Leaf index just past the last leaf covered by this node (exclusive)."""
        return (self.index + 1) << self.level

    def parent(self) -> NodeID:
        """The node one level up whose range contains this one."""
        return NodeID(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeID:
        """The other child of this node's parent."""
        return NodeID(self.level, self.index ^ 1)


def _fast_node_factory() -> Callable[[int, int], NodeID]:
    """Build NodeIDs without the frozen-dataclass ``__init__`` (about twice as fast).

    The generated ``__init__`` goes through ``object.__setattr__`` to get past
    the frozen guard; writing the two slots through their descriptors gives an
    identical object. Used on the hot paths (compact range visitors, proof
    selection); everything else should call ``NodeID(level, index)``.
    """
    new = object.__new__
    set_level = NodeID.__dict__["level"].__set__
    set_index = NodeID.__dict__["index"].__set__

    def make(level: int, index: int, /) -> NodeID:
        node = new(NodeID)
        set_level(node, level)
        set_index(node, index)
        return node

    return make


make_node = _fast_node_factory()
"""``make_node(level, index) == NodeID(level, index)``, faster; for hot paths."""


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Return the perfect subtrees that exactly tile the leaf range ``[begin, end)``.

    This is the compact range decomposition: the unique minimal list of aligned
    perfect subtrees covering the range, ordered left to right. Sizes first grow
    (while ``begin`` is poorly aligned) and then shrink; for ``begin == 0`` they
    strictly shrink, largest first. At most about ``2 * log2(end - begin)`` nodes.

    Precondition: ``0 <= begin <= end``; ``ValueError`` otherwise.
    """
    if begin < 0 or end < begin:
        raise ValueError(f"invalid range [{begin}, {end})")
    out: list[NodeID] = []
    while begin < end:
        # The biggest node that fits the remaining width...
        level = (end - begin).bit_length() - 1
        if begin:
            # ...capped by how well `begin` is aligned (its trailing zero bits).
            align = (begin & -begin).bit_length() - 1
            if align < level:
                level = align
        out.append(make_node(level, begin >> level))
        begin += 1 << level
    return out


def perfect_nodes(size: int) -> list[NodeID]:
    """Return the perfect subtrees of a tree of ``size`` leaves, left to right.

    There is one per set bit of ``size`` (largest first); the tree root is
    these hashes folded right to left. Precondition: ``size >= 0``.
    """
    return range_nodes(0, size)
