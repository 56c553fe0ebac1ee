"""Known answers and domain-separation properties of tlog.merkle.hasher."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tlog.merkle.hasher import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    hash_children,
    hash_leaf,
)

hashes32 = st.binary(min_size=32, max_size=32)


def test_constants() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert HASH_SIZE == 32


def test_empty_root_known_answer() -> None:
    # printf '' | sha256sum
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_hash_leaf_empty_known_answer() -> None:
    # printf '\x00' | sha256sum
    assert (
        hash_leaf(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_hash_leaf_abc_known_answer() -> None:
    # printf '\x00abc' | sha256sum
    assert (
        hash_leaf(b"abc").hex()
        == "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1"
    )


def test_hash_children_known_answer() -> None:
    # Root of the 2-leaf CT reference tree ("" and 00):
    # { printf '\x01'; printf '\x00' | openssl dgst -sha256 -binary;
    #   printf '\x00\x00' | openssl dgst -sha256 -binary; } | sha256sum
    got = hash_children(hash_leaf(b""), hash_leaf(b"\x00"))
    assert got.hex() == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"


def test_hash_children_swapped_known_answer() -> None:
    # { printf '\x01'; printf '\x00\x00' | openssl dgst -sha256 -binary;
    #   printf '\x00' | openssl dgst -sha256 -binary; } | sha256sum
    got = hash_children(hash_leaf(b"\x00"), hash_leaf(b""))
    assert got.hex() == "e55b0804febdeee44ad3c48fb68c98fffdf93dca4866faefb5245e669ed16113"


def test_empty_root_differs_from_empty_leaf() -> None:
    assert EMPTY_ROOT != hash_leaf(b"")


def test_outputs_are_32_bytes() -> None:
    assert len(EMPTY_ROOT) == HASH_SIZE
    assert len(hash_leaf(b"x" * 1000)) == HASH_SIZE
    assert len(hash_children(EMPTY_ROOT, EMPTY_ROOT)) == HASH_SIZE


@given(data=st.binary(max_size=200))
@settings(max_examples=50, database=None)
def test_hash_leaf_matches_definition(data: bytes) -> None:
    assert hash_leaf(data) == hashlib.sha256(b"\x00" + data).digest()


@given(left=hashes32, right=hashes32)
@settings(max_examples=50, database=None)
def test_leaf_and_node_are_domain_separated(left: bytes, right: bytes) -> None:
    # A 64-byte leaf that spells out two child hashes must not hash like the node.
    assert hash_leaf(left + right) != hash_children(left, right)
    assert hash_children(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@given(left=hashes32, right=hashes32)
@settings(max_examples=50, database=None)
def test_swapping_children_changes_hash(left: bytes, right: bytes) -> None:
    if left != right:
        assert hash_children(left, right) != hash_children(right, left)
    else:
        assert hash_children(left, right) == hash_children(right, left)
