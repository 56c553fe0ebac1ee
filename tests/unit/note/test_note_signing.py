"""Signers, verifiers and open_note's verification rules (signed-note §Signatures)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.note import (
    ECDSASigner,
    ECDSAVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSignature,
    UnverifiedNoteError,
    ecdsa_key_id,
    key_id_for,
    open_note,
    sign_note,
)

TEXT = "example.com/log\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"


def ed_key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def p256_key(secret: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(secret, ec.SECP256R1())


def test_ed25519_key_id_rule() -> None:
    key = ed_key(1)
    pk = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signer = Ed25519Signer("example.com/log", key)
    assert signer.key_id == hashlib.sha256(b"example.com/log\n\x01" + pk).digest()[:4]
    assert signer.key_id == key_id_for("example.com/log", 0x01, pk)
    assert signer.verifier().key_id == signer.key_id


def test_ecdsa_key_id_is_spki_hash_without_name() -> None:
    key = p256_key(12345)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    a = ECDSASigner("a.example", key)
    b = ECDSASigner("b.example", key)
    assert a.key_id == b.key_id == hashlib.sha256(spki).digest()[:4] == ecdsa_key_id(spki)


def test_ed25519_sign_and_open() -> None:
    signer = Ed25519Signer("example.com/log", ed_key(1))
    note = sign_note(TEXT, [signer])
    assert note.text == TEXT
    assert len(note.signatures[0].signature) == 64
    opened, verified = open_note(note.to_bytes(), [signer.verifier()])
    assert opened == note
    assert verified == [note.signatures[0]]


@pytest.mark.parametrize(
    ("curve", "hash_cls"),
    [(ec.SECP256R1(), hashes.SHA256), (ec.SECP384R1(), hashes.SHA384), (ec.SECP521R1(), hashes.SHA512)],
)
def test_ecdsa_sign_and_open(curve: ec.EllipticCurve, hash_cls: type[hashes.HashAlgorithm]) -> None:
    key = ec.derive_private_key(987654321, curve)
    signer = ECDSASigner("rekor.example", key)
    note = sign_note(TEXT, [signer])
    _, verified = open_note(note.to_bytes(), [ECDSAVerifier("rekor.example", key.public_key())])
    assert len(verified) == 1
    # DER ECDSA over the text with the curve's hash; checked with plain cryptography.
    key.public_key().verify(note.signatures[0].signature, TEXT.encode(), ec.ECDSA(hash_cls()))


def test_ecdsa_hash_override() -> None:
    key = ec.derive_private_key(5, ec.SECP384R1())
    signer = ECDSASigner("x.example", key, hash_algorithm=hashes.SHA256())
    sig = signer.sign(b"msg\n")
    key.public_key().verify(sig, b"msg\n", ec.ECDSA(hashes.SHA256()))
    assert ECDSAVerifier("x.example", key.public_key(), hash_algorithm=hashes.SHA256()).verify(b"msg\n", sig)
    assert not ECDSAVerifier("x.example", key.public_key()).verify(b"msg\n", sig)


def test_ecdsa_rejects_other_curves() -> None:
    with pytest.raises(NoteError, match="curve"):
        ECDSASigner("x.example", ec.derive_private_key(5, ec.SECP256K1()))


def test_signers_reject_wrong_key_types() -> None:
    with pytest.raises(NoteError):
        Ed25519Signer("x", p256_key(1))  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        ECDSASigner("x", ed_key(1))  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        Ed25519Verifier("x", p256_key(1).public_key())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb"])
def test_signers_reject_bad_names(name: str) -> None:
    with pytest.raises(NoteError):
        Ed25519Signer(name, ed_key(1))


def test_verifier_rejects_garbage_signatures() -> None:
    ed = Ed25519Signer("k", ed_key(1)).verifier()
    assert not ed.verify(b"m", b"")
    assert not ed.verify(b"m", b"\x00" * 63)
    assert not ed.verify(b"m", b"\x00" * 64)
    ecv = ECDSASigner("k", p256_key(1)).verifier()
    assert not ecv.verify(b"m", b"")
    assert not ecv.verify(b"m", b"\x30\x00")
    assert not ecv.verify(b"m", b"not der at all")


def test_multiple_signers_in_order_and_all_verify() -> None:
    log = Ed25519Signer("example.com/log", ed_key(1))
    legacy = ECDSASigner("example.com", p256_key(7))
    note = sign_note(TEXT, [log, legacy])
    assert [s.name for s in note.signatures] == ["example.com/log", "example.com"]
    _, verified = open_note(note.to_bytes(), [legacy.verifier(), log.verifier()])
    assert [s.name for s in verified] == ["example.com/log", "example.com"]


def test_sign_note_needs_signers_and_valid_text() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    with pytest.raises(NoteError):
        sign_note(TEXT, [])
    with pytest.raises(NoteError):
        sign_note("no newline", [signer])
    with pytest.raises(NoteError):
        sign_note("cr\r\n", [signer])


# --- verification rules -------------------------------------------------


def test_unknown_key_is_ignored_and_note_is_unverified() -> None:
    note = sign_note(TEXT, [Ed25519Signer("example.com/log", ed_key(1))])
    stranger = Ed25519Signer("example.com/other", ed_key(2)).verifier()
    with pytest.raises(UnverifiedNoteError):
        open_note(note.to_bytes(), [stranger])


def test_no_verifiers_means_unverified() -> None:
    note = sign_note(TEXT, [Ed25519Signer("k", ed_key(1))])
    with pytest.raises(UnverifiedNoteError):
        open_note(note.to_bytes(), [])


def test_same_name_different_key_is_ignored() -> None:
    # Key rotation: the old signature stays on the note, the client only knows the new key.
    old = Ed25519Signer("example.com/log", ed_key(1))
    new = Ed25519Signer("example.com/log", ed_key(2))
    note = sign_note(TEXT, [old, new])
    _, verified = open_note(note.to_bytes(), [new.verifier()])
    assert [s.key_id for s in verified] == [new.key_id]
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, [old]).to_bytes(), [new.verifier()])


def test_same_key_id_different_name_is_ignored() -> None:
    signer = Ed25519Signer("example.com/log", ed_key(1))
    note = sign_note(TEXT, [signer])
    forged = NoteSignature("example.com/other", signer.key_id, b"\x00" * 64)
    data = Note(TEXT, (forged,) + note.signatures).to_bytes()
    _, verified = open_note(data, [signer.verifier()])
    assert verified == [note.signatures[0]]


def test_known_key_with_bad_signature_rejects_whole_note() -> None:
    good = Ed25519Signer("example.com/log", ed_key(1))
    witness = Ed25519Signer("witness.example", ed_key(3))
    note = sign_note(TEXT, [good])
    bad = NoteSignature(witness.name, witness.key_id, b"\x01" * 64)
    data = Note(TEXT, note.signatures + (bad,)).to_bytes()
    with pytest.raises(InvalidSignatureError) as info:
        open_note(data, [good.verifier(), witness.verifier()])
    assert info.value.name == "witness.example"
    assert info.value.key_id == witness.key_id
    # Without the witness key the bad line is just an unknown signature.
    _, verified = open_note(data, [good.verifier()])
    assert len(verified) == 1


def test_tampered_text_fails() -> None:
    signer = Ed25519Signer("example.com/log", ed_key(1))
    data = sign_note(TEXT, [signer]).to_bytes()
    tampered = data.replace(b"\n42\n", b"\n43\n")
    with pytest.raises(InvalidSignatureError):
        open_note(tampered, [signer.verifier()])


def test_signature_over_text_without_final_newline_fails() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    sig = NoteSignature("k", signer.key_id, signer.sign(TEXT.removesuffix("\n").encode()))
    with pytest.raises(InvalidSignatureError):
        open_note(Note(TEXT, (sig,)).to_bytes(), [signer.verifier()])


def test_duplicate_signature_lines_reported_once() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    note = sign_note(TEXT, [signer])
    doubled = Note(TEXT, note.signatures * 2)
    _, verified = open_note(doubled.to_bytes(), [signer.verifier()])
    assert verified == [note.signatures[0]]


def test_ambiguous_verifiers_rejected() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    note = sign_note(TEXT, [signer])
    with pytest.raises(NoteError, match="share"):
        open_note(note.to_bytes(), [signer.verifier(), signer.verifier()])


def test_open_note_accepts_parsed_note() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    note = sign_note(TEXT, [signer])
    assert open_note(note, [signer.verifier()])[0] is note


def test_open_note_rejects_malformed_before_verifying() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    data = sign_note(TEXT, [signer]).to_bytes().replace(b"\n", b"\r\n")
    with pytest.raises(NoteError, match="carriage return"):
        open_note(data, [signer.verifier()])


def test_reprs_do_not_leak_keys() -> None:
    signer = Ed25519Signer("k", ed_key(1))
    assert "Ed25519Signer(name='k', key_id=" in repr(signer)
    assert "private" not in repr(signer).lower()
