"""The transparency-dev/merkle proof vectors (shared/testdata/merkle), one test each.

See shared/testdata/README.md for their origin and the edge rules they imply.
The trees behind them are built from the classic CT reference leaves, so the
happy-path proofs are also checked against what tlog.merkle.proof generates.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeID,
    ProofError,
    consistency,
    hash_leaf,
    inclusion,
    perfect_nodes,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# shared/ sits beside the repository root (tests/unit/merkle/<this file>).
REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS = (REPO_ROOT / ".." / "shared" / "testdata" / "merkle").resolve()

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
CT_LEAF_HASHES = [hash_leaf(d) for d in CT_LEAVES]

# From shared/testdata/README.md.
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
EMPTY_TREE_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


INCLUSION_FILES = _files("inclusion")
CONSISTENCY_FILES = _files("consistency")


def _id(path: Path) -> str:
    return path.relative_to(VECTORS).as_posix()


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in (vector["proof"] or [])]


def _fetch(size: int, ids: tuple[NodeID, ...]) -> list[bytes]:
    """Node hashes of the CT reference tree of ``size`` leaves, as storage would serve them."""
    out = []
    for node in ids:
        assert node.end <= size
        out.append(root_from_leaf_hashes(CT_LEAF_HASHES[node.begin : node.end]))
    return out


def _ct_root(size: int) -> bytes | None:
    return bytes.fromhex(CT_ROOTS[size]) if size in CT_ROOTS else None


def test_vector_files_are_present() -> None:
    assert VECTORS.is_dir(), f"proof vectors not found at {VECTORS}"
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    index, size = v["leafIdx"], v["treeSize"]
    leaf, root, proof = _b64(v["leafHash"]), _b64(v["root"]), _proof(v)
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, proof, root)
        return
    verify_inclusion(index, size, leaf, proof, root)
    if path.name == "happy-path.json":
        # Built from the reference leaves: proof generation must reproduce it.
        assert root == _ct_root(size)
        assert leaf == CT_LEAF_HASHES[index]
    if root == _ct_root(size) and leaf == CT_LEAF_HASHES[index]:
        nodes = inclusion(index, size)
        assert nodes.rehash(_fetch(size, nodes.ids)) == proof


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    size1, size2 = v["size1"], v["size2"]
    root1, root2, proof = _b64(v["root1"]), _b64(v["root2"]), _proof(v)
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)
        return
    verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)
    if path.name == "happy-path.json":
        assert root1 == _ct_root(size1)
        assert root2 == _ct_root(size2)
    if root1 == _ct_root(size1) and root2 == _ct_root(size2):
        nodes = consistency(size1=size1, size2=size2)
        assert nodes.rehash(_fetch(size2, nodes.ids)) == proof


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_reference_tree_roots(size: int) -> None:
    want = bytes.fromhex(CT_ROOTS[size])
    assert root_from_leaf_hashes(CT_LEAF_HASHES[:size]) == want
    cr = CompactRange()
    cr.extend(CT_LEAF_HASHES[:size])
    assert cr.root() == want
    assert cr.hashes == _fetch(size, tuple(perfect_nodes(size)))


def test_empty_tree_root() -> None:
    assert EMPTY_ROOT.hex() == EMPTY_TREE_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_every_reference_proof_verifies() -> None:
    """All inclusion and consistency proofs of the reference trees, not just the vectors'."""
    for size2 in CT_ROOTS:
        root2 = bytes.fromhex(CT_ROOTS[size2])
        for index in range(size2):
            nodes = inclusion(index, size2)
            proof = nodes.rehash(_fetch(size2, nodes.ids))
            verify_inclusion(index, size2, CT_LEAF_HASHES[index], proof, root2)
        for size1 in range(1, size2 + 1):
            nodes = consistency(size1=size1, size2=size2)
            proof = nodes.rehash(_fetch(size2, nodes.ids))
            root1 = bytes.fromhex(CT_ROOTS[size1])
            verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)
