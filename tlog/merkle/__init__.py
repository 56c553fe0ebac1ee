"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs and compact ranges.

Pure functions over hashes; no I/O. One module per idea, after
transparency-dev/merkle:

* ``hasher``  - leaf and interior node hashing (SHA-256, 0x00 / 0x01 prefixes);
* ``nodes``   - ``NodeID`` addressing and the perfect-subtree decomposition of
  a leaf range;
* ``proof``   - which stored nodes make up an inclusion or consistency proof,
  and how to turn their hashes into the proof;
* ``verify``  - checking proofs against roots (client side);
* ``compact`` - compact ranges, to extend a tree and compute its root in
  O(log n) memory.

Nodes are numbered per level, independently of the tree size.
``NodeID(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``::

    level 3                        [3,0]
                           /                 \\
    level 2            (2,0)                   [2,1]
                     /       \\               /       \\
    level 1      (1,0)       (1,1)       (1,2)       [1,3]
                 /   \\       /   \\       /   \\       /
    level 0  (0,0) (0,1) (0,2) (0,3) (0,4) (0,5) (0,6)
    leaves     0     1     2     3     4     5     6

In this tree of size 7 the perfect nodes (all leaves present) are shown in
parentheses: ``perfect_nodes(7)`` is ``(2,0), (1,2), (0,6)``, and the root is
``H((2,0), H((1,2), (0,6)))``. The bracketed ``[1,3]``, ``[2,1]`` and ``[3,0]``
are *ephemeral*: their hash in this tree is folded from the perfect nodes
below them and changes as the tree grows, so storage never keeps them.
"""

from __future__ import annotations

from tlog.merkle.compact import CompactRange, Visitor, root_from_leaf_hashes
from tlog.merkle.hasher import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    hash_children,
    hash_leaf,
)
from tlog.merkle.nodes import NodeID, perfect_nodes, range_nodes
from tlog.merkle.proof import NodePath, Nodes, consistency, consistency_path, inclusion, inclusion_path, rehash
from tlog.merkle.verify import (
    ProofError,
    RootMismatchError,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "CompactRange",
    "NodeID",
    "NodePath",
    "Nodes",
    "ProofError",
    "RootMismatchError",
    "Visitor",
    "consistency",
    "consistency_path",
    "hash_children",
    "hash_leaf",
    "inclusion",
    "inclusion_path",
    "perfect_nodes",
    "range_nodes",
    "rehash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]
