"""A bundle's transparency log entry: the Merkle inclusion proof, the signed
checkpoint that commits to the proof's root, and the Rekor v1 signed entry
timestamp (SET, the inclusion promise)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import rfc8785

from tlog.checkpoint import Checkpoint
from tlog.merkle import ProofError, RootMismatchError, hash_leaf, verify_inclusion
from tlog.note import Ed25519Verifier, Note, NoteError
from tlog.verify.bundle import InclusionProof, LogEntry
from tlog.verify.checkpoint_step import (
    describe_signers,
    log_note_verifier,
    open_signed_checkpoint,
)
from tlog.verify.signatures import signature_ok
from tlog.verify.trust import LogInstance

__all__ = ["EntryError", "VerifiedCheckpoint", "set_payload", "verify_entry_checkpoint", "verify_entry_inclusion", "verify_set"]


class EntryError(ValueError):
    """The log entry fails a check."""


def verify_entry_inclusion(entry: LogEntry, proof: InclusionProof) -> bytes:
    """Check the proof from the entry body's leaf hash to ``proof.root_hash``.

    The index is the proof's own ``logIndex`` (the index in this shard's
    tree), which differs from the entry's global ``logIndex`` in sharded logs.
    Returns the leaf hash.
    """
    leaf = hash_leaf(entry.body)
    try:
        verify_inclusion(proof.log_index, proof.tree_size, leaf, list(proof.hashes), proof.root_hash)
    except RootMismatchError as exc:
        raise EntryError(f"the proof leads to root {exc.calculated.hex()[:16]}…, not the stated {exc.expected.hex()[:16]}…") from exc
    except ProofError as exc:
        raise EntryError(str(exc)) from exc
    return leaf


@dataclass(frozen=True)
class VerifiedCheckpoint:
    note: Note
    checkpoint: Checkpoint
    signer: str
    key_hint: bytes


def verify_entry_checkpoint(envelope: str, log: LogInstance, log_id: bytes, proof: InclusionProof) -> VerifiedCheckpoint:
    """Verify the checkpoint of a bundle's inclusion proof, as Sigstore clients do.

    The log's signature is the first line whose 4-byte key hint is
    ``logId[:4]`` (SHA-256(SPKI)[:4] for Rekor v1; the C2SP note key ID for
    Rekor v2, which also binds the line's key name). It must verify with the
    trusted log key, and the checkpoint must state the proof's tree size and
    root hash.
    """
    try:
        note = Note.parse(envelope)
    except NoteError as exc:
        raise EntryError(f"malformed checkpoint: {exc}") from exc
    hint = log_id[:4]
    lines = [s for s in note.signatures if s.key_id == hint]
    if not lines:
        raise EntryError(f"no signature with the log's key hint {hint.hex()} (signed by {describe_signers(note.signatures)})")
    line = lines[0]
    verifier = log_note_verifier(log, line.name)
    if verifier is None:
        raise EntryError(f"checkpoints signed with a {type(log.public_key).__name__} log key are not supported")
    if verifier.key_id != hint:
        raise EntryError(
            f"the line signed {line.name} ({hint.hex()}) does not match the trusted log key, "
            f"whose key ID under that name is {verifier.key_id.hex()}"
        )
    if isinstance(verifier, Ed25519Verifier) and log.log_id != log.spki_hash:
        # A Rekor v2 log ID is the whole C2SP key ID hash, so it pins the name too.
        raw = verifier.vkey_material[1:]
        if hashlib.sha256(line.name.encode() + b"\n\x01" + raw).digest() != log.log_id:
            raise EntryError(f"the signer name {line.name} and the log key do not hash to the trusted log ID")
    checkpoint, _ = open_signed_checkpoint(Note(text=note.text, signatures=(line,)), [verifier], EntryError)
    if checkpoint.root_hash != proof.root_hash:
        raise EntryError(
            f"the checkpoint's root {checkpoint.root_hash.hex()[:16]}… differs from the proof's {proof.root_hash.hex()[:16]}…"
        )
    if checkpoint.size != proof.tree_size:
        raise EntryError(f"the checkpoint is for tree size {checkpoint.size}, the proof for {proof.tree_size}")
    return VerifiedCheckpoint(note=note, checkpoint=checkpoint, signer=line.name, key_hint=hint)


def set_payload(entry: LogEntry) -> bytes:
    """The bytes a Rekor v1 SET signs: RFC 8785 JSON of body, integratedTime, logID, logIndex."""
    if entry.integrated_time is None:
        raise EntryError("the entry has no integratedTime")
    return rfc8785.dumps(
        {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )


def verify_set(entry: LogEntry, log: LogInstance) -> None:
    """Check the inclusion promise with the trusted log key."""
    assert entry.signed_entry_timestamp is not None
    if not signature_ok(log.public_key, entry.signed_entry_timestamp, set_payload(entry), log.hash_algorithm):
        raise EntryError("signature does not verify")
