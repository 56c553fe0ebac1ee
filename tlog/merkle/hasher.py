"""RFC 6962 §2.1 / RFC 9162 §2.1.1 tree hashing with SHA-256.

Leaves and interior nodes are hashed under different one-byte prefixes so that
a leaf can never be passed off as an interior node (second-preimage defence):

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left child hash || right child hash)
    empty root = SHA-256("")

These two functions sit on every hot path of the log (appending, proving,
verifying), so they bind ``hashlib.sha256`` once, use literal prefixes and
build each hash input with a single concatenation. (``CompactRange`` inlines
the same expression in its append loop.)
"""

from __future__ import annotations

import hashlib

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "hash_children",
    "hash_leaf",
]

LEAF_PREFIX = b"\x00"
"""Domain-separation prefix of a leaf hash input."""

NODE_PREFIX = b"\x01"
"""Domain-separation prefix of an interior node hash input."""

HASH_SIZE = 32
"""Length in bytes of every tree hash (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""Root hash of the tree of size 0: the hash of the empty string, no prefix."""


_sha256 = hashlib.sha256  # bound once: saves an attribute lookup per call


def hash_leaf(data: bytes) -> bytes:
    """Return the Merkle leaf hash of ``data`` (the raw entry bytes, any length)."""
    return _sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return the hash of the interior node whose children hash to ``left`` and ``right``.

    Precondition: both are node or leaf hashes (``HASH_SIZE`` bytes). Not
    checked here: hot-path callers have already validated them, and verifiers
    check proof elements before hashing.
    """
    return _sha256(b"\x01" + left + right).digest()
