"""C2SP tlog checkpoints (``c2sp.org/tlog-checkpoint``): a signed note whose
text is the log's tree head::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 RFC 6962 root hash>\\n
    [<extension line>\\n ...]

Parsing is strict: a checkpoint has exactly one accepted encoding, so
re-encoding a parsed checkpoint gives back the same bytes. Rekor v1's
checkpoints (origin ``<host> - <tree ID>``, an optional ``Timestamp: ...``
extension line, ECDSA signatures) fit this format.

This module is pure: no I/O. Errors are :class:`CheckpointError`, a
:class:`~tlog.note.NoteError`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tlog.note import (
    Note,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    open_note,
    parse_signature_lines,
    sign_note,
)

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "add_signatures",
    "open_checkpoint",
    "sign_checkpoint",
]

MAX_TREE_SIZE = (1 << 63) - 1
"""Largest tree size accepted: sizes are stored as signed 64-bit integers."""

_HASH_SIZE = 32
# ASCII digits only (str.isdigit would accept other scripts), no sign, no
# leading zero unless the value is exactly "0".
_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_CONTROL_CHARS = re.compile("[\x00-\x1f]")  # newline included: fields are single lines


class CheckpointError(NoteError):
    """The note text is not a well-formed checkpoint."""


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise CheckpointError(f"{what} must be str")
    if not value:
        raise CheckpointError(f"{what} is empty")
    if _CONTROL_CHARS.search(value):
        raise CheckpointError(f"{what} contains a newline or control character")


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: origin, tree size, RFC 6962 root hash and
    optional (NOT RECOMMENDED) extension lines, each without its newline."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("checkpoint size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside 0..2^63-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple")
        for line in self.extensions:
            _check_line(line, "checkpoint extension line")

    def to_text(self) -> str:
        """The note text, ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly. Raises :class:`CheckpointError`.

        Requires at least three newline-terminated lines: a non-empty origin;
        a decimal size without sign or leading zeros, below 2^63; a root hash
        of exactly 32 bytes in canonical standard base64; then non-empty
        extension lines.
        """
        if not isinstance(text, str):
            raise CheckpointError("checkpoint text must be str")
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint has {len(lines)} lines, want at least 3")
        origin, size_text, hash_text, *extensions = lines
        _check_line(origin, "checkpoint origin")
        if not _SIZE_RE.fullmatch(size_text):
            raise CheckpointError(
                f"checkpoint size {size_text[:40]!r} is not a decimal without leading zeros"
            )
        # Bound the length before int(): the largest allowed size has 19 digits.
        if len(size_text) > 19 or int(size_text) > MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {size_text[:40]!r} exceeds 2^63-1")
        size = int(size_text)
        root_hash = _decode_root_hash(hash_text)
        for line in extensions:
            _check_line(line, "checkpoint extension line")
        return cls(origin=origin, size=size, root_hash=root_hash, extensions=tuple(extensions))


def _decode_root_hash(value: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise CheckpointError("checkpoint root hash is not valid standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise CheckpointError("checkpoint root hash is not canonical standard base64")
    if len(raw) != _HASH_SIZE:
        raise CheckpointError(f"checkpoint root hash is {len(raw)} bytes, want {_HASH_SIZE}")
    return raw


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``checkpoint`` with every signer and return the signed note bytes.

    The log's own signer should come first and be named after the origin
    (except Rekor v1, whose origin contains spaces and whose signer is named
    after the host).
    """
    return sign_note(checkpoint.to_text(), signers).to_bytes()


def open_checkpoint(
    data: bytes | str, verifiers: Sequence[NoteVerifier]
) -> tuple[Checkpoint, Note, list[NoteSignature]]:
    """Verify a signed checkpoint, then parse its text.

    The text is only interpreted after a known key has verified it, as the
    signed-note spec requires. Returns the checkpoint, the note, and the
    signatures that verified. Raises the errors of :func:`tlog.note.open_note`,
    or :class:`CheckpointError` if the verified text is not a checkpoint.
    """
    note, verified = open_note(data, verifiers)
    return Checkpoint.from_text(note.text), note, verified


def add_signatures(
    note_bytes: bytes | str, extra: bytes | str | Iterable[NoteSignature]
) -> bytes:
    """Append signature lines (e.g. witness cosignatures) to a signed checkpoint.

    ``extra`` is either a block of newline-terminated signature lines (the
    body of a witness's ``add-checkpoint`` response) or ``NoteSignature``
    objects. Lines identical to one already present are dropped. Nothing is
    verified here: callers check the cosignatures against their witness keys.
    Raises :class:`~tlog.note.NoteError` / :class:`CheckpointError`.
    """
    note = Note.parse(note_bytes)
    Checkpoint.from_text(note.text)
    if isinstance(extra, (bytes, str)):
        new: Iterable[NoteSignature] = parse_signature_lines(extra)
    else:
        new = extra
    return note.with_signatures(new).to_bytes()
