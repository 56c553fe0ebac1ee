"""Proof node selection (tlog.merkle.proof): shapes, perfect ids, input checks."""

from __future__ import annotations

import pytest

from tlog.merkle import NodeID, Nodes, consistency, hash_children, inclusion


def test_inclusion_shape_in_size_7() -> None:
    # Leaf 4 of 7: sibling leaf 5, then the right part [6, 7) (a single perfect
    # leaf, so nothing to fold), then the left perfect subtree [0, 4).
    nodes = inclusion(4, 7)
    assert nodes.ids == (NodeID(0, 5), NodeID(0, 6), NodeID(2, 0))
    assert nodes.begin == nodes.end


def test_inclusion_with_ephemeral_node() -> None:
    # Leaf 0 of 7: siblings (0,1), (1,1); the right part [4, 7) is ephemeral,
    # folded from (1,2) and (0,6).
    nodes = inclusion(0, 7)
    assert nodes.ids == (NodeID(0, 1), NodeID(1, 1), NodeID(1, 2), NodeID(0, 6))
    assert (nodes.begin, nodes.end) == (2, 4)
    a, b, c, d = (bytes([i]) * 32 for i in range(4))
    assert nodes.rehash([a, b, c, d]) == [a, b, hash_children(c, d)]


def test_ephemeral_fold_is_right_to_left() -> None:
    # Leaf 0 of 15: right part [8, 15) = (2,2), (1,6), (0,14) -> H(x, H(y, z)).
    nodes = inclusion(0, 15)
    assert nodes.ids[nodes.begin : nodes.end] == (NodeID(2, 2), NodeID(1, 6), NodeID(0, 14))
    hashes = [bytes([i]) * 32 for i in range(len(nodes.ids))]
    x, y, z = hashes[nodes.begin : nodes.end]
    proof = nodes.rehash(hashes)
    assert proof[nodes.begin] == hash_children(x, hash_children(y, z))
    assert len(proof) == len(hashes) - 2


def test_consistency_shapes() -> None:
    assert consistency(size1=4, size2=8).ids == (NodeID(2, 1),)
    # size1 = 6 is not a power of two: its last perfect subtree (1,2) leads.
    assert consistency(size1=6, size2=8).ids == (NodeID(1, 2), NodeID(1, 3), NodeID(2, 0))
    assert consistency(size1=3, size2=4).ids == (NodeID(0, 2), NodeID(0, 3), NodeID(1, 0))
    nodes = consistency(size1=1, size2=7)
    assert nodes.ids == (NodeID(0, 1), NodeID(1, 1), NodeID(1, 2), NodeID(0, 6))
    assert (nodes.begin, nodes.end) == (2, 4)


def test_equal_sizes_give_empty_proof() -> None:
    for size in (1, 2, 7, 2**40 + 3):
        nodes = consistency(size1=size, size2=size)
        assert nodes.ids == ()
        assert nodes.rehash([]) == []


def test_proof_lengths_and_perfect_ids() -> None:
    for size in range(1, 300):
        for index in range(size):
            nodes = inclusion(index, size)
            assert all(n.end <= size for n in nodes.ids)
            folded = max(0, nodes.end - nodes.begin - 1)
            inner = (index ^ (size - 1)).bit_length()
            assert len(nodes.ids) - folded == inner + (index >> inner).bit_count()
        for size1 in range(1, size + 1):
            nodes = consistency(size1=size1, size2=size)
            assert all(n.end <= size for n in nodes.ids)
            assert len(set(nodes.ids)) == len(nodes.ids)


def test_huge_sizes() -> None:
    size = 2**63 + 12345
    nodes = inclusion(size - 1, size)
    assert all(n.end <= size for n in nodes.ids)
    assert len(nodes.ids) <= 2 * 64
    nodes = consistency(size1=2**40 + 1, size2=size)
    assert all(n.end <= size for n in nodes.ids)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5)])
def test_inclusion_rejects_bad_input(index: int, size: int) -> None:
    with pytest.raises(ValueError) as err:
        inclusion(index, size)
    assert str(index) in str(err.value) and str(size) in str(err.value)


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 5), (6, 5), (-1, 5), (2, 1)])
def test_consistency_rejects_bad_input(size1: int, size2: int) -> None:
    with pytest.raises(ValueError) as err:
        consistency(size1=size1, size2=size2)
    assert str(size1) in str(err.value) and str(size2) in str(err.value)


def test_consistency_sizes_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        consistency(1, 2)  # type: ignore[misc]


def test_rehash_checks_hash_count() -> None:
    nodes = inclusion(0, 7)
    with pytest.raises(ValueError, match="3 hashes for 4"):
        nodes.rehash([b"\x00" * 32] * 3)


def test_nodes_is_frozen() -> None:
    nodes = Nodes((NodeID(0, 1),))
    with pytest.raises(AttributeError):
        nodes.begin = 1  # type: ignore[misc]


@pytest.mark.parametrize(("begin", "end"), [(-1, 0), (1, 0), (0, 2)])
def test_nodes_rejects_bad_fold_slice(begin: int, end: int) -> None:
    with pytest.raises(ValueError, match="bad fold slice"):
        Nodes((NodeID(0, 1),), begin, end)
