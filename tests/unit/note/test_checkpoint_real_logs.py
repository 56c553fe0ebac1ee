"""Checkpoints produced by the real Sigstore logs (Rekor v1 ECDSA and Rekor v2
Ed25519) open with our verifiers.

Data: shared/testdata/real (bundles and trusted roots from sigstore-python,
see its README).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tlog.checkpoint import open_checkpoint
from tlog.note import (
    ECDSAVerifier,
    Ed25519Verifier,
    InvalidSignatureError,
    NoteVerifier,
    UnverifiedNoteError,
    verifier_from_vkey,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
REAL = SHARED / "testdata" / "real"
REKOR_V1_VKEY = (
    "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW"
    "5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc="
)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _entry(bundle: str) -> dict[str, Any]:
    entry: dict[str, Any] = _load(REAL / bundle)["verificationMaterial"]["tlogEntries"][0]
    return entry


def _verifier_for_log(trusted_root: str, log_id_b64: str) -> NoteVerifier:
    """Build a note verifier from a trusted root's tlog entry, named after its host."""
    for tlog in _load(REAL / trusted_root)["tlogs"]:
        if tlog["logId"]["keyId"] != log_id_b64:
            continue
        key = serialization.load_der_public_key(base64.b64decode(tlog["publicKey"]["rawBytes"]))
        host = tlog["baseUrl"].removeprefix("https://")
        if isinstance(key, ec.EllipticCurvePublicKey):
            return ECDSAVerifier(host, key)
        assert isinstance(key, Ed25519PublicKey)
        return Ed25519Verifier(host, key)
    raise AssertionError(f"log {log_id_b64} not in {trusted_root}")


def test_production_rekor_v1_checkpoint_verifies_with_vkey() -> None:
    entry = _entry("production/bundle_v3_github.whl.sigstore")
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
    cp, note, verified = open_checkpoint(envelope, [verifier_from_vkey(REKOR_V1_VKEY)])
    assert cp.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert cp.size == 75441653
    # Bundles carry the proof's root as protobuf-JSON bytes, i.e. base64.
    assert cp.root_hash == base64.b64decode(entry["inclusionProof"]["rootHash"])
    assert [s.name for s in verified] == ["rekor.sigstore.dev"]
    # The key hint is the first 4 bytes of the Rekor v1 logID.
    assert verified[0].key_id == base64.b64decode(entry["logId"]["keyId"])[:4]
    assert note.to_bytes() == envelope.encode("utf-8")


@pytest.mark.parametrize(
    ("bundle", "has_extension"),
    [
        ("staging/bundle.txt.sigstore", True),  # carries a "Timestamp: ..." extension line
        ("staging/bundle_v3.txt.sigstore", False),
        ("staging/staging-rekor-v2.txt.sigstore.json", False),  # Rekor v2, Ed25519
    ],
)
def test_staging_checkpoints_verify(bundle: str, has_extension: bool) -> None:
    entry = _entry(bundle)
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
    verifier = _verifier_for_log("staging/trusted_root.json", entry["logId"]["keyId"])
    cp, note, verified = open_checkpoint(envelope, [verifier])
    assert cp.size == int(entry["inclusionProof"]["treeSize"])
    assert cp.root_hash == base64.b64decode(entry["inclusionProof"]["rootHash"])
    assert bool(cp.extensions) is has_extension
    assert verified[0].key_id == base64.b64decode(entry["logId"]["keyId"])[:4]
    assert note.to_bytes() == envelope.encode("utf-8")


def test_rekor_v2_key_id_is_c2sp_note_key_id() -> None:
    entry = _entry("staging/staging-rekor-v2.txt.sigstore.json")
    verifier = _verifier_for_log("staging/trusted_root.json", entry["logId"]["keyId"])
    assert isinstance(verifier, Ed25519Verifier)
    raw = verifier.vkey_material[1:]
    full = hashlib.sha256(verifier.name.encode() + b"\n\x01" + raw).digest()
    assert full == base64.b64decode(entry["logId"]["keyId"])


def test_real_checkpoint_with_wrong_log_key_is_unverified() -> None:
    entry = _entry("staging/bundle_v3.txt.sigstore")
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(envelope, [verifier_from_vkey(REKOR_V1_VKEY)])


def test_real_checkpoint_tampered_size_fails() -> None:
    entry = _entry("production/bundle_v3_github.whl.sigstore")
    envelope: str = entry["inclusionProof"]["checkpoint"]["envelope"]
    tampered = envelope.replace("\n75441653\n", "\n75441654\n")
    assert tampered != envelope
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(tampered, [verifier_from_vkey(REKOR_V1_VKEY)])
