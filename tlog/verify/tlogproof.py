"""C2SP transparency log proofs (``c2sp.org/tlog-proof``): an entry's index
and Merkle inclusion proof plus the (cosigned) checkpoint they lead to::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <N>
    <base64 hash>            (zero or more, leaf's sibling first)

    <checkpoint, verbatim, with its signatures and cosignatures>

Verification (per the spec): compute the leaf hash, check the log's
signature on the checkpoint, apply the witness policy, check inclusion.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tlog.checkpoint import Checkpoint
from tlog.merkle import HASH_SIZE, ProofError, RootMismatchError, verify_inclusion
from tlog.note import Note, NoteError, NoteVerifier
from tlog.verify.checkpoint_step import (
    describe_signers,
    log_note_verifier,
    open_signed_checkpoint,
)
from tlog.verify.policy import Policy, require_quorum
from tlog.verify.report import Report, StepFailed
from tlog.verify.trust import TrustRoot

__all__ = ["MAGIC", "TlogProof", "format_tlog_proof", "is_tlog_proof", "parse_tlog_proof", "verify_tlog_proof"]

MAGIC = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})")


class TlogProofError(ValueError):
    """The proof file is malformed."""


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None


def is_tlog_proof(data: bytes) -> bool:
    return data.startswith(MAGIC.encode() + b"\n")


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise TlogProofError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise TlogProofError(f"{what} is not canonical base64")
    return raw


def parse_tlog_proof(data: bytes | str) -> TlogProof:
    """Parse a proof file strictly. Raises :class:`TlogProofError`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise TlogProofError("the proof is not UTF-8") from exc
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise TlogProofError("no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != MAGIC:
        raise TlogProofError(f"the first line is not {MAGIC}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _b64(rest[0][len("extra ") :], "the extra line")
        rest = rest[1:]
    if not rest:
        raise TlogProofError("no index line")
    match = _INDEX.fullmatch(rest[0])
    if not match:
        raise TlogProofError(f"{rest[0][:40]!r} is not 'index <N>' (decimal, no leading zeros)")
    hashes = []
    for i, line in enumerate(rest[1:]):
        raw = _b64(line, f"proof hash {i}")
        if len(raw) != HASH_SIZE:
            raise TlogProofError(f"proof hash {i} is {len(raw)} bytes, want {HASH_SIZE}")
        hashes.append(raw)
    if len(hashes) > 64:
        raise TlogProofError(f"{len(hashes)} proof hashes; a tree of at most 2^64 leaves needs at most 64")
    return TlogProof(index=int(match.group(1)), hashes=tuple(hashes), checkpoint=checkpoint, extra=extra)


def format_tlog_proof(index: int, hashes: Sequence[bytes], checkpoint: bytes | str, extra: bytes | None = None) -> bytes:
    """Encode a proof file (the inverse of :func:`parse_tlog_proof`)."""
    note = checkpoint.decode("utf-8") if isinstance(checkpoint, bytes) else checkpoint
    lines = [MAGIC]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode())
    lines.append(f"index {index}")
    lines += [base64.b64encode(h).decode() for h in hashes]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def _trust_verifiers(note: Note, trust: TrustRoot | None) -> list[NoteVerifier]:
    """Note verifiers for the trust config's log keys, named after the lines
    that claim them: ECDSA key IDs do not cover the name (Rekor v1 signs under
    its host name), Ed25519 ones do."""
    out: list[NoteVerifier] = []
    if trust is None:
        return out
    for log in trust.tlogs:
        for sig in note.signatures:
            verifier = log_note_verifier(log, sig.name)
            if verifier is not None and verifier.key_id == sig.key_id:
                out.append(verifier)
    return out


def verify_tlog_proof(
    data: bytes | str,
    *,
    leaf_hash: bytes | None,
    leaf_source: str,
    trust: TrustRoot | None,
    policy: Policy | None,
    subject: str = "proof",
) -> Report:
    """Verify a proof file; never raises for a bad proof, the report says why."""
    report = Report(kind="tlog-proof", subject=subject)
    proof: TlogProof | None = None
    with report.step("proof", "proof file") as out:
        proof = parse_tlog_proof(data)
        extra = f", {len(proof.extra)} bytes of (unauthenticated) extra data" if proof.extra is not None else ""
        out.ok(f"is {MAGIC}: index {proof.index}, {len(proof.hashes)} proof hashes{extra}", index=proof.index)
    if proof is None:
        for name, title in (("leaf", "leaf hash"), ("checkpoint", "checkpoint"), ("witnesses", "witness cosignatures"), ("inclusion", "inclusion proof")):
            report.skip(name, title, "not checked: the proof could not be read")
        return report

    if leaf_hash is None:
        report.skip("leaf", "leaf hash", "not given")
    else:
        with report.step("leaf", "leaf hash") as out:
            if len(leaf_hash) != HASH_SIZE:
                raise StepFailed(f"is {len(leaf_hash)} bytes, want {HASH_SIZE}")
            out.ok(f"is {leaf_hash.hex()} ({leaf_source})")

    note: Note | None = None
    checkpoint: Checkpoint | None = None
    with report.step("checkpoint", "checkpoint") as out:
        try:
            note = Note.parse(proof.checkpoint)
        except NoteError as exc:
            raise StepFailed(f"malformed: {exc}") from exc
        verifiers: dict[tuple[str, bytes], NoteVerifier] = {}
        for v in [*(policy.logs if policy else ()), *_trust_verifiers(note, trust)]:
            verifiers.setdefault((v.name, bytes(v.key_id)), v)
        if not verifiers:
            raise StepFailed(f"not signed by a trusted log key (signed by {describe_signers(note.signatures)})")
        checkpoint, signed = open_signed_checkpoint(note, list(verifiers.values()), StepFailed)
        out.ok(f"signed by {describe_signers(signed)}: origin {checkpoint.origin}, tree size {checkpoint.size}", origin=checkpoint.origin, treeSize=checkpoint.size)

    if policy is None:
        report.skip("witnesses", "witness cosignatures", "not checked: no --policy given")
    elif note is None:
        report.skip("witnesses", "witness cosignatures", "not checked: the checkpoint could not be read")
    else:
        with report.step("witnesses", "witness cosignatures") as out:
            try:
                out.ok(require_quorum(note, policy))
            except ValueError as exc:
                raise StepFailed(str(exc)) from exc

    if checkpoint is None:
        report.skip("inclusion", "inclusion proof", "not checked: no verified checkpoint")
    elif leaf_hash is None or len(leaf_hash) != HASH_SIZE:
        report.skip("inclusion", "inclusion proof", "not checked: no leaf hash")
    else:
        with report.step("inclusion", "inclusion proof") as out:
            try:
                verify_inclusion(proof.index, checkpoint.size, leaf_hash, list(proof.hashes), checkpoint.root_hash)
            except RootMismatchError as exc:
                raise StepFailed(f"leads to root {exc.calculated.hex()[:16]}…, not the checkpoint's {exc.expected.hex()[:16]}…") from exc
            except ProofError as exc:
                raise StepFailed(str(exc)) from exc
            out.ok(f"verifies leaf {proof.index} in tree size {checkpoint.size}")
    report.facts.update(index=proof.index, treeSize=checkpoint.size if checkpoint else None)
    return report
