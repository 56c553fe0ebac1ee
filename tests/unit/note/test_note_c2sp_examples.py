"""Known-answer tests from the C2SP specs and real log keys.

Data: shared/testdata/c2sp-derived-examples.json (see shared/testdata/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tlog.checkpoint import Checkpoint
from tlog.note import (
    CosignatureV1Verifier,
    ECDSAVerifier,
    Ed25519Verifier,
    InvalidSignatureError,
    Note,
    NoteSignature,
    cosignature_timestamp,
    cosigned_message,
    open_note,
    verifier_from_vkey,
    vkey,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
EXAMPLES_PATH = SHARED / "testdata" / "c2sp-derived-examples.json"


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    assert EXAMPLES_PATH.is_file(), f"shared test data missing at {EXAMPLES_PATH}"
    data: dict[str, Any] = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
    return data


def test_shared_folder_is_beside_the_repository() -> None:
    assert (SHARED / "testdata" / "README.md").is_file()


def test_spec_ed25519_vkey_parses_and_key_id_recomputes(examples: dict[str, Any]) -> None:
    case = examples["signed_note_ed25519"]
    verifier = verifier_from_vkey(case["vkey"])
    assert isinstance(verifier, Ed25519Verifier)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == case["expected_key_id_hex"]
    # SHA-256(name || 0x0A || 0x01 || pk32)[:4], computed by hand.
    pk = base64.b64decode(case["vkey"].split("+", 2)[2])[1:]
    assert len(pk) == 32
    assert hashlib.sha256(b"example.com/foo\n\x01" + pk).digest()[:4] == verifier.key_id
    assert vkey(verifier) == case["vkey"]


def test_spec_ed25519_note_verifies(examples: dict[str, Any]) -> None:
    case = examples["signed_note_ed25519"]
    signed = case["note_text"] + "\n" + case["signature_line"] + "\n"
    note, verified = open_note(signed.encode("utf-8"), [verifier_from_vkey(case["vkey"])])
    assert case["expected_verifies"] is True
    assert note.text == case["note_text"]
    assert len(verified) == 1
    sig = verified[0]
    assert sig.key_id.hex() == case["expected_key_id_hex"]
    assert 4 + len(sig.signature) == case["expected_signature_bytes"]
    # Re-encoding gives back the exact input.
    assert note.to_bytes() == signed.encode("utf-8")


def test_spec_ed25519_note_tampered_fails(examples: dict[str, Any]) -> None:
    case = examples["signed_note_ed25519"]
    signed = case["note_text"].replace("example", "exemplary") + "\n" + case["signature_line"] + "\n"
    with pytest.raises(InvalidSignatureError):
        open_note(signed, [verifier_from_vkey(case["vkey"])])


def test_spec_cosignature_example_structure(examples: dict[str, Any]) -> None:
    case = examples["cosignature_v1_ed25519_example_sig"]
    sig = NoteSignature.from_line(case["signature_line"].removesuffix("\n"))
    assert sig.name == "witness.example.com/w1"
    assert 4 + len(sig.signature) == case["expected_decoded_len"]
    assert sig.key_id.hex() == case["expected_key_id_hex"]
    assert cosignature_timestamp(sig.signature) == case["expected_timestamp"]
    body = case["checkpoint_body"]
    expected = case["signed_message_if_verifying"].encode("utf-8")
    assert cosigned_message(case["expected_timestamp"], body.encode("utf-8")) == expected
    # The body is itself a well-formed checkpoint.
    cp = Checkpoint.from_text(body)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    # And the full spec example (log signature + cosignature) parses as a note.
    note = Note.parse(body + "\n" + case["signature_line"] + "\n")
    assert note.signatures == (sig,)


@pytest.mark.parametrize("index", [0, 1])
def test_real_world_vkeys_key_ids_recompute(examples: dict[str, Any], index: int) -> None:
    case = examples["real_world_vkeys_key_id_checked"][index]
    verifier = verifier_from_vkey(case["vkey"])
    name, key_id_hex, _ = case["vkey"].split("+", 2)
    assert verifier.name == name
    assert verifier.key_id.hex() == key_id_hex
    assert vkey(verifier) == case["vkey"]
    if case["type"].startswith("0x01"):
        assert isinstance(verifier, Ed25519Verifier)
    else:
        assert isinstance(verifier, ECDSAVerifier)


def test_rekor_v1_vkey_key_id_is_log_id_prefix(examples: dict[str, Any]) -> None:
    case = examples["real_world_vkeys_key_id_checked"][1]
    material = base64.b64decode(case["vkey"].split("+", 2)[2])
    assert material[0] == 0x02
    spki = material[1:]
    log_id = hashlib.sha256(spki).hexdigest()
    assert log_id.startswith("c0d23d6ad406973f")
    assert verifier_from_vkey(case["vkey"]).key_id == bytes.fromhex(log_id[:8])


def test_cosignature_vkey_type_differs_from_ed25519(examples: dict[str, Any]) -> None:
    # The same key and name used as a cosigner (0x04) gets a different key ID.
    ed = verifier_from_vkey(examples["signed_note_ed25519"]["vkey"])
    assert isinstance(ed, Ed25519Verifier)
    cosigner = CosignatureV1Verifier(ed.name, ed.public_key)
    assert cosigner.key_id != ed.key_id
    assert verifier_from_vkey(vkey(cosigner)).key_id == cosigner.key_id
