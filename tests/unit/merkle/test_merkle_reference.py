"""Cross-checks of tlog.merkle against a deliberately naive RFC 6962 §2.1 reference.

The reference below transcribes MTH, PATH, PROOF and SUBPROOF from RFC 6962
§2.1, §2.1.1 and §2.1.2 as literally as Python allows, over lists of leaf data
(``D``), with its own SHA-256 calls. It is exponential-free but quadratic-ish;
that is fine for the exhaustive checks on trees of up to 70 leaves.

For the property tests on trees of up to 2**20 leaves, ``D`` is a ``LazyLeaves``
view of the leaf data ``d_i = i.to_bytes(8, "big")``: it is never materialised,
and the hash of each power-of-two block (where MTH is plain pairwise hashing) is
computed once and memoised. Everything else still goes through the literal
recursion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeID,
    ProofError,
    consistency,
    hash_leaf,
    inclusion,
    perfect_nodes,
    range_nodes,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------
# The reference: RFC 6962 §2.1, literally.
# --------------------------------------------------------------------------


def SHA256(data: bytes) -> bytes:  # noqa: N802 - RFC naming
    return hashlib.sha256(data).digest()


def largest_power_of_two_smaller_than(n: int) -> int:
    """k such that k < n <= 2k (RFC 6962 §2.1), for n > 1."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def MTH(D: Any) -> bytes:  # noqa: N802
    """Merkle Tree Hash of the list D (RFC 6962 §2.1)."""
    if isinstance(D, LazyLeaves):
        block = D.power_of_two_block_hash()
        if block is not None:
            return block
    n = len(D)
    if n == 0:
        return SHA256(b"")
    if n == 1:
        return SHA256(b"\x00" + D[0])
    k = largest_power_of_two_smaller_than(n)
    return SHA256(b"\x01" + MTH(D[0:k]) + MTH(D[k:n]))


def PATH(m: int, D: Any) -> list[bytes]:  # noqa: N802
    """Audit path for leaf m of D (RFC 6962 §2.1.1)."""
    n = len(D)
    if n == 1:
        assert m == 0
        return []
    k = largest_power_of_two_smaller_than(n)
    if m < k:
        return PATH(m, D[0:k]) + [MTH(D[k:n])]
    return PATH(m - k, D[k:n]) + [MTH(D[0:k])]


def PROOF(m: int, D: Any) -> list[bytes]:  # noqa: N802
    """Consistency proof from the first m leaves of D to all of D (RFC 6962 §2.1.2)."""
    return SUBPROOF(m, D, True)


def SUBPROOF(m: int, D: Any, b: bool) -> list[bytes]:  # noqa: N802
    n = len(D)
    if m == n:
        return [] if b else [MTH(D)]
    k = largest_power_of_two_smaller_than(n)
    if m <= k:
        return SUBPROOF(m, D[0:k], b) + [MTH(D[k:n])]
    return SUBPROOF(m - k, D[k:n], False) + [MTH(D[0:k])]


def leaf_data(i: int) -> bytes:
    return i.to_bytes(8, "big")


class LazyLeaves:
    """The list ``D[start:stop]`` of ``leaf_data(i)``, without building it."""

    __slots__ = ("start", "stop")
    MEMO_MIN = 256
    memo: dict[tuple[int, int], bytes] = {}

    def __init__(self, start: int, stop: int) -> None:
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            assert step == 1
            return LazyLeaves(self.start + a, self.start + b)
        if not 0 <= key < len(self):
            raise IndexError(key)
        return leaf_data(self.start + key)

    def power_of_two_block_hash(self) -> bytes | None:
        """MTH of this view if its length is a power of two >= 2, else None.

        For such lengths MTH splits in equal halves all the way down, i.e. it
        is plain pairwise hashing; big blocks are memoised.
        """
        n = len(self)
        if n < 2 or n & (n - 1):
            return None
        key = (self.start, n)
        if n >= self.MEMO_MIN:
            cached = self.memo.get(key)
            if cached is None:
                half = n // 2
                left = LazyLeaves(self.start, self.start + half).power_of_two_block_hash()
                right = LazyLeaves(self.start + half, self.stop).power_of_two_block_hash()
                assert left is not None and right is not None
                cached = self.memo[key] = SHA256(b"\x01" + left + right)
            return cached
        level = [SHA256(b"\x00" + leaf_data(i)) for i in range(self.start, self.stop)]
        while len(level) > 1:
            level = [SHA256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]


def node_hash(D: Any, node: NodeID) -> bytes:
    """What a log's storage would return for a perfect node of tree D."""
    assert node.end <= len(D), f"{node} is not perfect in a tree of size {len(D)}"
    return MTH(D[node.begin : node.end])


def fetch(D: Any, ids: Sequence[NodeID]) -> list[bytes]:
    return [node_hash(D, node) for node in ids]


# --------------------------------------------------------------------------
# Sanity of the reference itself.
# --------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def test_reference_reproduces_ct_roots() -> None:
    assert MTH([]) == EMPTY_ROOT
    assert (
        MTH(CT_LEAVES).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    assert (
        MTH(CT_LEAVES[:3]).hex()
        == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    )


def test_lazy_leaves_agree_with_materialised_lists() -> None:
    for size in (1, 2, 3, 255, 256, 257, 512, 600, 1024, 1500):
        D = [leaf_data(i) for i in range(size)]
        lazy = LazyLeaves(0, size)
        assert MTH(lazy) == MTH(D)
        assert PATH(size - 1, lazy) == PATH(size - 1, D)
        assert PROOF(size // 2 or 1, lazy) == PROOF(size // 2 or 1, D)


# --------------------------------------------------------------------------
# Exhaustive cross-checks on small trees.
# --------------------------------------------------------------------------

MAX_SMALL = 70
SMALL_LEAVES = [b"leaf %d" % i for i in range(MAX_SMALL)]


@pytest.mark.parametrize("size", range(1, MAX_SMALL + 1))
def test_inclusion_matches_reference_for_every_index(size: int) -> None:
    D = SMALL_LEAVES[:size]
    root = MTH(D)
    for index in range(size):
        nodes = inclusion(index, size)
        assert all(node.end <= size for node in nodes.ids)
        proof = nodes.rehash(fetch(D, nodes.ids))
        assert proof == PATH(index, D), (index, size)
        leaf = hash_leaf(D[index])
        assert root_from_inclusion_proof(index, size, leaf, proof) == root
        verify_inclusion(index, size, leaf, proof, root)


@pytest.mark.parametrize("size2", range(1, MAX_SMALL + 1))
def test_consistency_matches_reference_for_every_size1(size2: int) -> None:
    D = SMALL_LEAVES[:size2]
    root2 = MTH(D)
    for size1 in range(1, size2 + 1):
        nodes = consistency(size1=size1, size2=size2)
        assert all(node.end <= size2 for node in nodes.ids)
        proof = nodes.rehash(fetch(D, nodes.ids))
        assert proof == PROOF(size1, D), (size1, size2)
        root1 = MTH(D[:size1])
        assert root_from_consistency_proof(size1=size1, size2=size2, proof=proof, root1=root1) == (
            root2
        )
        verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)


def test_compact_range_root_matches_reference() -> None:
    leaf_hashes = [hash_leaf(d) for d in SMALL_LEAVES]
    cr = CompactRange()
    assert cr.root() == MTH([])
    for size in range(1, MAX_SMALL + 1):
        cr.append(leaf_hashes[size - 1])
        D = SMALL_LEAVES[:size]
        assert cr.root() == MTH(D)
        assert cr.hashes == fetch(D, perfect_nodes(size))
        assert root_from_leaf_hashes(leaf_hashes[:size]) == MTH(D)


def test_compact_ranges_not_starting_at_zero_match_reference() -> None:
    leaf_hashes = [hash_leaf(d) for d in SMALL_LEAVES]
    for begin in range(0, 40):
        for end in range(begin, 40):
            D = SMALL_LEAVES
            cr = CompactRange.from_hashes(begin, end, fetch(D, range_nodes(begin, end)))
            for new_end in range(end + 1, end + 12):
                cr.append(leaf_hashes[new_end - 1])
                assert cr.end == new_end
                assert cr.hashes == fetch(D, range_nodes(begin, new_end)), (begin, end, new_end)


# --------------------------------------------------------------------------
# Property tests on large trees.
# --------------------------------------------------------------------------

MAX_LARGE = 1 << 20
LARGE = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LARGE))
    index = draw(st.integers(0, size - 1))
    return index, size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX_LARGE))
    size1 = draw(st.integers(1, size2))
    return size1, size2


@given(index_and_size())
@LARGE
def test_inclusion_large_trees(args: tuple[int, int]) -> None:
    index, size = args
    D = LazyLeaves(0, size)
    nodes = inclusion(index, size)
    proof = nodes.rehash(fetch(D, nodes.ids))
    assert proof == PATH(index, D)
    verify_inclusion(index, size, hash_leaf(leaf_data(index)), proof, MTH(D))


@given(two_sizes())
@LARGE
def test_consistency_large_trees(args: tuple[int, int]) -> None:
    size1, size2 = args
    D = LazyLeaves(0, size2)
    nodes = consistency(size1=size1, size2=size2)
    proof = nodes.rehash(fetch(D, nodes.ids))
    assert proof == PROOF(size1, D)
    verify_consistency(size1=size1, size2=size2, proof=proof, root1=MTH(D[:size1]), root2=MTH(D))


@given(
    begin=st.one_of(st.just(0), st.integers(0, MAX_LARGE)),
    width=st.integers(0, MAX_LARGE),
    extra=st.integers(0, 70),
)
@LARGE
def test_compact_range_appends_at_large_offsets(begin: int, width: int, extra: int) -> None:
    end = min(begin + width, MAX_LARGE)
    D = LazyLeaves(0, end + extra)
    cr = CompactRange.from_hashes(begin, end, fetch(D, range_nodes(begin, end)))
    seen: list[tuple[NodeID, bytes]] = []
    cr.extend(
        (hash_leaf(leaf_data(i)) for i in range(end, end + extra)),
        lambda node, h: seen.append((node, h)),
    )
    assert cr.hashes == fetch(D, range_nodes(begin, end + extra))
    for node, h in seen:
        assert begin <= node.begin and node.end <= end + extra
        assert h == node_hash(D, node)
    if begin == 0:
        assert cr.root() == MTH(D)


# --------------------------------------------------------------------------
# Tampered proofs must fail.
# --------------------------------------------------------------------------

TAMPER = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def tamper_proof(data: st.DataObject, proof: list[bytes]) -> list[bytes]:
    """Flip one bit, drop an element, add an element, or swap two distinct elements."""
    kinds = ["add"]
    if proof:
        kinds += ["flip", "drop"]
    if len(set(proof)) > 1:
        kinds.append("swap")
    kind = data.draw(st.sampled_from(kinds), label="tamper")
    out = list(proof)
    if kind == "flip":
        i = data.draw(st.integers(0, len(out) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        flipped = bytearray(out[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        out[i] = bytes(flipped)
    elif kind == "drop":
        del out[data.draw(st.integers(0, len(out) - 1), label="element")]
    elif kind == "add":
        pool = [*out, EMPTY_ROOT, SHA256(b"junk")]
        extra = data.draw(st.sampled_from(pool), label="added")
        out.insert(data.draw(st.integers(0, len(out)), label="position"), extra)
    else:
        i = data.draw(st.integers(0, len(out) - 1), label="i")
        j = data.draw(st.integers(0, len(out) - 1).filter(lambda j: out[j] != out[i]), label="j")
        out[i], out[j] = out[j], out[i]
    assert out != proof
    return out


@given(args=index_and_size(), data=st.data())
@TAMPER
def test_tampered_inclusion_proofs_fail(args: tuple[int, int], data: st.DataObject) -> None:
    index, size = args
    D = LazyLeaves(0, size)
    root = MTH(D)
    leaf = hash_leaf(leaf_data(index))
    proof = inclusion(index, size).rehash(fetch(D, inclusion(index, size).ids))
    verify_inclusion(index, size, leaf, proof, root)

    what = data.draw(st.sampled_from(["proof", "leaf", "root", "index"]), label="what")
    if what == "proof":
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, tamper_proof(data, proof), root)
    elif what == "leaf":
        with pytest.raises(ProofError):
            verify_inclusion(index, size, SHA256(leaf), proof, root)
    elif what == "root":
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, proof, SHA256(root))
    else:
        assume(size > 1)
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        with pytest.raises(ProofError):
            verify_inclusion(other, size, leaf, proof, root)


@given(args=two_sizes(), data=st.data())
@TAMPER
def test_tampered_consistency_proofs_fail(args: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = args
    D = LazyLeaves(0, size2)
    root1, root2 = MTH(D[:size1]), MTH(D)
    nodes = consistency(size1=size1, size2=size2)
    proof = nodes.rehash(fetch(D, nodes.ids))
    verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)

    what = data.draw(st.sampled_from(["proof", "root1", "root2"]), label="what")
    if what == "proof":
        bad = tamper_proof(data, proof)
        with pytest.raises(ProofError):
            verify_consistency(size1=size1, size2=size2, proof=bad, root1=root1, root2=root2)
    elif what == "root1":
        with pytest.raises(ProofError):
            verify_consistency(
                size1=size1, size2=size2, proof=proof, root1=SHA256(root1), root2=root2
            )
    else:
        with pytest.raises(ProofError):
            verify_consistency(
                size1=size1, size2=size2, proof=proof, root1=root1, root2=SHA256(root2)
            )
