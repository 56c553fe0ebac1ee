"""The checkpoint step that a bundle's log entry (:mod:`tlog.verify.logentry`) and
a C2SP tlog-proof file (:mod:`tlog.verify.tlogproof`) share: make a note verifier
from a trusted log key, check the log's signature on the checkpoint note
(c2sp.org/signed-note), and parse the signed text (c2sp.org/tlog-checkpoint).

Each caller reports a failure with its own error type, so
:func:`open_signed_checkpoint` takes the type to raise. The reason texts are the
ones both reports already show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog.checkpoint import Checkpoint
from tlog.note import (
    ECDSAVerifier,
    Ed25519Verifier,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSignature,
    NoteVerifier,
    open_note,
)
from tlog.verify.trust import LogInstance

__all__ = ["describe_signers", "log_note_verifier", "open_signed_checkpoint"]


def log_note_verifier(log: LogInstance, name: str) -> NoteVerifier | None:
    """A verifier for ``log``'s key under the signature line's own ``name``.

    The name comes from the line because an ECDSA key ID does not cover it
    (Rekor v1 signs under its host name), while an Ed25519 key ID does, so a
    wrong name shows up as a key ID mismatch. None for a key type that does
    not sign checkpoints.
    """
    key = log.public_key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Ed25519Verifier(name, key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECDSAVerifier(name, key, hash_algorithm=log.hash_algorithm)
    return None


def describe_signers(signatures: Iterable[NoteSignature]) -> str:
    """``name (key ID), ...``: how the reports list signature lines, so that
    every message names a signer the same way."""
    return ", ".join(f"{s.name} ({s.key_id.hex()})" for s in signatures)


def open_signed_checkpoint(
    note: Note, verifiers: Sequence[NoteVerifier], fail: Callable[[str], Exception]
) -> tuple[Checkpoint, list[NoteSignature]]:
    """Check the signatures on ``note`` from ``verifiers``, then parse its text as a checkpoint.

    Returns the checkpoint and the signatures that verified. The signature
    comes first because an unsigned text is not worth parsing. Raises
    ``fail(reason)``, chained to the note error, if a signature from a known
    key fails, no known key signed, or the signed text is not a checkpoint.
    The caller matches origin, size and root against what it expects.
    """
    try:
        _, signed = open_note(note, verifiers)
    except InvalidSignatureError as exc:
        raise fail(f"the signature by {exc.name} ({exc.key_id.hex()}) does not verify") from exc
    except NoteError as exc:
        raise fail(str(exc)) from exc
    try:
        checkpoint = Checkpoint.from_text(note.text)
    except NoteError as exc:
        raise fail(f"the signed text is not a checkpoint: {exc}") from exc
    return checkpoint, signed
