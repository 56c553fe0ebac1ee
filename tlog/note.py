"""C2SP signed notes (``c2sp.org/signed-note``) and the note signature types
this project uses: Ed25519 (0x01), ECDSA (0x02) and tlog-cosignature v1
timestamped Ed25519 cosignatures (0x04, ``c2sp.org/tlog-cosignature``).

A signed note is UTF-8 text ending in a newline, one blank line, and one or
more signature lines::

    <text, may contain blank lines>\\n
    \\n
    — <key name> base64(key ID[4] || signature)\\n
    ...

The *last* blank line separates the text from the signatures; the signed
message is the text including its final newline.

This module is pure: no I/O and no key loading (keys arrive as
``cryptography`` objects). Parsing is strict and size-capped; every problem is
reported as a :class:`NoteError` (a ``ValueError``) whose message names it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "COSIGNATURE_V1_HEADER",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ECDSA",
    "SIG_TYPE_ED25519",
    "CosignatureV1Signer",
    "CosignatureV1Verifier",
    "ECDSASigner",
    "ECDSAVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "InvalidSignatureError",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "UnverifiedNoteError",
    "VKeyVerifier",
    "cosignature_timestamp",
    "cosigned_message",
    "ecdsa_key_id",
    "key_id_for",
    "open_note",
    "parse_signature_lines",
    "sign_note",
    "verifier_from_vkey",
    "vkey",
]

MAX_NOTE_SIZE = 1 << 20
"""Largest encoded note (bytes) :meth:`Note.parse` accepts."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry; the spec requires accepting >= 16."""

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_ECDSA = 0x02
SIG_TYPE_COSIGNATURE_V1 = 0x04

COSIGNATURE_V1_HEADER = b"cosignature/v1\n"

_EM_DASH_PREFIX = "\u2014 "  # U+2014 EM DASH, then one space
_KEY_ID_SIZE = 4
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_MAX_TIMESTAMP = (1 << 63) - 1
# Any ASCII control character except newline (0x0A); the spec allows nothing else below 0x20.
_CONTROL_CHARS = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile("[0-9a-fA-F]{8}")

# transparency-dev/witness hashes every curve's message with SHA-256, but
# sigstore clients pick the hash from the key's curve (keyDetails such as
# PKIX_ECDSA_P384_SHA_384). Only P-256 is interoperable both ways; for the
# larger curves we follow the sigstore pairing and let callers override it.
_ECDSA_CURVE_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


class NoteError(ValueError):
    """A note, signature line, key name or verifier key is malformed."""


class InvalidSignatureError(NoteError):
    """A signature from a known (name, key ID) failed to verify.

    The spec says clients SHOULD reject the whole note in that case; a witness
    answers it with 403. ``name`` and ``key_id`` identify the offending key.
    """

    def __init__(self, message: str, *, name: str, key_id: bytes) -> None:
        super().__init__(message)
        self.name = name
        self.key_id = key_id


class UnverifiedNoteError(NoteError):
    """No signature from a known key verified (the note MUST be rejected)."""


# ---------------------------------------------------------------------------
# Validation helpers shared by parsing and construction.


def _check_key_name(name: str) -> None:
    """Key names are non-empty, with no Unicode whitespace and no '+'."""
    if not isinstance(name, str) or not name:
        raise NoteError("key name is empty")
    if "+" in name:
        raise NoteError(f"key name {name!r} contains '+'")
    if any(ch.isspace() for ch in name):
        raise NoteError(f"key name {name!r} contains whitespace")
    if _CONTROL_CHARS.search(name):
        raise NoteError(f"key name {name!r} contains a control character")


def _check_text(text: str) -> None:
    """Note text: non-empty, newline-terminated, no control characters but '\\n'."""
    if not isinstance(text, str):
        raise NoteError("note text must be str")
    if not text:
        raise NoteError("note text is empty")
    if not text.endswith("\n"):
        raise NoteError("note text does not end in a newline")
    if _CONTROL_CHARS.search(text):
        raise NoteError("note text contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("note text is not valid Unicode (lone surrogate)") from exc


def _b64decode_strict(value: str, what: str) -> bytes:
    """Decode standard, padded base64 and insist the input was canonical.

    ``validate=True`` rejects characters outside the alphabet; re-encoding
    catches non-zero trailing bits and other non-canonical spellings, so each
    byte string has exactly one accepted encoding.
    """
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical standard base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------
# Data model.


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: ``— <name> base64(key_id || signature)``."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != _KEY_ID_SIZE:
            raise NoteError(f"key ID must be {_KEY_ID_SIZE} bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteError(f"signature from {self.name!r} is empty")

    def line(self) -> str:
        """The signature line, including its final newline."""
        return f"{_EM_DASH_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line given *without* its final newline."""
        if not line.startswith(_EM_DASH_PREFIX):
            raise NoteError("signature line does not start with an em dash and a space")
        parts = line[len(_EM_DASH_PREFIX) :].split(" ")
        if len(parts) != 2:
            raise NoteError("signature line is not '— <name> <base64>'")
        name, encoded = parts
        _check_key_name(name)
        raw = _b64decode_strict(encoded, f"signature from {name!r}")
        if len(raw) <= _KEY_ID_SIZE:
            raise NoteError(f"signature from {name!r} is too short ({len(raw)} bytes)")
        return cls(name=name, key_id=raw[:_KEY_ID_SIZE], signature=raw[_KEY_ID_SIZE:])


def _decode_note_input(data: bytes | str) -> str:
    """Size-check and UTF-8-decode the raw input of a parser."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NoteError("note is not valid Unicode (lone surrogate)") from exc
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise NoteError(f"note must be bytes or str, not {type(data).__name__}")
    if len(raw) > MAX_NOTE_SIZE:
        raise NoteError(f"note is {len(raw)} bytes, more than the limit of {MAX_NOTE_SIZE}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("note is not valid UTF-8") from exc
    if "\r" in text:
        # Named separately: CRLF line endings are the most common way to get here.
        raise NoteError("note contains a carriage return (CR); lines must end in LF only")
    if _CONTROL_CHARS.search(text):
        raise NoteError("note contains a control character other than newline")
    return text


def parse_signature_lines(data: bytes | str) -> tuple[NoteSignature, ...]:
    """Parse a block of one or more newline-terminated signature lines.

    This is the signature section of a note, and also the body a witness
    returns from ``add-checkpoint``. Raises :class:`NoteError`.
    """
    return _parse_signature_block(_decode_note_input(data))


def _parse_signature_block(block: str) -> tuple[NoteSignature, ...]:
    if not block:
        raise NoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}")
    return tuple(NoteSignature.from_line(line) for line in lines)


@dataclass(frozen=True)
class Note:
    """A note text (ending in ``\\n``) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not isinstance(self.signatures, tuple):
            raise NoteError("signatures must be a tuple")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(
                f"note has {len(self.signatures)} signatures, more than the limit of {MAX_SIGNATURES}"
            )

    @property
    def message(self) -> bytes:
        """The signed message: the UTF-8 text including its final newline."""
        return self.text.encode("utf-8")

    def to_bytes(self) -> bytes:
        """Encode as text, blank line, signature lines.

        Raises :class:`NoteError` for a note without signatures, which would not
        parse back.
        """
        if not self.signatures:
            raise NoteError("a note needs at least one signature to be encoded")
        lines = "".join(sig.line() for sig in self.signatures)
        return (self.text + "\n" + lines).encode("utf-8")

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """A copy with ``extra`` appended, skipping exact duplicates (same
        name, key ID and signature bytes) of lines already present."""
        merged = list(self.signatures)
        for sig in extra:
            if sig not in merged:
                merged.append(sig)
        return Note(text=self.text, signatures=tuple(merged))

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Parse a signed note strictly. Raises :class:`NoteError`.

        Checks, in order: size (<= :data:`MAX_NOTE_SIZE` bytes), UTF-8, no
        control characters but ``\\n``, a blank line, a non-empty text ending
        in ``\\n``, and 1..:data:`MAX_SIGNATURES` well-formed signature lines.
        """
        note = _decode_note_input(data)
        split = note.rfind("\n\n")
        if split < 0:
            raise NoteError("note has no blank line separating text and signatures")
        text, sig_block = note[: split + 1], note[split + 2 :]
        signatures = _parse_signature_block(sig_block)
        return cls(text=text, signatures=signatures)


# ---------------------------------------------------------------------------
# Signers and verifiers.


class NoteSigner(Protocol):
    """Signs note texts under one (name, key ID)."""

    @property
    def name(self) -> str:
        """The key name written in the signature line."""
        ...

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID prefixed to the signature."""
        ...

    def sign(self, msg: bytes) -> bytes:
        """Return the signature bytes (without the key ID) over ``msg``."""
        ...


class NoteVerifier(Protocol):
    """Verifies signatures from one (name, key ID)."""

    @property
    def name(self) -> str:
        """The key name signatures must carry."""
        ...

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID signatures must carry."""
        ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """True if ``sig`` (without the key ID) is valid over ``msg``."""
        ...


class VKeyVerifier(NoteVerifier, Protocol):
    """A verifier that can be written as a vkey string."""

    @property
    def vkey_material(self) -> bytes:
        """``type byte || public key encoding``, as used in the vkey."""
        ...


def key_id_for(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The recommended key ID: ``SHA-256(name || 0x0A || type || pubkey)[:4]``."""
    _check_key_name(name)
    preimage = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(preimage).digest()[:_KEY_ID_SIZE]


def ecdsa_key_id(spki_der: bytes) -> bytes:
    """The ECDSA (0x02) key ID: ``SHA-256(DER SubjectPublicKeyInfo)[:4]``.

    No name and no type byte; this is also the first 4 bytes of a Rekor v1
    logID, which is what sigstore clients compare against.
    """
    return hashlib.sha256(spki_der).digest()[:_KEY_ID_SIZE]


def _ed25519_raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _ecdsa_spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ecdsa_hash(
    curve: ec.EllipticCurve, override: hashes.HashAlgorithm | None
) -> hashes.HashAlgorithm:
    if curve.name not in _ECDSA_CURVE_HASHES:
        raise NoteError(f"ECDSA curve {curve.name} is not allowed (P-256, P-384 or P-521)")
    if override is not None:
        return override
    return _ECDSA_CURVE_HASHES[curve.name]()


class Ed25519Signer:
    """Signature type 0x01: plain Ed25519 over the note text."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("Ed25519Signer needs an Ed25519PrivateKey")
        self._name = name
        self._private_key = private_key
        self._key_id = key_id_for(name, SIG_TYPE_ED25519, _ed25519_raw(private_key.public_key()))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def sign(self, msg: bytes) -> bytes:
        return self._private_key.sign(msg)

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self._name, self._private_key.public_key())

    def __repr__(self) -> str:
        return f"Ed25519Signer(name={self._name!r}, key_id={self._key_id.hex()})"


class Ed25519Verifier:
    """Verifies type 0x01 Ed25519 note signatures."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_key_name(name)
        if not isinstance(public_key, Ed25519PublicKey):
            raise NoteError("Ed25519Verifier needs an Ed25519PublicKey")
        self._name = name
        self._public_key = public_key
        self._raw = _ed25519_raw(public_key)
        self._key_id = key_id_for(name, SIG_TYPE_ED25519, self._raw)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    @property
    def vkey_material(self) -> bytes:
        return bytes([SIG_TYPE_ED25519]) + self._raw

    def verify(self, msg: bytes, sig: bytes) -> bool:
        if len(sig) != _ED25519_SIG_SIZE:
            return False
        try:
            self._public_key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Ed25519Verifier(name={self._name!r}, key_id={self._key_id.hex()})"


class ECDSASigner:
    """Signature type 0x02: DER ECDSA over the note text.

    The hash follows the curve (SHA-256 for P-256, SHA-384 for P-384, SHA-512
    for P-521) unless ``hash_algorithm`` overrides it. P-256 with SHA-256 is
    what Rekor v1 and sigstore clients use.
    """

    def __init__(
        self,
        name: str,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        hash_algorithm: hashes.HashAlgorithm | None = None,
    ) -> None:
        _check_key_name(name)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise NoteError("ECDSASigner needs an EllipticCurvePrivateKey")
        self._hash = _ecdsa_hash(private_key.curve, hash_algorithm)
        self._name = name
        self._private_key = private_key
        self._key_id = ecdsa_key_id(_ecdsa_spki(private_key.public_key()))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def sign(self, msg: bytes) -> bytes:
        return self._private_key.sign(msg, ec.ECDSA(self._hash))

    def verifier(self) -> ECDSAVerifier:
        """The matching verifier."""
        return ECDSAVerifier(self._name, self._private_key.public_key(), hash_algorithm=self._hash)

    def __repr__(self) -> str:
        return f"ECDSASigner(name={self._name!r}, key_id={self._key_id.hex()})"


class ECDSAVerifier:
    """Verifies type 0x02 ECDSA note signatures (DER-encoded)."""

    def __init__(
        self,
        name: str,
        public_key: ec.EllipticCurvePublicKey,
        *,
        hash_algorithm: hashes.HashAlgorithm | None = None,
    ) -> None:
        _check_key_name(name)
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise NoteError("ECDSAVerifier needs an EllipticCurvePublicKey")
        self._hash = _ecdsa_hash(public_key.curve, hash_algorithm)
        self._name = name
        self._public_key = public_key
        self._spki = _ecdsa_spki(public_key)
        self._key_id = ecdsa_key_id(self._spki)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def vkey_material(self) -> bytes:
        return bytes([SIG_TYPE_ECDSA]) + self._spki

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._public_key.verify(sig, msg, ec.ECDSA(self._hash))
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"ECDSAVerifier(name={self._name!r}, key_id={self._key_id.hex()})"


def cosigned_message(timestamp: int, note_text: bytes) -> bytes:
    """The tlog-cosignature v1 signed message for ``note_text`` at ``timestamp``:
    ``cosignature/v1\\ntime <ts>\\n`` followed by the checkpoint note text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    return COSIGNATURE_V1_HEADER + b"time %d\n" % timestamp + note_text


def cosignature_timestamp(sig: bytes) -> int:
    """The timestamp of a v1 cosignature (signature bytes without the key ID).

    Only the structure is checked (u64 big-endian timestamp || 64-byte
    Ed25519 signature); use :class:`CosignatureV1Verifier` to verify it.
    """
    if len(sig) != 8 + _ED25519_SIG_SIZE:
        raise NoteError(f"cosignature is {len(sig)} bytes, want {8 + _ED25519_SIG_SIZE}")
    (timestamp,) = struct.unpack(">Q", sig[:8])
    if timestamp > _MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} exceeds 2^63-1")
    return int(timestamp)


class CosignatureV1Signer:
    """Signature type 0x04: tlog-cosignature v1 (timestamped Ed25519).

    ``clock`` returns POSIX seconds; it is read once per signature. The
    message signed does not include the cosigner's name, so each cosigner
    name needs its own key.
    """

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("CosignatureV1Signer needs an Ed25519PrivateKey")
        self._name = name
        self._private_key = private_key
        self._clock = clock
        raw = _ed25519_raw(private_key.public_key())
        self._key_id = key_id_for(name, SIG_TYPE_COSIGNATURE_V1, raw)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def sign(self, msg: bytes) -> bytes:
        timestamp = int(self._clock())
        signature = self._private_key.sign(cosigned_message(timestamp, msg))
        return struct.pack(">Q", timestamp) + signature

    def verifier(self) -> CosignatureV1Verifier:
        """The matching verifier."""
        return CosignatureV1Verifier(self._name, self._private_key.public_key())

    def __repr__(self) -> str:
        return f"CosignatureV1Signer(name={self._name!r}, key_id={self._key_id.hex()})"


class CosignatureV1Verifier:
    """Verifies type 0x04 tlog-cosignature v1 signatures."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_key_name(name)
        if not isinstance(public_key, Ed25519PublicKey):
            raise NoteError("CosignatureV1Verifier needs an Ed25519PublicKey")
        self._name = name
        self._public_key = public_key
        self._raw = _ed25519_raw(public_key)
        self._key_id = key_id_for(name, SIG_TYPE_COSIGNATURE_V1, self._raw)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    @property
    def vkey_material(self) -> bytes:
        return bytes([SIG_TYPE_COSIGNATURE_V1]) + self._raw

    def verify_timestamp(self, msg: bytes, sig: bytes) -> int | None:
        """The cosignature's timestamp if it verifies over ``msg``, else None."""
        try:
            timestamp = cosignature_timestamp(sig)
        except NoteError:
            return None
        try:
            self._public_key.verify(sig[8:], cosigned_message(timestamp, msg))
        except InvalidSignature:
            return None
        return timestamp

    def verify(self, msg: bytes, sig: bytes) -> bool:
        return self.verify_timestamp(msg, sig) is not None

    def __repr__(self) -> str:
        return f"CosignatureV1Verifier(name={self._name!r}, key_id={self._key_id.hex()})"


# ---------------------------------------------------------------------------
# Verifier keys ("vkeys"): <name>+<hex key ID>+base64(type || public key).


def vkey(verifier: VKeyVerifier) -> str:
    """Format ``verifier`` as ``<name>+<hex8 key ID>+base64(type || pubkey)``."""
    return f"{verifier.name}+{verifier.key_id.hex()}+{_b64encode(verifier.vkey_material)}"


def verifier_from_vkey(value: str) -> VKeyVerifier:
    """Parse a vkey of type 0x01 (Ed25519), 0x02 (ECDSA, DER SPKI) or 0x04
    (cosignature v1). The key ID must recompute from the key. Raises
    :class:`NoteError`.
    """
    if not isinstance(value, str):
        raise NoteError("vkey must be str")
    # Base64 may itself contain '+', but names and hex key IDs cannot.
    parts = value.split("+", 2)
    if len(parts) != 3:
        raise NoteError("vkey is not '<name>+<key ID>+<key>'")
    name, key_id_hex, encoded = parts
    _check_key_name(name)
    if not _HEX8.fullmatch(key_id_hex):
        raise NoteError(f"vkey key ID {key_id_hex!r} is not 8 hex digits")
    claimed_id = bytes.fromhex(key_id_hex)
    material = _b64decode_strict(encoded, "vkey key material")
    if len(material) < 2:
        raise NoteError("vkey key material is too short")
    sig_type, key = material[0], material[1:]

    verifier: VKeyVerifier
    if sig_type in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        if len(key) != _ED25519_KEY_SIZE:
            raise NoteError(f"Ed25519 vkey public key is {len(key)} bytes, want 32")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(key)
        except ValueError as exc:
            raise NoteError("vkey holds an invalid Ed25519 public key") from exc
        if sig_type == SIG_TYPE_ED25519:
            verifier = Ed25519Verifier(name, public_key)
        else:
            verifier = CosignatureV1Verifier(name, public_key)
    elif sig_type == SIG_TYPE_ECDSA:
        try:
            loaded = serialization.load_der_public_key(key)
        except (ValueError, TypeError) as exc:
            raise NoteError("ECDSA vkey does not hold a DER SubjectPublicKeyInfo") from exc
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise NoteError("ECDSA vkey holds a non-EC public key")
        if _ecdsa_spki(loaded) != key:
            raise NoteError("ECDSA vkey SubjectPublicKeyInfo is not in canonical DER form")
        verifier = ECDSAVerifier(name, loaded)
    else:
        raise NoteError(f"vkey signature type 0x{sig_type:02x} is not supported")

    if verifier.key_id != claimed_id:
        raise NoteError(
            f"vkey key ID {key_id_hex} does not match the key (computed {verifier.key_id.hex()})"
        )
    return verifier


# ---------------------------------------------------------------------------
# Signing and opening notes.


def sign_note(text: str, signers: Sequence[NoteSigner]) -> Note:
    """Sign ``text`` (non-empty, ending in ``\\n``) with every signer, in order."""
    _check_text(text)
    if not signers:
        raise NoteError("sign_note needs at least one signer")
    message = text.encode("utf-8")
    signatures = []
    for signer in signers:
        signatures.append(
            NoteSignature(name=signer.name, key_id=bytes(signer.key_id), signature=signer.sign(message))
        )
    return Note(text=text, signatures=tuple(signatures))


def open_note(
    data: bytes | str | Note, verifiers: Sequence[NoteVerifier]
) -> tuple[Note, list[NoteSignature]]:
    """Parse ``data`` and verify it against ``verifiers``.

    Signatures are matched to verifiers by (name, key ID); others are ignored
    (key rotation, witness cosignatures). Returns the note and the signatures
    that verified, at most one per known key, in note order.

    Raises :class:`NoteError` if the note is malformed or two verifiers share
    a (name, key ID); :class:`InvalidSignatureError` if a signature from a
    known key fails; :class:`UnverifiedNoteError` if no known key signed it.
    """
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        ident = (verifier.name, bytes(verifier.key_id))
        if ident in known:
            raise NoteError(
                f"two verifiers share name {ident[0]!r} and key ID {ident[1].hex()}"
            )
        known[ident] = verifier

    note = data if isinstance(data, Note) else Note.parse(data)
    message = note.message
    verified: list[NoteSignature] = []
    verified_keys: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        ident = (sig.name, sig.key_id)
        match = known.get(ident)
        if match is None:
            continue
        if not match.verify(message, sig.signature):
            raise InvalidSignatureError(
                f"signature from {sig.name!r} (key ID {sig.key_id.hex()}) does not verify",
                name=sig.name,
                key_id=sig.key_id,
            )
        if ident not in verified_keys:
            verified_keys.add(ident)
            verified.append(sig)
    if not verified:
        names = sorted({sig.name for sig in note.signatures})
        raise UnverifiedNoteError(f"note has no signature from a known key (signed by {names})")
    return note, verified
