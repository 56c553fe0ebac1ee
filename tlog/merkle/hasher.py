"""RFC 6962 §2.1 / RFC 9162 §2.1.1 tree hashing with SHA-256.

Leaves and interior nodes are hashed under different one-byte prefixes so that
a leaf can never be passed off as an interior node (second-preimage defence):

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left child hash || right child hash)
    empty root = SHA-256("")

These two functions sit on every hot path of the log (appending, proving,
verifying), so they bind ``hashlib.sha256`` locally and build each hash input
with a single concatenation.
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


def hash_leaf(data: bytes, _sha256=hashlib.sha256, _prefix: bytes = LEAF_PREFIX) -> bytes:
    """Return the Merkle leaf hash of ``data`` (the raw entry bytes, any length).

    The trailing underscore parameters bind globals as locals for speed; never
    pass them.
    """
    return _sha256(_prefix + data).digest()


def hash_children(
    left: bytes, right: bytes, _sha256=hashlib.sha256, _prefix: bytes = NODE_PREFIX
) -> bytes:
    """Return the hash of the interior node whose children hash to ``left`` and ``right``.

    Precondition: both are node or leaf hashes (``HASH_SIZE`` bytes); this is not
    checked here because callers on hot paths have already validated them. The
    trailing underscore parameters bind globals as locals for speed; never pass
    them.
    """
    return _sha256(_prefix + left + right).digest()
