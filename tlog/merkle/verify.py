"""Client-side proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2).

The checks are the RFC's, reorganised so that the proof length is known up
front (and reported as "wrong proof size N, want M") and so that no hash is
ever computed from malformed input: every leaf hash, root and proof element
must be exactly ``HASH_SIZE`` bytes.

Two edge rules follow the transparency-dev/merkle test vectors:

* consistency between two equal sizes with an empty proof holds exactly when
  the two roots are byte-for-byte equal; their lengths are not checked
  (nothing is hashed, so there is nothing to be malformed);
* consistency from size 0 is an error: the empty tree is a prefix of every
  tree, so such a proof proves nothing, and protocols that allow it (the
  witness protocol's ``old 0``) handle it before asking for a proof.
"""

from __future__ import annotations

from collections.abc import Sequence

from tlog.merkle.hasher import HASH_SIZE, hash_children

__all__ = [
    "ProofError",
    "RootMismatchError",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


class ProofError(ValueError):
    """A proof is malformed or does not prove what was claimed."""


class RootMismatchError(ProofError):
    """A proof is well formed but leads to a root other than the expected one."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        super().__init__(
            f"calculated root {calculated.hex()} does not match expected root {expected.hex()}"
        )
        self.expected = expected
        self.calculated = calculated


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} has {len(value)} bytes, want {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes], want: int) -> None:
    if len(proof) != want:
        raise ProofError(f"wrong proof size {len(proof)}, want {want}")
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise ProofError(f"proof[{i}] has {len(p)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` implies for leaf ``index`` of a tree of ``size``.

    Use this when the root is not known yet (e.g. to check it against a signed
    checkpoint afterwards). ``ProofError`` unless ``0 <= index < size``, the
    proof has the one length this shape allows and all hashes are 32 bytes.
    """
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    # Levels below `inner` are inside the subtree where the paths to `index`
    # and to the last leaf split; above it, the path runs along the right
    # border, where only set bits of `index` have a (left) sibling.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    _check_proof(proof, inner + border)
    h = leaf_hash
    for i in range(inner):
        if (index >> i) & 1:
            h = hash_children(proof[i], h)
        else:
            h = hash_children(h, proof[i])
    for i in range(inner, inner + border):
        h = hash_children(proof[i], h)
    return h


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows leaf ``index`` hashing to ``leaf_hash`` in the tree ``root``.

    Returns ``None`` on success; raises ``ProofError`` (``RootMismatchError`` if
    only the final comparison fails).
    """
    _check_hash("root", root)
    calculated = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if calculated != root:
        raise RootMismatchError(root, calculated)


def _check_sizes(size1: int, size2: int) -> None:
    if size1 < 0 or size2 < size1:
        raise ProofError(f"invalid consistency sizes: size1={size1}, size2={size2}")
    if size1 == 0:
        raise ProofError(f"consistency from size 0 (to size {size2}) proves nothing")


def root_from_consistency_proof(
    *, size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """Return the root of the tree of ``size2`` that ``proof`` implies, given ``root1``.

    The proof is checked against ``root1`` on the way (``RootMismatchError`` if
    it does not reproduce it). ``ProofError`` unless ``0 < size1 <= size2``, the
    proof has the one length these sizes allow and all hashes are 32 bytes.
    """
    _check_sizes(size1, size2)
    _check_hash("root1", root1)
    if size1 == size2:
        _check_proof(proof, 0)
        return root1
    # Start from the last perfect subtree of the old tree (level `shift`); its
    # hash is root1 itself when size1 is a power of two, else proof[0]. From
    # there the proof is the tail of an inclusion proof in the new tree.
    shift = (size1 & -size1).bit_length() - 1
    mask = (size1 - 1) >> shift
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length() - shift
    border = (mask >> inner).bit_count()
    seeded = mask != 0
    _check_proof(proof, int(seeded) + inner + border)
    h1 = h2 = proof[0] if seeded else root1
    i = int(seeded)
    for bit in range(inner):
        p = proof[i]
        if (mask >> bit) & 1:  # left sibling: inside both trees
            h1 = hash_children(p, h1)
            h2 = hash_children(p, h2)
        else:  # right sibling: only in the new tree
            h2 = hash_children(h2, p)
        i += 1
    for p in proof[i:]:
        h1 = hash_children(p, h1)
        h2 = hash_children(p, h2)
    if h1 != root1:
        raise RootMismatchError(root1, h1)
    return h2


def verify_consistency(
    *, size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``root1`` of ``size1`` leaves is a prefix of the tree ``root2``.

    Returns ``None`` on success; raises ``ProofError`` (``RootMismatchError`` if
    the proof is well formed but either root does not match). Equal sizes need
    an empty proof and byte-equal roots; size1 == 0 is always an error.
    """
    _check_sizes(size1, size2)
    if size1 == size2:
        _check_proof(proof, 0)
        if root1 != root2:
            raise RootMismatchError(root2, root1)
        return
    _check_hash("root2", root2)
    calculated = root_from_consistency_proof(size1=size1, size2=size2, proof=proof, root1=root1)
    if calculated != root2:
        raise RootMismatchError(root2, calculated)
