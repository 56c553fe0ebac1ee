"""Verifier keys: ``<name>+<hex8 key ID>+base64(type || public key)``."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.note import (
    CosignatureV1Signer,
    CosignatureV1Verifier,
    ECDSASigner,
    ECDSAVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    NoteError,
    open_note,
    sign_note,
    verifier_from_vkey,
    vkey,
)

ED = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
P256 = ec.derive_private_key(424242, ec.SECP256R1())
P384 = ec.derive_private_key(424242, ec.SECP384R1())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


ED_SHORT = _b64(b"\x01" + bytes(31))
TYPE_05 = _b64(b"\x05" + bytes(32))
TYPE_03 = _b64(b"\x03" + bytes(32))
ECDSA_NOT_DER = _b64(b"\x02" + bytes(32))


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_ed25519_round_trip() -> None:
    signer = Ed25519Signer("example.com/log", ED)
    text = vkey(signer.verifier())
    name, key_id, material = text.split("+", 2)
    assert name == "example.com/log"
    assert key_id == signer.key_id.hex()
    raw = base64.b64decode(material)
    assert raw[0] == 0x01 and len(raw) == 33
    parsed = verifier_from_vkey(text)
    assert isinstance(parsed, Ed25519Verifier)
    assert open_note(sign_note("hi\n", [signer]).to_bytes(), [parsed])[1]


@pytest.mark.parametrize("key", [P256, P384])
def test_ecdsa_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    signer = ECDSASigner("rekor.example", key)
    text = vkey(signer.verifier())
    raw = base64.b64decode(text.split("+", 2)[2])
    assert raw[0] == 0x02 and raw[1:] == _spki(key.public_key())
    parsed = verifier_from_vkey(text)
    assert isinstance(parsed, ECDSAVerifier)
    assert parsed.key_id == signer.key_id
    assert open_note(sign_note("hi\n", [signer]).to_bytes(), [parsed])[1]


def test_cosignature_round_trip() -> None:
    signer = CosignatureV1Signer("witness.example", ED, clock=lambda: 5)
    text = vkey(signer.verifier())
    assert base64.b64decode(text.split("+", 2)[2])[0] == 0x04
    parsed = verifier_from_vkey(text)
    assert isinstance(parsed, CosignatureV1Verifier)
    assert open_note(sign_note("hi\n", [signer]).to_bytes(), [parsed])[1]


def test_uppercase_key_id_accepted() -> None:
    text = vkey(Ed25519Signer("k", ED).verifier())
    name, key_id, material = text.split("+", 2)
    assert verifier_from_vkey(f"{name}+{key_id.upper()}+{material}").name == "k"


def _ed_vkey(name: str = "k") -> tuple[str, str, str]:
    name, key_id, material = vkey(Ed25519Signer(name, ED).verifier()).split("+", 2)
    return name, key_id, material


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda n, k, m: f"{n}+{k}", "'<name>\\+<key ID>\\+<key>'"),
        (lambda n, k, m: f"{n}{k}{m}", "'<name>\\+<key ID>\\+<key>'"),
        (lambda n, k, m: f"+{k}+{m}", "empty"),
        (lambda n, k, m: f"a b+{k}+{m}", "whitespace"),
        (lambda n, k, m: f"{n}+{k[:7]}+{m}", "8 hex"),
        (lambda n, k, m: f"{n}+{k}0+{m}", "8 hex"),
        (lambda n, k, m: f"{n}+zzzzzzzz+{m}", "8 hex"),
        (lambda n, k, m: f"{n}+{'0' * 8 if k != '0' * 8 else '1' * 8}+{m}", "does not match"),
        (lambda n, k, m: f"x{n}+{k}+{m}", "does not match"),
        (lambda n, k, m: f"{n}+{k}+{m[:-1]}", "base64"),
        (lambda n, k, m: f"{n}+{k}+{m}\n", "base64"),
        (lambda n, k, m: f"{n}+{k}+AQ==", "too short"),
        (lambda n, k, m: f"{n}+{k}+{ED_SHORT}", "32"),
        (lambda n, k, m: f"{n}+{k}+{TYPE_05}", "not supported"),
        (lambda n, k, m: f"{n}+{k}+{TYPE_03}", "not supported"),
        (lambda n, k, m: f"{n}+{k}+{ECDSA_NOT_DER}", "SubjectPublicKeyInfo"),
    ],
)
def test_rejects(make: object, message: str) -> None:
    n, k, m = _ed_vkey()
    assert callable(make)
    with pytest.raises(NoteError, match=message):
        verifier_from_vkey(make(n, k, m))


def test_rejects_ecdsa_vkey_holding_other_key_types() -> None:
    ed_spki = ED.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(NoteError, match="non-EC"):
        verifier_from_vkey("k+00000000+" + _b64(b"\x02" + ed_spki))
    rsa_spki = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(NoteError, match="non-EC"):
        verifier_from_vkey("k+00000000+" + _b64(b"\x02" + rsa_spki))


def test_rejects_ecdsa_vkey_on_unlisted_curve() -> None:
    spki = _spki(ec.derive_private_key(9, ec.SECP256K1()).public_key())
    with pytest.raises(NoteError, match="curve"):
        verifier_from_vkey("k+00000000+" + _b64(b"\x02" + spki))


def test_rejects_ecdsa_vkey_with_compressed_point() -> None:
    # A valid SPKI, but not the canonical (uncompressed) DER we re-derive the key ID from.
    point = P256.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    uncompressed = _spki(P256.public_key())  # 30 59 <AlgorithmIdentifier> 03 42 00 04 X Y
    algorithm = uncompressed[2:-68]
    bit_string = bytes([0x03, len(point) + 1, 0x00]) + point
    compressed_spki = bytes([0x30, len(algorithm) + len(bit_string)]) + algorithm + bit_string
    assert serialization.load_der_public_key(compressed_spki) == P256.public_key()
    with pytest.raises(NoteError, match="canonical"):
        verifier_from_vkey("k+00000000+" + _b64(b"\x02" + compressed_spki))
