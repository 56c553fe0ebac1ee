"""Signing and opening checkpoints, and attaching witness cosignatures."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    add_signatures,
    open_checkpoint,
    sign_checkpoint,
)
from tlog.note import (
    MAX_SIGNATURES,
    CosignatureV1Signer,
    ECDSASigner,
    Ed25519Signer,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSignature,
    UnverifiedNoteError,
    cosignature_timestamp,
    sign_note,
)

ORIGIN = "example.com/log"
ROOT = hashlib.sha256(b"root").digest()
LOG = Ed25519Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x11" * 32))


def witness(i: int, when: int = 1_700_000_000) -> CosignatureV1Signer:
    key = Ed25519PrivateKey.from_private_bytes(bytes([0x20 + i]) * 32)
    return CosignatureV1Signer(f"witness{i}.example", key, clock=lambda: when)


def cosign(note_bytes: bytes, signer: CosignatureV1Signer) -> str:
    """What a witness returns from add-checkpoint: its signature line(s)."""
    note = Note.parse(note_bytes)
    return NoteSignature(signer.name, signer.key_id, signer.sign(note.message)).line()


def test_sign_and_open_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 10, ROOT, ("ext line",))
    data = sign_checkpoint(cp, [LOG])
    assert data.startswith(cp.to_text().encode() + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" ")
    opened, note, verified = open_checkpoint(data, [LOG.verifier()])
    assert opened == cp
    assert note.text == cp.to_text()
    assert [s.name for s in verified] == [ORIGIN]


def test_ecdsa_signed_checkpoint_round_trip() -> None:
    signer = ECDSASigner("rekor.example", ec.derive_private_key(99, ec.SECP256R1()))
    cp = Checkpoint("rekor.example - 42", 7, ROOT)
    opened, _, _ = open_checkpoint(sign_checkpoint(cp, [signer]), [signer.verifier()])
    assert opened == cp


def test_wrong_key_unverified() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), [LOG])
    other = Ed25519Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x12" * 32))
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(data, [other.verifier()])


def test_tampered_root_rejected() -> None:
    cp = Checkpoint(ORIGIN, 1, ROOT)
    data = sign_checkpoint(cp, [LOG])
    forged = Checkpoint(ORIGIN, 1, hashlib.sha256(b"other").digest()).to_text().encode()
    tampered = data.replace(cp.to_text().encode(), forged)
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(tampered, [LOG.verifier()])


def test_verified_note_that_is_not_a_checkpoint() -> None:
    data = sign_note("just some text\n", [LOG]).to_bytes()
    with pytest.raises(CheckpointError):
        open_checkpoint(data, [LOG.verifier()])


def test_text_is_not_interpreted_before_verification() -> None:
    # Malformed checkpoint text signed by an unknown key: the signature error wins.
    data = sign_note("not a checkpoint\n", [LOG]).to_bytes()
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(data, [])


def test_add_cosignatures_from_witness_bodies() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), [LOG])
    w1, w2 = witness(1, 111), witness(2, 222)
    body1, body2 = cosign(data, w1), cosign(data, w2)
    merged = add_signatures(data, body1.encode())
    merged = add_signatures(merged, body2)
    cp, note, verified = open_checkpoint(merged, [LOG.verifier(), w1.verifier(), w2.verifier()])
    assert [s.name for s in note.signatures] == [ORIGIN, "witness1.example", "witness2.example"]
    assert [s.name for s in verified] == [ORIGIN, "witness1.example", "witness2.example"]
    assert [cosignature_timestamp(s.signature) for s in verified[1:]] == [111, 222]
    # The original signature bytes are untouched and come first.
    assert merged.startswith(data)


def test_add_signatures_accepts_objects_and_dedupes() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), [LOG])
    w1 = witness(1)
    line = cosign(data, w1)
    once = add_signatures(data, line)
    twice = add_signatures(once, line + line)
    assert twice == once
    sig = NoteSignature.from_line(line.removesuffix("\n"))
    assert add_signatures(data, [sig, sig]) == once
    # Re-adding the log's own signature changes nothing either.
    assert add_signatures(data, Note.parse(data).signatures) == data


def test_add_signatures_does_not_verify_but_open_does() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), [LOG])
    w1 = witness(1)
    bogus = NoteSignature(w1.name, w1.key_id, b"\x00" * 72)
    merged = add_signatures(data, [bogus])
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(merged, [LOG.verifier(), w1.verifier()])


@pytest.mark.parametrize("extra", ["", "junk\n", "\u2014 w AAAA\n", "\u2014 w AQIDBAU=", "\u2014 a b c\n"])
def test_add_signatures_rejects_malformed_lines(extra: str) -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), [LOG])
    with pytest.raises(NoteError):
        add_signatures(data, extra)


def test_add_signatures_rejects_non_checkpoint_notes() -> None:
    data = sign_note("hello\n", [LOG]).to_bytes()
    with pytest.raises(CheckpointError):
        add_signatures(data, cosign(data, witness(1)))


def test_add_signatures_respects_signature_cap() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), [LOG])
    extra = [NoteSignature(f"w{i}.example", b"\x00\x00\x00\x01", b"x" * 72) for i in range(MAX_SIGNATURES)]
    with pytest.raises(NoteError, match="limit"):
        add_signatures(data, extra)
