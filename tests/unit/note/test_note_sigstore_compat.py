"""Our Rekor v1 (ECDSA) checkpoints pass sigstore-python's checkpoint check.

The check is re-implemented here with plain ``re``/``base64``/``cryptography``
calls, following sigstore-python's ``_internal/rekor/checkpoint.py`` as
described in shared/docs/sigstore-python-interop.md §4.4 and §10:

* the envelope contains exactly one ``"\\n\\n"`` and ends with ``"\\n"``;
* the note body is everything before the blank line, including its ``\\n``;
* signature lines match ``\\u2014 (\\S+) (\\S+)\\n``; base64 decodes to a 4-byte
  hint || signature;
* the first line whose hint equals logID[:4] (logID = SHA-256(DER SPKI of the
  log key)) is verified; if no line has that hint the check fails;
* the signature is DER ECDSA P-256 / SHA-256 over the UTF-8 note body;
* body lines: origin, decimal size, base64 root, then anything.

sigstore-python 4.0 and later (4.5.1 is the target) look for the first matching
hint (upstream commit 0f23402e, "Fix checkpoint signature lookup"). Releases
before 4.0 demanded that *every* signature line carry the log's hint; the
``legacy`` flag emulates that, and shows why a Rekor v1 inclusion proof should
carry a checkpoint signed by the log's ECDSA key alone if 3.x clients matter.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.checkpoint import Checkpoint, add_signatures, sign_checkpoint
from tlog.note import (
    CosignatureV1Signer,
    ECDSASigner,
    Ed25519Signer,
    Note,
    NoteSignature,
    NoteSigner,
)

LOG_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
ROOT = hashlib.sha256(b"some root").digest()


class SigstoreCheckpointError(Exception):
    pass


def sigstore_verify_checkpoint(
    envelope: str,
    public_key: ec.EllipticCurvePublicKey,
    log_id_hex: str,
    root_hash_hex: str,
    *,
    legacy: bool = False,
) -> tuple[str, int]:
    """Independent emulation of sigstore-python's Rekor v1 checkpoint verification."""
    if envelope.count("\n\n") != 1:
        raise SigstoreCheckpointError("note must contain exactly one blank line")
    split = envelope.index("\n\n")
    body, block = envelope[: split + 1], envelope[split + 2 :]
    if not block or not block.endswith("\n"):
        raise SigstoreCheckpointError("signature block must be non-empty and end in a newline")
    # Parse every line first (as SignedNote.from_text does), then look up the hint.
    signatures = []
    for _name, b64 in re.findall(r"\u2014 (\S+) (\S+)\n", block):
        raw = base64.b64decode(b64)
        if len(raw) < 5:
            raise SigstoreCheckpointError("signature too short")
        signatures.append((raw[:4], raw[4:]))
    key_id = bytes.fromhex(log_id_hex)
    if legacy and not signatures:
        raise SigstoreCheckpointError("no signatures")
    verified = False
    for hint, signature in signatures:
        if hint != key_id[:4]:
            if legacy:
                raise SigstoreCheckpointError("sig_hash hint does not match expected key_id")
            continue
        try:
            public_key.verify(signature, body.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise SigstoreCheckpointError("invalid signature") from exc
        verified = True
        if not legacy:
            break
    if not verified:
        raise SigstoreCheckpointError(f"Signature not found for log ID {log_id_hex}")
    lines = body.strip().split("\n")
    if len(lines) < 3 or not lines[0]:
        raise SigstoreCheckpointError("malformed checkpoint body")
    size = int(lines[1])
    if base64.b64decode(lines[2]).hex() != root_hash_hex:
        raise SigstoreCheckpointError("root hash mismatch")
    return lines[0], size


def _log_id_hex() -> str:
    spki = LOG_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("extensions", [(), ("Timestamp: 1689177396617352539",)])
def test_rekor_v1_checkpoint_passes_sigstore_check(extensions: tuple[str, ...], legacy: bool) -> None:
    cp = Checkpoint("rekor.local - 1193050959916656506", 1234, ROOT, extensions)
    # Rekor v1 style: the signer is named after the host (the origin has spaces).
    envelope = sign_checkpoint(cp, [ECDSASigner("rekor.local", LOG_KEY)]).decode("utf-8")
    assert envelope.endswith("\n")
    origin, size = sigstore_verify_checkpoint(
        envelope, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex(), legacy=legacy
    )
    assert (origin, size) == (cp.origin, 1234)


def test_note_hint_is_log_id_prefix() -> None:
    signer = ECDSASigner("rekor.local", LOG_KEY)
    assert signer.key_id.hex() == _log_id_hex()[:8]


def test_emulation_rejects_wrong_hint() -> None:
    other = ec.derive_private_key(0xBAD, ec.SECP256R1())
    envelope = sign_checkpoint(
        Checkpoint("rekor.local - 1", 1, ROOT), [ECDSASigner("rekor.local", other)]
    ).decode()
    with pytest.raises(SigstoreCheckpointError, match="Signature not found"):
        sigstore_verify_checkpoint(envelope, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex())


def test_emulation_rejects_tampering() -> None:
    envelope = sign_checkpoint(
        Checkpoint("rekor.local - 1", 7, ROOT), [ECDSASigner("rekor.local", LOG_KEY)]
    ).decode()
    with pytest.raises(SigstoreCheckpointError, match="invalid signature"):
        sigstore_verify_checkpoint(
            envelope.replace("\n7\n", "\n8\n"), LOG_KEY.public_key(), _log_id_hex(), ROOT.hex()
        )


@pytest.mark.parametrize("ecdsa_first", [True, False])
def test_extra_ed25519_signature_is_fine_for_sigstore_4(ecdsa_first: bool) -> None:
    # A log that signs with both its ECDSA (Rekor v1) and Ed25519 (C2SP) keys.
    ed = Ed25519Signer("rekor.local", Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
    ecdsa = ECDSASigner("rekor.local", LOG_KEY)
    signers: list[NoteSigner] = [ecdsa, ed] if ecdsa_first else [ed, ecdsa]
    envelope = sign_checkpoint(Checkpoint("rekor.local - 1", 3, ROOT), signers).decode()
    sigstore_verify_checkpoint(envelope, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex())
    with pytest.raises(SigstoreCheckpointError, match="hint"):
        sigstore_verify_checkpoint(
            envelope, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex(), legacy=True
        )


def test_cosigned_checkpoint_keeps_one_blank_line() -> None:
    cp = Checkpoint("rekor.local - 1", 3, ROOT)
    log_only = sign_checkpoint(cp, [ECDSASigner("rekor.local", LOG_KEY)])
    witness = CosignatureV1Signer(
        "w.example", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32), clock=lambda: 9
    )
    extra = Ed25519Signer("x.example", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
    message = Note.parse(log_only).message
    lines = "".join(_sig(signer, message).line() for signer in (witness, extra))
    cosigned = add_signatures(log_only, lines).decode()
    assert cosigned.count("\n\n") == 1
    sigstore_verify_checkpoint(cosigned, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex())
    with pytest.raises(SigstoreCheckpointError, match="hint"):
        sigstore_verify_checkpoint(
            cosigned, LOG_KEY.public_key(), _log_id_hex(), ROOT.hex(), legacy=True
        )


def _sig(signer: NoteSigner, message: bytes) -> NoteSignature:
    return NoteSignature(signer.name, signer.key_id, signer.sign(message))
