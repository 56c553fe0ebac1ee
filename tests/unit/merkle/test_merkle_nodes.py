"""NodeID addressing and the compact range decomposition in tlog.merkle.nodes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlog.merkle.nodes import NodeID, make_node, perfect_nodes, range_nodes


def test_node_id_range() -> None:
    n = NodeID(3, 5)
    assert (n.begin, n.end) == (40, 48)
    assert (NodeID(0, 7).begin, NodeID(0, 7).end) == (7, 8)


def test_node_id_parent_and_sibling() -> None:
    assert NodeID(0, 5).parent() == NodeID(1, 2)
    assert NodeID(0, 4).parent() == NodeID(1, 2)
    assert NodeID(0, 5).sibling() == NodeID(0, 4)
    assert NodeID(2, 2).sibling() == NodeID(2, 3)
    for node in (NodeID(0, 9), NodeID(4, 6), NodeID(1, 0)):
        parent = node.parent()
        assert node.sibling().parent() == parent
        assert parent.begin <= node.begin < node.end <= parent.end
        halves = {parent.begin, parent.begin + (1 << node.level)}
        assert {node.begin, node.sibling().begin} == halves


def test_node_id_is_frozen_hashable_and_slotted() -> None:
    n = NodeID(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.level = 3  # type: ignore[misc]
    assert not hasattr(n, "__dict__")
    assert {n, NodeID(1, 2)} == {n}
    assert NodeID(level=1, index=2) == n


def test_make_node_builds_identical_node_ids() -> None:
    for level, index in ((0, 0), (3, 5), (63, 2**70)):
        fast, slow = make_node(level, index), NodeID(level, index)
        assert type(fast) is NodeID
        assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
        assert (fast.level, fast.index) == (level, index)
        assert (fast.begin, fast.end) == (slow.begin, slow.end)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.index = 1  # type: ignore[misc]


def _check_decomposition(begin: int, end: int) -> None:
    nodes = range_nodes(begin, end)
    # Contiguous tiling of exactly [begin, end) by aligned perfect nodes.
    pos = begin
    for node in nodes:
        assert node.level >= 0 and node.index >= 0
        assert node.begin == pos
        pos = node.end
    assert pos == end
    # Minimal: no two neighbours are siblings (they would merge into their parent).
    for a, b in zip(nodes, nodes[1:]):
        assert not (a.level == b.level and a.index % 2 == 0 and b.index == a.index + 1)
    # Levels strictly rise then strictly fall, with at most one repeat at the
    # top (e.g. [1, 3) is two leaves), so at most ~2*log2(width) nodes.
    levels = [n.level for n in nodes]
    peak = levels.index(max(levels)) if levels else 0
    assert all(x < y for x, y in zip(levels[:peak], levels[1 : peak + 1]))
    tail = levels[peak:]
    if len(tail) > 1 and tail[0] == tail[1]:
        tail = tail[1:]
    assert all(x > y for x, y in zip(tail, tail[1:]))
    assert len(nodes) <= 2 * max(1, (end - begin).bit_length())


def test_range_nodes_exhaustive_small() -> None:
    for begin in range(0, 70):
        for end in range(begin, 70):
            _check_decomposition(begin, end)


@given(begin=st.integers(0, 2**64), width=st.integers(0, 2**64))
@settings(max_examples=200, database=None)
def test_range_nodes_large(begin: int, width: int) -> None:
    _check_decomposition(begin, begin + width)


def test_range_nodes_examples() -> None:
    assert range_nodes(0, 0) == []
    assert range_nodes(5, 5) == []
    assert range_nodes(3, 13) == [NodeID(0, 3), NodeID(2, 1), NodeID(2, 2), NodeID(0, 12)]
    assert range_nodes(0, 8) == [NodeID(3, 0)]


def test_range_nodes_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="5"):
        range_nodes(5, 4)
    with pytest.raises(ValueError):
        range_nodes(-1, 4)


def test_perfect_nodes() -> None:
    assert perfect_nodes(0) == []
    assert perfect_nodes(7) == [NodeID(2, 0), NodeID(1, 2), NodeID(0, 6)]
    for size in range(0, 300):
        nodes = perfect_nodes(size)
        assert nodes == range_nodes(0, size)
        assert len(nodes) == size.bit_count()
        levels = [n.level for n in nodes]
        assert levels == sorted(levels, reverse=True)  # largest first
        assert sum(1 << lvl for lvl in levels) == size
