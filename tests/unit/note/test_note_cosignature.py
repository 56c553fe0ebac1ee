"""tlog-cosignature v1 (signature type 0x04): timestamped Ed25519 cosignatures."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.note import (
    CosignatureV1Signer,
    CosignatureV1Verifier,
    Ed25519Signer,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSignature,
    UnverifiedNoteError,
    cosignature_timestamp,
    cosigned_message,
    open_note,
    sign_note,
)

CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
NOW = 1_700_000_000


def witness_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)


def cosigner(clock_value: float = NOW) -> CosignatureV1Signer:
    return CosignatureV1Signer("witness.example/w1", witness_key(), clock=lambda: clock_value)


def test_key_id_rule() -> None:
    pk = witness_key().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    expected = hashlib.sha256(b"witness.example/w1\n\x04" + pk).digest()[:4]
    assert cosigner().key_id == expected
    assert cosigner().verifier().key_id == expected


def test_signature_layout_and_message() -> None:
    sig = cosigner().sign(CHECKPOINT.encode())
    assert len(sig) == 72
    assert struct.unpack(">Q", sig[:8])[0] == NOW
    assert cosignature_timestamp(sig) == NOW
    message = f"cosignature/v1\ntime {NOW}\n{CHECKPOINT}".encode()
    assert cosigned_message(NOW, CHECKPOINT.encode()) == message
    # Check with plain cryptography: Ed25519 over the cosigned message.
    witness_key().public_key().verify(sig[8:], message)


def test_sign_and_open_returns_timestamp() -> None:
    note = sign_note(CHECKPOINT, [cosigner()])
    verifier = cosigner().verifier()
    _, verified = open_note(note.to_bytes(), [verifier])
    assert cosignature_timestamp(verified[0].signature) == NOW
    assert verifier.verify_timestamp(CHECKPOINT.encode(), verified[0].signature) == NOW


def test_fractional_clock_truncates_to_seconds() -> None:
    sig = cosigner(NOW + 0.999).sign(CHECKPOINT.encode())
    assert cosignature_timestamp(sig) == NOW


def test_changed_timestamp_fails() -> None:
    sig = cosigner().sign(CHECKPOINT.encode())
    moved = struct.pack(">Q", NOW + 1) + sig[8:]
    verifier = cosigner().verifier()
    assert verifier.verify_timestamp(CHECKPOINT.encode(), moved) is None
    assert not verifier.verify(CHECKPOINT.encode(), moved)


def test_changed_checkpoint_fails() -> None:
    sig = cosigner().sign(CHECKPOINT.encode())
    assert not cosigner().verifier().verify(CHECKPOINT.replace("20852163", "20852164").encode(), sig)


def test_cosignature_is_not_a_plain_ed25519_signature() -> None:
    # Same key and name: the plain Ed25519 type has another key ID, and its
    # signature (no header, no timestamp) does not verify as a cosignature.
    plain = Ed25519Signer("witness.example/w1", witness_key())
    assert plain.key_id != cosigner().key_id
    plain_sig = plain.sign(CHECKPOINT.encode())
    assert not cosigner().verifier().verify(CHECKPOINT.encode(), b"\x00" * 8 + plain_sig)
    note = sign_note(CHECKPOINT, [plain])
    with pytest.raises(UnverifiedNoteError):
        open_note(note.to_bytes(), [cosigner().verifier()])


def test_bad_cosignature_from_known_witness_rejects() -> None:
    c = cosigner()
    bad = NoteSignature(c.name, c.key_id, struct.pack(">Q", NOW) + b"\x00" * 64)
    with pytest.raises(InvalidSignatureError):
        open_note(Note(CHECKPOINT, (bad,)).to_bytes(), [c.verifier()])


@pytest.mark.parametrize("length", [0, 8, 71, 73, 76])
def test_wrong_length_rejected(length: int) -> None:
    with pytest.raises(NoteError):
        cosignature_timestamp(b"\x00" * length)
    assert cosigner().verifier().verify_timestamp(b"x\n", b"\x00" * length) is None


def test_timestamp_above_2_63_rejected() -> None:
    sig = struct.pack(">Q", 1 << 63) + b"\x00" * 64
    with pytest.raises(NoteError, match="2\\^63"):
        cosignature_timestamp(sig)


@pytest.mark.parametrize("bad_time", [-1, 1 << 63])
def test_signer_refuses_out_of_range_clock(bad_time: int) -> None:
    with pytest.raises(NoteError):
        cosigner(bad_time).sign(CHECKPOINT.encode())


def test_verifier_rejects_non_ed25519_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(NoteError):
        CosignatureV1Verifier("w", ec.derive_private_key(3, ec.SECP256R1()).public_key())  # type: ignore[arg-type]
