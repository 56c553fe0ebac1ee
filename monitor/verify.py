"""Pure checks on what a log serves: no I/O, no clock, no state writes.

* :func:`open_checkpoint` - a signed checkpoint (``c2sp.org/tlog-checkpoint``)
  verified with the log's pinned keys, or :class:`BadSignature`.
* :func:`check_consistency` - a new checkpoint against the last verified one
  and the log's consistency proof (RFC 9162 §2.1.4), or :class:`Inconsistent`
  carrying both signed checkpoints as evidence.
* :func:`check_entries_root` - the root recomputed from the entries against the
  checkpoint.

Keys are pinned in two forms (:class:`Pins`): C2SP vkeys, which name the key
(``<name>+<key ID>+<key>``), and bare ECDSA SubjectPublicKeyInfos, as a
sigstore trust config or Rekor's ``/api/v1/log/publicKey`` give them. A bare
key verifies the signature lines whose key ID is SHA-256(SPKI)[:4] (the
``0x02`` rule of ``c2sp.org/signed-note``) whatever their key name, because a
Rekor v1 log signs under its host name, not under its origin. Once a bare key
has verified a checkpoint, :attr:`VerifiedCheckpoint.vkeys` names it, and the
monitor pins that vkey from then on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tlog.checkpoint import Checkpoint, CheckpointError
from tlog.merkle import EMPTY_ROOT, ProofError, verify_consistency
from tlog.note import (
    ECDSAVerifier,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteVerifier,
    UnverifiedNoteError,
    VKeyVerifier,
    ecdsa_key_id,
    open_note,
    verifier_from_vkey,
    vkey,
)

__all__ = [
    "BadSignature",
    "Inconsistent",
    "Pins",
    "VerificationFailure",
    "VerifiedCheckpoint",
    "check_consistency",
    "check_empty",
    "check_entries_root",
    "claimed_origin",
    "open_checkpoint",
    "pins_from_trust_config",
]


class VerificationFailure(Exception):
    """The log served something that does not verify; ``alert_type`` names the alert.

    ``evidence`` is JSON-serialisable and self-contained: for a checkpoint
    it holds the signed note(s), so that a third party can re-check the claim.
    """

    alert_type = "verification_failed"

    def __init__(self, message: str, *, evidence: Mapping[str, Any] | None = None, log_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, Any] = dict(evidence or {})
        self.log_index = log_index


class BadSignature(VerificationFailure):
    """The checkpoint is not signed by a pinned key (or a pinned key's signature fails)."""

    alert_type = "bad_signature"


class Inconsistent(VerificationFailure):
    """Two signed checkpoints (or a checkpoint and the entries) cannot both be true."""

    alert_type = "inconsistent"


@dataclass(frozen=True)
class Pins:
    """The keys a log's checkpoints must be signed by (any one of them suffices).

    ``vkeys``: C2SP verifier keys. ``spkis``: DER SubjectPublicKeyInfos of
    ECDSA keys whose signature lines are matched by key ID alone.
    """

    vkeys: tuple[str, ...] = ()
    spkis: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for value in self.vkeys:
            verifier_from_vkey(value)  # NoteError early, not at the first checkpoint
        for spki in self.spkis:
            _ecdsa_key(spki)

    def __bool__(self) -> bool:
        return bool(self.vkeys or self.spkis)

    def __or__(self, other: Pins) -> Pins:
        return Pins(
            vkeys=tuple(dict.fromkeys(self.vkeys + other.vkeys)),
            spkis=tuple(dict.fromkeys(self.spkis + other.spkis)),
        )

    def verifiers(self, note: Note) -> list[NoteVerifier]:
        """Note verifiers for ``note``: every vkey, plus each bare key under the
        names its key ID appears with in the note. Duplicates are dropped."""
        found: dict[tuple[str, bytes], NoteVerifier] = {}
        for value in self.vkeys:
            v = verifier_from_vkey(value)
            found.setdefault((v.name, bytes(v.key_id)), v)
        for spki in self.spkis:
            key = _ecdsa_key(spki)
            key_id = ecdsa_key_id(spki)
            for sig in note.signatures:
                if sig.key_id == key_id and (sig.name, key_id) not in found:
                    found[(sig.name, key_id)] = ECDSAVerifier(sig.name, key)
        return list(found.values())


def _ecdsa_key(spki: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"pinned key is not a DER SubjectPublicKeyInfo: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"pinned key is a {type(key).__name__}, not an ECDSA key")
    return key


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose signature verified, with the note it came in."""

    checkpoint: Checkpoint
    note: str
    vkeys: tuple[str, ...] = field(default=())

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.root_hash


def claimed_origin(raw: bytes | str) -> str:
    """The first line of an *unverified* checkpoint: only to look up its pins.

    Raises :class:`BadSignature` if ``raw`` is not a signed note at all.
    """
    try:
        note = Note.parse(raw)
    except NoteError as exc:
        raise BadSignature(f"the checkpoint is not a signed note: {exc}", evidence={"checkpoint": _text(raw)}) from None
    return note.text.split("\n", 1)[0]


def open_checkpoint(raw: bytes | str, pins: Pins) -> VerifiedCheckpoint:
    """Verify ``raw`` with ``pins`` and parse it as a checkpoint.

    Raises :class:`BadSignature` if it is not a signed note, no pinned key
    signed it, a pinned key's signature fails, or the signed text is not a
    checkpoint. ``ValueError`` if ``pins`` is empty.
    """
    if not pins:
        raise ValueError("no keys pinned for the log")
    text = _text(raw)
    evidence: dict[str, Any] = {"checkpoint": text, "pinned": list(pins.vkeys) + [_spki_b64(s) for s in pins.spkis]}
    try:
        note = Note.parse(raw)
        verifiers = pins.verifiers(note)
        if not verifiers:
            raise UnverifiedNoteError(
                f"note has no signature from a pinned key (signed by {sorted({s.name for s in note.signatures})})"
            )
        note, verified = open_note(note, verifiers)
        checkpoint = Checkpoint.from_text(note.text)
    except InvalidSignatureError as exc:
        raise BadSignature(f"checkpoint signature from a pinned key fails: {exc}", evidence=evidence) from None
    except UnverifiedNoteError as exc:
        raise BadSignature(f"checkpoint is not signed by a pinned key: {exc}", evidence=evidence) from None
    except CheckpointError as exc:
        raise BadSignature(f"signed note is not a checkpoint: {exc}", evidence=evidence) from None
    except NoteError as exc:
        raise BadSignature(f"checkpoint is not a well-formed signed note: {exc}", evidence=evidence) from None
    by_ident = {(v.name, bytes(v.key_id)): v for v in verifiers}
    used = []
    for sig in verified:
        v = by_ident[(sig.name, sig.key_id)]
        if hasattr(v, "vkey_material"):
            used.append(vkey(v))  # type: ignore[arg-type]
    return VerifiedCheckpoint(checkpoint, text, tuple(used))


def check_empty(new: VerifiedCheckpoint) -> None:
    """A size-0 checkpoint must carry SHA-256("") as its root (RFC 6962 §2.1)."""
    if new.size == 0 and new.root_hash != EMPTY_ROOT:
        raise Inconsistent(
            "the log signed an empty tree with a root other than SHA-256('')",
            evidence={"check": "empty_root", "new_checkpoint": new.note},
        )


def check_consistency(
    *, old_size: int, old_root: bytes, old_checkpoint: str, new: VerifiedCheckpoint, proof: Sequence[bytes]
) -> None:
    """Check that the verified tree (``old_*``) is a prefix of ``new``.

    Raises :class:`Inconsistent`, with both signed checkpoints and the proof
    as evidence, if ``new`` is smaller (a rollback), has the same size and
    another root, or the consistency proof does not verify.
    """
    evidence: dict[str, Any] = {
        "old_checkpoint": old_checkpoint,
        "new_checkpoint": new.note,
        "old_size": old_size,
        "new_size": new.size,
    }
    if new.size < old_size:
        raise Inconsistent(
            f"the log rolled back from size {old_size} to {new.size}", evidence={"check": "rollback", **evidence}
        )
    if new.size == old_size:
        if new.root_hash != old_root:
            raise Inconsistent(
                f"the log signed two different roots for size {old_size}",
                evidence={"check": "same_size_different_root", **evidence},
            )
        return
    if old_size == 0:
        return  # every tree extends the empty one
    try:
        verify_consistency(size1=old_size, size2=new.size, proof=proof, root1=old_root, root2=new.root_hash)
    except ProofError as exc:
        raise Inconsistent(
            f"consistency proof from size {old_size} to {new.size} does not verify: {exc}",
            evidence={"check": "consistency_proof", "proof": [h.hex() for h in proof], **evidence},
        ) from None


def check_entries_root(
    new: VerifiedCheckpoint, computed_root: bytes, *, begin: int, bad_index: int | None = None
) -> None:
    """The root rebuilt from the entries must be the checkpoint's root.

    ``begin`` is where this pass started reading entries; ``bad_index`` the
    first entry found not to match the log's own level-0 tile, if known.
    """
    if computed_root != new.root_hash:
        raise Inconsistent(
            f"the entries {begin}..{new.size - 1} do not hash to the root of the signed checkpoint"
            + (f" (entry {bad_index} differs from the log's leaf hash)" if bad_index is not None else ""),
            evidence={
                "check": "entries",
                "new_checkpoint": new.note,
                "computed_root": computed_root.hex(),
                "begin": begin,
            },
            log_index=bad_index,
        )


def pins_from_trust_config(doc: Mapping[str, Any]) -> dict[str, Pins]:
    """The transparency-log keys of a sigstore ClientTrustConfig or TrustedRoot,
    by ``baseUrl`` (without a trailing slash).

    Each ``tlogs[].publicKey.rawBytes`` is a base64 DER SubjectPublicKeyInfo.
    Raises ``ValueError`` if the document has no usable tlog key.
    """
    root = doc.get("trustedRoot", doc)
    tlogs = root.get("tlogs") if isinstance(root, Mapping) else None
    if not isinstance(tlogs, list) or not tlogs:
        raise ValueError("trust config has no tlogs")
    out: dict[str, Pins] = {}
    for i, tlog in enumerate(tlogs):
        try:
            url = str(tlog["baseUrl"]).rstrip("/")
            spki = base64.b64decode(tlog["publicKey"]["rawBytes"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"trust config tlogs[{i}] has no baseUrl or publicKey.rawBytes: {exc}") from None
        out[url] = out.get(url, Pins()) | Pins(spkis=(spki,))
    return out


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def _spki_b64(spki: bytes) -> str:
    return "spki:" + base64.b64encode(spki).decode()


def verifiers_from_vkeys(values: Iterable[str]) -> list[VKeyVerifier]:
    """Parse vkeys (``NoteError`` on a malformed one)."""
    return [verifier_from_vkey(v) for v in values]
