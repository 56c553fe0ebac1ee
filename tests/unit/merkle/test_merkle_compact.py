"""CompactRange (tlog.merkle.compact): visitor contract, construction, failure atomicity."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeID,
    hash_children,
    hash_leaf,
    perfect_nodes,
    range_nodes,
    root_from_leaf_hashes,
)

LEAVES = [hash_leaf(i.to_bytes(4, "big")) for i in range(600)]


def all_perfect_nodes(size: int) -> set[NodeID]:
    """Every node whose whole leaf range lies inside a tree of ``size`` leaves."""
    out = set()
    level = 0
    while (1 << level) <= size:
        out.update(NodeID(level, i) for i in range(size >> level))
        level += 1
    return out


def naive_node_hash(node: NodeID) -> bytes:
    level = LEAVES[node.begin : node.end]
    while len(level) > 1:
        level = [hash_children(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_visitor_reports_exactly_the_perfect_nodes() -> None:
    cr = CompactRange()
    visited: list[tuple[NodeID, bytes]] = []
    for n in range(1, len(LEAVES) + 1):
        cr.append(LEAVES[n - 1], lambda node, h: visited.append((node, h)))
        ids = [node for node, _ in visited]
        assert len(ids) == len(set(ids)), "a node was reported twice"
        assert set(ids) == all_perfect_nodes(n)
    for node, h in visited:
        assert h == naive_node_hash(node)


def test_visitor_order_within_an_append() -> None:
    cr = CompactRange.from_hashes(0, 7, [naive_node_hash(n) for n in perfect_nodes(7)])
    seen: list[NodeID] = []
    cr.append(LEAVES[7], lambda node, h: seen.append(node))
    assert seen == [NodeID(0, 7), NodeID(1, 3), NodeID(2, 1), NodeID(3, 0)]
    assert cr.hashes == [naive_node_hash(NodeID(3, 0))]


@given(st.integers(0, 200), st.integers(0, 200))
@settings(max_examples=60, database=None)
def test_extend_equals_repeated_append(size: int, more: int) -> None:
    a = CompactRange()
    a.extend(LEAVES[:size])
    b = CompactRange()
    for h in LEAVES[:size]:
        b.append(h)
    assert a == b
    seen_a: list[NodeID] = []
    seen_b: list[NodeID] = []
    a.extend(LEAVES[size : size + more], lambda n, h: seen_a.append(n))
    for h in LEAVES[size : size + more]:
        b.append(h, lambda n, h: seen_b.append(n))
    assert a == b and seen_a == seen_b
    assert a.end == min(len(LEAVES), size + more)


def test_root_and_hashes() -> None:
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    assert (cr.begin, cr.end, cr.hashes) == (0, 0, [])
    cr.extend(LEAVES[:13])
    assert cr.end == 13
    assert cr.hashes == [naive_node_hash(n) for n in perfect_nodes(13)]
    a, b, c = cr.hashes
    assert cr.root() == hash_children(a, hash_children(b, c))
    assert cr.root() == root_from_leaf_hashes(LEAVES[:13])
    # `hashes` is a copy.
    cr.hashes.clear()
    assert len(cr.hashes) == 3


def test_from_hashes_round_trip() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:100])
    again = CompactRange.from_hashes(cr.begin, cr.end, cr.hashes)
    assert again == cr
    views = CompactRange.from_hashes(cr.begin, cr.end, [memoryview(h) for h in cr.hashes])
    assert views == cr and all(type(h) is bytes for h in views.hashes)
    again.extend(LEAVES[100:300])
    cr.extend(LEAVES[100:300])
    assert again.root() == cr.root() == root_from_leaf_hashes(LEAVES[:300])


def test_from_hashes_validates() -> None:
    with pytest.raises(ValueError, match="needs 3 hashes, got 2"):
        CompactRange.from_hashes(0, 7, LEAVES[:2])
    with pytest.raises(ValueError):
        CompactRange.from_hashes(0, 0, LEAVES[:1])
    with pytest.raises(ValueError):
        CompactRange.from_hashes(5, 4, [])
    with pytest.raises(ValueError, match="31 bytes"):
        CompactRange.from_hashes(0, 1, [b"\x00" * 31])
    with pytest.raises(ValueError):
        CompactRange(3, 13, LEAVES[:3])
    assert CompactRange(3, 13, LEAVES[:4]).end == 13


def test_ranges_not_starting_at_zero() -> None:
    for begin in range(0, 64):
        cr = CompactRange(begin, begin)
        for end in range(begin + 1, begin + 70):
            seen: list[NodeID] = []
            cr.append(LEAVES[end - 1], lambda n, h: seen.append(n))
            assert cr.hashes == [naive_node_hash(n) for n in range_nodes(begin, end)]
            assert seen[0] == NodeID(0, end - 1)
            assert all(n.begin >= begin for n in seen)
    empty = CompactRange(5, 5)
    with pytest.raises(ValueError):
        empty.root()
    # Aligned start: the fold is the hash of the subtree over [8, 15).
    right = CompactRange(8, 8)
    right.extend(LEAVES[8:15])
    assert right.root() == root_from_leaf_hashes(LEAVES[8:15])


def test_bad_leaf_hash_is_rejected_without_damage() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:5])
    before = cr.hashes
    with pytest.raises(ValueError, match="33 bytes"):
        cr.extend([LEAVES[5], LEAVES[6], b"\x00" * 33, LEAVES[7]])
    assert cr.end == 7  # the two good leaves went in, nothing after the bad one
    assert cr.hashes == [naive_node_hash(n) for n in perfect_nodes(7)]
    with pytest.raises(ValueError):
        cr.append(b"short")
    with pytest.raises(TypeError):
        cr.append("x" * 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cr.append(bytearray(LEAVES[7]))  # type: ignore[arg-type]
    assert cr.end == 7 and before != cr.hashes
    assert cr.hashes == [naive_node_hash(n) for n in perfect_nodes(7)]


def test_failing_visitor_leaves_range_unchanged() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:7])
    snapshot = (cr.end, cr.hashes)

    def boom(node: NodeID, h: bytes) -> None:
        if node.level == 2:
            raise RuntimeError("storage down")

    with pytest.raises(RuntimeError):
        cr.append(LEAVES[7], boom)
    assert (cr.end, cr.hashes) == snapshot
    seen: list[NodeID] = []
    cr.append(LEAVES[7], lambda n, h: seen.append(n))
    assert seen == [NodeID(0, 7), NodeID(1, 3), NodeID(2, 1), NodeID(3, 0)]
    assert cr.root() == root_from_leaf_hashes(LEAVES[:8])


def test_root_from_leaf_hashes() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert root_from_leaf_hashes(LEAVES[:1]) == LEAVES[0]
    assert root_from_leaf_hashes(iter(LEAVES[:2])) == hash_children(LEAVES[0], LEAVES[1])
    h = hashlib.sha256(b"\x01" + LEAVES[0] + LEAVES[1]).digest()
    assert root_from_leaf_hashes(LEAVES[:3]) == hashlib.sha256(b"\x01" + h + LEAVES[2]).digest()


def test_repr_and_equality() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:3])
    assert "end=3" in repr(cr)
    assert cr != CompactRange()
    assert cr != "not a range"
    with pytest.raises(TypeError):
        hash(cr)
