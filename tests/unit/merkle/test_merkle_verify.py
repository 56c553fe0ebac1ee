"""Input checking and error reporting of tlog.merkle.verify."""

from __future__ import annotations

import pytest

from tlog.merkle import (
    CompactRange,
    NodeID,
    ProofError,
    RootMismatchError,
    consistency,
    hash_leaf,
    inclusion,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [hash_leaf(b"%d" % i) for i in range(16)]


def _fetch(size: int, ids: tuple[NodeID, ...]) -> list[bytes]:
    assert all(n.end <= size for n in ids)
    return [root_from_leaf_hashes(LEAVES[n.begin : n.end]) for n in ids]


def _incl(index: int, size: int) -> list[bytes]:
    nodes = inclusion(index, size)
    return nodes.rehash(_fetch(size, nodes.ids))


def _cons(size1: int, size2: int) -> list[bytes]:
    nodes = consistency(size1=size1, size2=size2)
    return nodes.rehash(_fetch(size2, nodes.ids))


def _root(size: int) -> bytes:
    return root_from_leaf_hashes(LEAVES[:size])


def test_error_hierarchy() -> None:
    assert issubclass(ProofError, ValueError)
    assert issubclass(RootMismatchError, ProofError)


def test_inclusion_root_mismatch_carries_both_roots() -> None:
    proof = _incl(3, 11)
    wrong = _root(10)
    with pytest.raises(RootMismatchError) as err:
        verify_inclusion(3, 11, LEAVES[3], proof, wrong)
    assert err.value.expected == wrong
    assert err.value.calculated == _root(11)


def test_wrong_proof_size_message() -> None:
    proof = _incl(3, 11)  # 4 elements
    with pytest.raises(ProofError, match=r"^wrong proof size 3, want 4$"):
        verify_inclusion(3, 11, LEAVES[3], proof[:-1], _root(11))
    with pytest.raises(ProofError, match=r"^wrong proof size 5, want 4$"):
        root_from_inclusion_proof(3, 11, LEAVES[3], [*proof, proof[0]])
    with pytest.raises(ProofError, match=r"^wrong proof size 0, want 5$"):
        root_from_consistency_proof(size1=3, size2=11, proof=[], root1=_root(3))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_every_hash_must_be_32_bytes(length: int) -> None:
    bad = b"\x07" * length
    proof = _incl(3, 11)
    root = _root(11)
    # Rejected as malformed (not merely as a root mismatch).
    want = f"has {length} bytes, want 32"
    with pytest.raises(ProofError, match=f"^leaf hash {want}"):
        verify_inclusion(3, 11, bad, proof, root)
    with pytest.raises(ProofError, match=f"^root {want}"):
        verify_inclusion(3, 11, LEAVES[3], proof, bad)
    with pytest.raises(ProofError, match=rf"^proof\[1\] {want}"):
        verify_inclusion(3, 11, LEAVES[3], [proof[0], bad, *proof[2:]], root)
    cproof = _cons(3, 11)
    with pytest.raises(ProofError, match=f"^root1 {want}"):
        verify_consistency(size1=3, size2=11, proof=cproof, root1=bad, root2=root)
    with pytest.raises(ProofError, match=f"^root2 {want}"):
        verify_consistency(size1=3, size2=11, proof=cproof, root1=_root(3), root2=bad)
    with pytest.raises(ProofError, match=rf"^proof\[4\] {want}"):
        verify_consistency(
            size1=3, size2=11, proof=[*cproof[:-1], bad], root1=_root(3), root2=root
        )


@pytest.mark.parametrize(("index", "size"), [(0, 0), (11, 11), (12, 11), (-1, 11), (2**64 - 1, 1)])
def test_inclusion_index_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(index, size, LEAVES[0], [], _root(1))


def test_single_leaf_tree() -> None:
    verify_inclusion(0, 1, LEAVES[0], [], LEAVES[0])
    assert root_from_inclusion_proof(0, 1, LEAVES[0], []) == LEAVES[0]


def test_consistency_equal_sizes() -> None:
    root = _root(5)
    verify_consistency(size1=5, size2=5, proof=[], root1=root, root2=root)
    assert root_from_consistency_proof(size1=5, size2=5, proof=[], root1=root) == root
    with pytest.raises(RootMismatchError):
        verify_consistency(size1=5, size2=5, proof=[], root1=root, root2=_root(4))
    with pytest.raises(ProofError, match="wrong proof size 1, want 0"):
        verify_consistency(size1=5, size2=5, proof=[root], root1=root, root2=root)
    # Nothing is hashed, so the roots are only compared (the vectors demand
    # that equal non-32-byte roots pass here).
    verify_consistency(size1=1, size2=1, proof=[], root1=b"abc", root2=b"abc")


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 1), (0, 11)])
def test_consistency_from_size_zero_is_an_error(size1: int, size2: int) -> None:
    root = _root(size2)
    with pytest.raises(ProofError, match="size 0"):
        verify_consistency(size1=size1, size2=size2, proof=[], root1=root, root2=root)
    with pytest.raises(ProofError):
        root_from_consistency_proof(size1=size1, size2=size2, proof=[], root1=root)


@pytest.mark.parametrize(("size1", "size2"), [(2, 1), (11, 5), (-1, 3)])
def test_consistency_bad_sizes(size1: int, size2: int) -> None:
    root = _root(3)
    with pytest.raises(ProofError) as err:
        verify_consistency(size1=size1, size2=size2, proof=[], root1=root, root2=root)
    assert str(size1) in str(err.value) and str(size2) in str(err.value)


def test_consistency_root1_mismatch_carries_both_roots() -> None:
    proof = _cons(6, 13)
    with pytest.raises(RootMismatchError) as err:
        root_from_consistency_proof(size1=6, size2=13, proof=proof, root1=_root(5))
    assert err.value.expected == _root(5)
    assert err.value.calculated == _root(6)
    assert root_from_consistency_proof(size1=6, size2=13, proof=proof, root1=_root(6)) == _root(13)


def test_consistency_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        verify_consistency(1, 2, [], _root(1), _root(2))  # type: ignore[misc]
    with pytest.raises(TypeError):
        root_from_consistency_proof(1, 2, [], _root(1))  # type: ignore[misc]


def test_proofs_verify_against_compact_range_roots() -> None:
    """End to end with the log's own root computation, every pair up to 16."""
    for size2 in range(1, 17):
        cr = CompactRange.from_hashes(0, 0, [])
        cr.extend(LEAVES[:size2])
        root2 = cr.root()
        for index in range(size2):
            verify_inclusion(index, size2, LEAVES[index], _incl(index, size2), root2)
        for size1 in range(1, size2 + 1):
            verify_consistency(
                size1=size1, size2=size2, proof=_cons(size1, size2), root1=_root(size1), root2=root2
            )
