"""A C2SP transparency-log witness (``c2sp.org/tlog-witness``), cosigning with
``cosignature/v1`` (``c2sp.org/tlog-cosignature``). The client side, which
logs use to collect cosignatures, is :mod:`tlog.witnessing`.

Read top to bottom:

1. :class:`WitnessKey` - the witness's Ed25519 key and name, kept in the state
   directory (``witness-ed25519.pem``, mode 0600, and ``witness.json``) so that
   its vkey never changes across restarts.
2. :class:`WitnessConfig` - which logs (origins) the witness accepts and the
   note verifiers (C2SP vkeys) of each.
3. :class:`WitnessState` - the latest cosigned checkpoint per origin, in its own
   SQLite file ``witness.db``. Every check-and-update runs in one
   ``BEGIN IMMEDIATE`` transaction, so concurrent requests (threads *or*
   processes) can never roll the stored size back, and it is committed before
   any cosignature leaves the process.
4. :func:`process_add_checkpoint` - the whole ``add-checkpoint`` algorithm. It
   raises a typed :class:`WitnessError` per spec status code and returns the
   cosignature line on success.
5. :func:`witness_blueprint` - Flask routes: ``POST /add-checkpoint`` and
   ``GET /<sha256(origin) hex>/checkpoint``. Thin: read, call, map errors.

Status codes follow the order of the rules in tlog-witness (C2SP 5ba5ee8):

====  =====================================================================
404   the checkpoint's origin is not a configured log
403   no signature from a trusted key for that origin, or a signature line
      whose (name, key ID) is trusted fails to verify
400   ``old`` > checkpoint size; any malformed body
409   ``old`` != size of the latest checkpoint cosigned for the origin (0 if
      none); body ``<size>\\n``, ``Content-Type: text/x.tlog.size``
422   size-0 checkpoint whose root is not SHA-256(""); non-empty proof with
      ``old`` 0; a consistency proof that does not verify; ``old`` == size
      with a different root
200   one ``— <name> <base64>\\n`` cosignature line (non-zero timestamp)
====  =====================================================================

Parsing happens before any of these rules (the origin has to be read before
it can be looked up), so a body that is not ``old <N>\\n``, up to 63 canonical
base64 32-byte hashes, a blank line and a well-formed signed checkpoint note
gets 400 whatever else is wrong with it. (The checkpoint text is parsed for
syntax up front, but its size and root are only acted on after a trusted log
signature verified it.) A body larger than :data:`MAX_BODY_SIZE` gets
**413** (the spec sets no size limit; 413 tells the client precisely what is
wrong, where 400 would make it look for a syntax error).

Only Ed25519 ``cosignature/v1`` is produced: the spec's SHOULD for ML-DSA-44
needs a primitive ``cryptography`` does not offer yet.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Blueprint, Response, request

from tlog.checkpoint import Checkpoint, CheckpointError
from tlog.errors import TlogError
from tlog.keys import load_or_create_ed25519
from tlog.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from tlog.note import (
    CosignatureV1Signer,
    CosignatureV1Verifier,
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSignature,
    NoteVerifier,
    UnverifiedNoteError,
    open_note,
    verifier_from_vkey,
)
from tlog.note import vkey as _format_vkey

__all__ = [
    "CONTENT_TYPE_SIZE",
    "KEY_FILE",
    "MAX_BODY_SIZE",
    "MAX_PROOF_LINES",
    "NAME_FILE",
    "STATE_FILE",
    "AddCheckpointRequest",
    "BadProof",
    "BadRequest",
    "BadSignature",
    "Conflict",
    "Evidence",
    "RequestTooLarge",
    "StoredCheckpoint",
    "UnknownLog",
    "WitnessConfig",
    "WitnessError",
    "WitnessKey",
    "WitnessKeyError",
    "WitnessState",
    "load_or_create_key",
    "origin_hash",
    "parse_add_checkpoint",
    "process_add_checkpoint",
    "vkey",
    "witness_blueprint",
]

log = logging.getLogger(__name__)

KEY_FILE = "witness-ed25519.pem"
NAME_FILE = "witness.json"
STATE_FILE = "witness.db"

MAX_BODY_SIZE = 64 * 1024
"""Largest add-checkpoint body accepted (bytes); larger ones get 413."""

MAX_PROOF_LINES = 63
"""The spec's cap on consistency proof lines (a proof in a 2^63 tree)."""

MAX_EVIDENCE_PER_ORIGIN = 100
"""Refused-but-log-signed requests kept per origin as evidence (oldest kept)."""

CONTENT_TYPE_SIZE = "text/x.tlog.size"
_CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"

_MAX_SIZE = (1 << 63) - 1
# ASCII decimal, no sign, no leading zero unless exactly "0", at most 19 digits
# (2^63 - 1 has 19); the value is range-checked after int().
_DECIMAL = re.compile(rb"(?:0|[1-9][0-9]{0,18})")
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")
_B64_HASH_LEN = 44  # len(base64(32 bytes))


# ---------------------------------------------------------------------------
# Errors: one class per status code of the spec.


class WitnessError(TlogError):
    """An add-checkpoint request the witness refuses; ``http_status`` is the answer."""


class UnknownLog(WitnessError):
    """The checkpoint's origin is not a log this witness is configured for (404)."""

    http_status = 404
    category = "unknown_log"


class BadSignature(WitnessError):
    """No trusted signature on the checkpoint, or a trusted key's signature fails (403)."""

    http_status = 403
    category = "bad_signature"


class BadRequest(WitnessError):
    """A malformed body, or ``old`` larger than the checkpoint size (400)."""

    http_status = 400
    category = "bad_request"


class RequestTooLarge(WitnessError):
    """The body exceeds :data:`MAX_BODY_SIZE` (413)."""

    http_status = 413
    category = "too_large"


class Conflict(WitnessError):
    """``old`` is not the size this witness last cosigned (409).

    ``size`` is that size (0 if the witness never cosigned the log); the HTTP
    answer is ``<size>\\n`` with ``Content-Type: text/x.tlog.size``.
    """

    http_status = 409
    category = "conflict"

    def __init__(self, size: int, message: str = "") -> None:
        super().__init__(message or f"the witness's latest cosigned size is {size}")
        self.size = size


class BadProof(WitnessError):
    """The checkpoint is not consistent with what the witness cosigned (422)."""

    http_status = 422
    category = "bad_proof"


class WitnessKeyError(TlogError):
    """The witness key or name files are unusable or disagree with the request."""


# ---------------------------------------------------------------------------
# 1. The witness key and name.


def _default_name() -> str:
    """``witness.<hostname>``, lowercased, with anything a key name may not
    contain (whitespace, '+', control characters) replaced by '-'."""
    host = socket.gethostname().strip().lower() or "localhost"
    host = re.sub(r"[\s+\x00-\x1f\x7f]", "-", host)
    return f"witness.{host}"


@dataclass(frozen=True)
class WitnessKey:
    """The witness's cosigning identity: a name and an Ed25519 key."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        # Constructing the verifier validates the name (non-empty, no '+', no spaces).
        try:
            CosignatureV1Verifier(self.name, self.private_key.public_key())
        except NoteError as exc:
            raise WitnessKeyError(f"witness name {self.name!r} is not a valid key name: {exc}") from None

    def signer(self, clock: Callable[[], float] = time.time) -> CosignatureV1Signer:
        """A cosignature/v1 signer reading ``clock`` once per signature."""
        return CosignatureV1Signer(self.name, self.private_key, clock=clock)

    def verifier(self) -> CosignatureV1Verifier:
        """The verifier clients configure for this witness."""
        return CosignatureV1Verifier(self.name, self.private_key.public_key())

    @property
    def key_id(self) -> bytes:
        return self.verifier().key_id

    @property
    def vkey(self) -> str:
        """``<name>+<hex8 key ID>+base64(0x04 || pk)``."""
        return _format_vkey(self.verifier())


def vkey(key: WitnessKey) -> str:
    """The witness's C2SP verifier key: ``<name>+<hex8 key ID>+base64(0x04 || pk)``."""
    return key.vkey


def load_or_create_key(state_dir: Path | str, name: str | None = None) -> WitnessKey:
    """Load the witness identity from ``state_dir``, creating it on first use.

    The key is ``<state_dir>/witness-ed25519.pem`` (PKCS#8 PEM, mode 0600;
    a file others can read is refused). The name is stored in
    ``<state_dir>/witness.json`` the first time, from ``name`` or else
    ``witness.<hostname>``, so the vkey stays the same when the host is
    renamed. Asking for a different ``name`` later raises
    :class:`WitnessKeyError`: the key ID covers the name, so renaming would
    silently change the vkey every log and client has pinned.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    private_key = load_or_create_ed25519(state_dir / KEY_FILE)
    stored = _read_name(state_dir / NAME_FILE)
    if stored is None:
        wanted = name if name is not None else _default_name()
        WitnessKey(wanted, private_key)  # validate before persisting
        stored = _write_name(state_dir / NAME_FILE, wanted)
    if name is not None and name != stored:
        raise WitnessKeyError(
            f"witness name {name!r} differs from {stored!r} stored in {state_dir / NAME_FILE}; "
            "the name is part of the vkey, so delete that file only if you mean to change it"
        )
    return WitnessKey(stored, private_key)


def _read_name(path: Path) -> str | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        name = json.loads(raw)["name"]
    except (ValueError, KeyError, TypeError):
        raise WitnessKeyError(f"{path} is not JSON of the form {{\"name\": ...}}") from None
    if not isinstance(name, str):
        raise WitnessKeyError(f"{path}: name must be a string")
    return name


def _write_name(path: Path, name: str) -> str:
    """Create ``path`` atomically; if another process won the race, use its name."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps({"name": name}, indent=2).encode("utf-8") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if the file appeared meanwhile, unlike rename()
    except FileExistsError:
        stored = _read_name(path)
        assert stored is not None
        return stored
    finally:
        tmp.unlink()
    return name


# ---------------------------------------------------------------------------
# 2. Which logs the witness accepts.


class WitnessConfig:
    """The logs this witness cosigns: origin -> the note verifiers trusted for it.

    Safe to extend while requests are being served (the daemon adds logs as
    it pins them): lookups see either the old or the new mapping.
    """

    def __init__(self, logs: Mapping[str, Sequence[NoteVerifier]] | None = None) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, tuple[NoteVerifier, ...]] = {}
        for origin, verifiers in (logs or {}).items():
            self.add_log(origin, verifiers)

    @classmethod
    def from_vkeys(cls, vkeys: Iterable[str]) -> WitnessConfig:
        """One log per key name: ``<origin>+<key ID>+<key>`` (the C2SP convention
        that a log's key name equals its origin). Keys sharing a name are
        several keys of one log. Raises :class:`~tlog.note.NoteError`."""
        config = cls()
        for value in vkeys:
            verifier = verifier_from_vkey(value)
            config.add_log(verifier.name, [verifier])
        return config

    @classmethod
    def from_pinned(cls, pinned: Mapping[str, Iterable[str | NoteVerifier]]) -> WitnessConfig:
        """From the monitor's pinned state: origin -> vkeys (or verifiers).

        For logs whose origin is not their key name, such as Rekor v1
        (origin ``rekor.sigstore.dev - <tree ID>``, ECDSA key named
        ``rekor.sigstore.dev``).
        """
        config = cls()
        for origin, keys in pinned.items():
            config.add_log(origin, keys)
        return config

    def add_log(self, origin: str, keys: Iterable[str | NoteVerifier]) -> WitnessConfig:
        """Trust ``keys`` (vkey strings or verifiers) for ``origin``, in
        addition to any already configured. Returns ``self``.

        ``ValueError`` for an empty origin or one containing a newline, no
        keys, or two different keys with the same (name, key ID) (an
        accidental key ID collision that would make verification ambiguous);
        :class:`~tlog.note.NoteError` for a malformed vkey.
        """
        if not isinstance(origin, str) or not origin or "\n" in origin:
            raise ValueError(f"log origin {origin!r} must be a non-empty single line")
        new = [verifier_from_vkey(k) if isinstance(k, str) else k for k in keys]
        if not new:
            raise ValueError(f"log {origin!r} needs at least one key")
        with self._lock:
            merged = list(self._logs.get(origin, ()))
            for verifier in new:
                ident = (verifier.name, bytes(verifier.key_id))
                same = [v for v in merged if (v.name, bytes(v.key_id)) == ident]
                if not same:
                    merged.append(verifier)
                elif not _same_key(same[0], verifier):
                    raise ValueError(
                        f"log {origin!r}: two different keys named {ident[0]!r} share key ID {ident[1].hex()}"
                    )
            logs = dict(self._logs)
            logs[origin] = tuple(merged)
            self._logs = logs
        return self

    def verifiers_for(self, origin: str) -> tuple[NoteVerifier, ...]:
        """The verifiers trusted for ``origin``; empty if the log is unknown."""
        return self._logs.get(origin, ())

    @property
    def origins(self) -> list[str]:
        return sorted(self._logs)

    def __contains__(self, origin: object) -> bool:
        return origin in self._logs


def _same_key(a: NoteVerifier, b: NoteVerifier) -> bool:
    material_a = getattr(a, "vkey_material", None)
    material_b = getattr(b, "vkey_material", None)
    if material_a is None or material_b is None:
        return a is b
    return bool(material_a == material_b)


# ---------------------------------------------------------------------------
# 3. Durable state.


@dataclass(frozen=True)
class StoredCheckpoint:
    """The latest checkpoint cosigned for a log.

    ``note`` is the signed note as served by ``GET .../checkpoint``: the
    re-encoded checkpoint text, the log signatures the witness verified, and
    the witness's cosignature. ``cosigned_at`` is the cosignature timestamp.
    """

    origin: str
    size: int
    root_hash: bytes
    note: bytes
    cosigned_at: int


@dataclass(frozen=True)
class Evidence:
    """A request refused with 422 although the log had signed it: a checkpoint
    inconsistent with what this witness cosigned. Kept as possible proof of
    log misbehaviour (the spec's MAY)."""

    origin: str
    received_at: int
    reason: str
    request: bytes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    origin       TEXT PRIMARY KEY,
    origin_hash  TEXT NOT NULL UNIQUE,   -- lowercase hex SHA-256(origin), for GET
    size         INTEGER NOT NULL CHECK (size >= 0),
    root_hash    BLOB NOT NULL CHECK (length(root_hash) = 32),
    note         BLOB NOT NULL,          -- checkpoint + verified log sigs + our cosignature
    cosigned_at  INTEGER NOT NULL        -- cosignature timestamp, POSIX seconds
) STRICT;

-- Belt and braces: whatever the code above does, the stored size never shrinks.
CREATE TRIGGER IF NOT EXISTS checkpoint_no_rollback
BEFORE UPDATE OF size ON checkpoint
WHEN NEW.size < OLD.size
BEGIN
    SELECT RAISE(ABORT, 'witness state would roll back');
END;

CREATE TABLE IF NOT EXISTS evidence (
    id           INTEGER PRIMARY KEY,
    origin       TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    request      BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS evidence_origin ON evidence (origin);
"""


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin: the monitoring path component."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


class WitnessState:
    """The witness's SQLite database (``<state-dir>/witness.db``).

    WAL journal, ``synchronous=FULL``: a commit is on disk when it returns.
    Each operation opens its own connection, so one instance may be shared
    by any number of threads, and several processes may open the same file.
    """

    def __init__(self, path: Path | str, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout = busy_timeout
        # Serialises this process's writers before they reach SQLite's lock,
        # which would otherwise make them spin in its busy handler. Correctness
        # does not depend on it: BEGIN IMMEDIATE is what excludes other processes.
        self._write_lock = threading.Lock()
        # Test seam: called inside the write transaction after the checks and
        # before the update, to widen the race window the transaction closes.
        self._testing_before_update: Callable[[], None] | None = None
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @classmethod
    def open(cls, state_dir: Path | str) -> WitnessState:
        return cls(Path(state_dir) / STATE_FILE)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: no implicit transactions; we issue BEGIN ourselves.
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """An exclusive write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        Nobody else (thread or process) can write between the reads and the
        writes made through the yielded handle. The commit happens when the
        block exits normally; an exception rolls everything back.
        """
        with self._write_lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Transaction(conn, self)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def latest(self, origin: str) -> StoredCheckpoint | None:
        """The latest cosigned checkpoint for ``origin``, or None."""
        with self._connect() as conn:
            return _select(conn, "origin = ?", origin)

    def latest_by_origin_hash(self, hex_hash: str) -> StoredCheckpoint | None:
        """Like :meth:`latest`, keyed by :func:`origin_hash` (for ``GET``)."""
        with self._connect() as conn:
            return _select(conn, "origin_hash = ?", hex_hash)

    def all_latest(self) -> list[StoredCheckpoint]:
        """Every log's latest cosigned checkpoint, by origin."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM checkpoint ORDER BY origin").fetchall()
        return [_row(r) for r in rows]

    def record_evidence(self, origin: str, reason: str, request: bytes, received_at: int) -> bool:
        """Keep a refused, log-signed request; False if the origin's quota is full."""
        with self.transaction() as tx:
            return tx.add_evidence(Evidence(origin, received_at, reason, bytes(request)))

    def evidence(self, origin: str | None = None) -> list[Evidence]:
        """Recorded evidence, oldest first, for one origin or all."""
        query = "SELECT origin, received_at, reason, request FROM evidence"
        args: tuple[str, ...] = ()
        if origin is not None:
            query += " WHERE origin = ?"
            args = (origin,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [Evidence(r[0], int(r[1]), r[2], bytes(r[3])) for r in rows]


_COLUMNS = "origin, size, root_hash, note, cosigned_at"


def _row(r: tuple[object, ...]) -> StoredCheckpoint:
    origin, size, root_hash, note, cosigned_at = r
    return StoredCheckpoint(
        origin=str(origin),
        size=int(size),  # type: ignore[call-overload]
        root_hash=bytes(root_hash),  # type: ignore[arg-type]
        note=bytes(note),  # type: ignore[arg-type]
        cosigned_at=int(cosigned_at),  # type: ignore[call-overload]
    )


def _select(conn: sqlite3.Connection, where: str, arg: str) -> StoredCheckpoint | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM checkpoint WHERE {where}", (arg,)).fetchone()
    return None if row is None else _row(row)


class _Transaction:
    """Reads and writes inside :meth:`WitnessState.transaction`."""

    def __init__(self, conn: sqlite3.Connection, state: WitnessState) -> None:
        self._conn = conn
        self._state = state

    def get(self, origin: str) -> StoredCheckpoint | None:
        return _select(self._conn, "origin = ?", origin)

    def add_evidence(self, evidence: Evidence) -> bool:
        (count,) = self._conn.execute(
            "SELECT count(*) FROM evidence WHERE origin = ?", (evidence.origin,)
        ).fetchone()
        if count >= MAX_EVIDENCE_PER_ORIGIN:
            return False
        self._conn.execute(
            "INSERT INTO evidence (origin, received_at, reason, request) VALUES (?, ?, ?, ?)",
            (evidence.origin, evidence.received_at, evidence.reason, evidence.request),
        )
        return True

    def put(self, stored: StoredCheckpoint) -> None:
        hook = self._state._testing_before_update
        if hook is not None:
            hook()
        self._conn.execute(
            """
            INSERT INTO checkpoint (origin, origin_hash, size, root_hash, note, cosigned_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (origin) DO UPDATE SET
                size = excluded.size, root_hash = excluded.root_hash,
                note = excluded.note, cosigned_at = excluded.cosigned_at
            """,
            (
                stored.origin,
                origin_hash(stored.origin),
                stored.size,
                stored.root_hash,
                stored.note,
                stored.cosigned_at,
            ),
        )


# ---------------------------------------------------------------------------
# 4. add-checkpoint.


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A syntactically valid add-checkpoint body (nothing verified yet)."""

    old_size: int
    proof: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint
    """The note text parsed as a checkpoint: syntax only, not yet trusted."""


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse ``old <N>\\n``, 0..63 base64 hash lines, ``\\n``, a signed note.

    Strict: the size is ASCII decimal without leading zeros (``0`` allowed)
    and at most 2^63-1; every hash is canonical standard base64 of exactly 32
    bytes; no CR anywhere; the note text is a well-formed checkpoint (its
    content is only *trusted* once a log signature has verified it). Raises
    :class:`RequestTooLarge` or :class:`BadRequest`.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise BadRequest("request body must be bytes")
    body = bytes(body)
    if len(body) > MAX_BODY_SIZE:
        raise RequestTooLarge(f"request body is {len(body)} bytes, more than {MAX_BODY_SIZE}")
    # The header has no blank lines, so the first one ends it.
    header, sep, note_bytes = body.partition(b"\n\n")
    if not sep:
        raise BadRequest("request body has no blank line after the old size and proof lines")
    lines = header.split(b"\n")
    old_line, proof_lines = lines[0], lines[1:]
    if not old_line.startswith(b"old "):
        raise BadRequest("request body does not start with 'old <size>'")
    digits = old_line[4:]
    if not _DECIMAL.fullmatch(digits) or int(digits) > _MAX_SIZE:
        raise BadRequest(
            f"old size {digits[:40]!r} is not a decimal in 0..2^63-1 without leading zeros"
        )
    if len(proof_lines) > MAX_PROOF_LINES:
        raise BadRequest(f"{len(proof_lines)} proof lines, more than {MAX_PROOF_LINES}")
    proof = tuple(_parse_hash_line(line, i) for i, line in enumerate(proof_lines))
    try:
        note = Note.parse(note_bytes)
    except NoteError as exc:
        raise BadRequest(f"malformed checkpoint note: {exc}") from None
    try:
        checkpoint = Checkpoint.from_text(note.text)
    except CheckpointError as exc:
        raise BadRequest(f"malformed checkpoint: {exc}") from None
    if checkpoint.to_text() != note.text:  # strict parsing makes this unreachable
        raise BadRequest("checkpoint text is not in canonical form")
    return AddCheckpointRequest(old_size=int(digits), proof=proof, note=note, checkpoint=checkpoint)


def _parse_hash_line(line: bytes, i: int) -> bytes:
    if len(line) != _B64_HASH_LEN:
        raise BadRequest(f"proof line {i + 1} is not the base64 of a {HASH_SIZE}-byte hash")
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"proof line {i + 1} is not valid standard base64") from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw) != line:
        raise BadRequest(f"proof line {i + 1} is not canonical base64 of a {HASH_SIZE}-byte hash")
    return raw


def process_add_checkpoint(
    body: bytes,
    config: WitnessConfig,
    state: WitnessState,
    key: WitnessKey,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """Run add-checkpoint on a request body; return the cosignature line(s).

    The checks run in the spec's order (see the module docstring) and each
    failure raises its :class:`WitnessError` subclass. On success the new
    checkpoint is committed to ``state`` *before* this returns, in the same
    transaction as the comparison with the stored size. The witness signs
    the re-encoded checkpoint text, never the bytes it received.
    """
    req = parse_add_checkpoint(body)

    # 404: the origin is read from the unverified text only to pick the keys.
    origin = req.checkpoint.origin
    verifiers = config.verifiers_for(origin)
    if not verifiers:
        raise UnknownLog(f"unknown log origin {origin[:200]!r}")

    # 403
    try:
        _, log_signatures = open_note(req.note, verifiers)
    except InvalidSignatureError as exc:
        raise BadSignature(f"log signature fails to verify: {exc}") from None
    except UnverifiedNoteError as exc:
        raise BadSignature(f"no signature from a trusted key for {origin!r}: {exc}") from None

    # The log vouched for the text: from here on its size and root count.
    checkpoint = req.checkpoint
    text = checkpoint.to_text()

    # 400
    if req.old_size > checkpoint.size:
        raise BadRequest(f"old size {req.old_size} is larger than the checkpoint size {checkpoint.size}")

    try:
        with state.transaction() as tx:
            stored = tx.get(origin)
            _check_consistency(stored, req, checkpoint)  # 409, 422
            timestamp = _timestamp(clock)
            cosignature = _cosign(key, text, timestamp)
            note = Note(text=text, signatures=(*log_signatures, cosignature))
            tx.put(
                StoredCheckpoint(
                    origin=origin,
                    size=checkpoint.size,
                    root_hash=checkpoint.root_hash,
                    note=note.to_bytes(),
                    cosigned_at=timestamp,
                )
            )
    except BadProof as exc:
        # Signed by the log yet inconsistent with what we cosigned: keep it.
        try:
            state.record_evidence(origin, str(exc), body, int(clock()))
        except sqlite3.Error:
            log.exception("could not record evidence for %r", origin)
        raise
    # Committed: only now may the cosignature leave.
    log.info("cosigned %s at size %d", origin, checkpoint.size)
    return cosignature.line().encode("utf-8")


def _check_consistency(
    stored: StoredCheckpoint | None, req: AddCheckpointRequest, checkpoint: Checkpoint
) -> None:
    """The 409 and 422 rules, in the spec's order, against the stored state."""
    known = stored.size if stored is not None else 0
    if req.old_size != known:
        raise Conflict(known, f"old size {req.old_size} does not match the latest cosigned size {known}")
    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        raise BadProof("checkpoint of size 0 does not have the empty tree's root hash")
    if req.old_size == 0:
        if req.proof:
            raise BadProof(f"old size is 0 but {len(req.proof)} proof lines were sent")
        return
    assert stored is not None  # known == old_size > 0
    if req.old_size == checkpoint.size:
        if req.proof:
            raise BadProof(f"old size equals the checkpoint size but {len(req.proof)} proof lines were sent")
        if checkpoint.root_hash != stored.root_hash:
            raise BadProof(
                f"checkpoint at size {checkpoint.size} has a different root hash than the one cosigned"
            )
        return
    try:
        verify_consistency(
            size1=req.old_size,
            size2=checkpoint.size,
            proof=req.proof,
            root1=stored.root_hash,
            root2=checkpoint.root_hash,
        )
    except ProofError as exc:
        raise BadProof(
            f"consistency proof from size {req.old_size} to {checkpoint.size} does not verify: {exc}"
        ) from None


def _timestamp(clock: Callable[[], float]) -> int:
    timestamp = int(clock())
    if not 0 < timestamp <= _MAX_SIZE:
        # The spec forbids a zero timestamp; a clock this wrong is our bug, not the client's.
        raise RuntimeError(f"witness clock reads {timestamp}; refusing to cosign")
    return timestamp


def _cosign(key: WitnessKey, text: str, timestamp: int) -> NoteSignature:
    signer = key.signer(clock=lambda: timestamp)
    return NoteSignature(name=signer.name, key_id=signer.key_id, signature=signer.sign(text.encode("utf-8")))


# ---------------------------------------------------------------------------
# 5. HTTP.


def witness_blueprint(
    config: WitnessConfig,
    state: WitnessState,
    key: WitnessKey,
    *,
    clock: Callable[[], float] = time.time,
    name: str = "witness",
    url_prefix: str | None = None,
) -> Blueprint:
    """Flask routes of the witness (submission and monitoring prefix alike):

    * ``POST /add-checkpoint`` - :func:`process_add_checkpoint`; errors are
      plain text with the spec's status codes (409 carries ``<size>\\n`` as
      ``text/x.tlog.size``);
    * ``GET /<lowercase hex SHA-256(origin)>/checkpoint`` - the latest
      cosigned checkpoint (log signatures and this witness's cosignature),
      404 if the witness never cosigned that log.
    """
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.post("/add-checkpoint")
    def add_checkpoint() -> Response:
        try:
            body = _read_body()
            cosignatures = process_add_checkpoint(body, config, state, key, clock)
        except Conflict as exc:
            return Response(f"{exc.size}\n", status=409, content_type=CONTENT_TYPE_SIZE)
        except WitnessError as exc:
            return _text(exc.http_status, exc.message)
        except Exception:
            log.exception("add-checkpoint failed")
            return _text(500, "internal error; nothing was cosigned")
        return Response(cosignatures, status=200, content_type=_CONTENT_TYPE_TEXT)

    @bp.get("/<hex_hash>/checkpoint")
    def get_checkpoint(hex_hash: str) -> Response:
        if not _ORIGIN_HASH.fullmatch(hex_hash):
            return _text(404, "not a lowercase hex SHA-256 of an origin")
        stored = state.latest_by_origin_hash(hex_hash)
        if stored is None:
            return _text(404, "this witness never cosigned a checkpoint for that origin")
        resp = Response(stored.note, status=200, content_type=_CONTENT_TYPE_TEXT)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    return bp


def _read_body() -> bytes:
    """The request body, refusing more than :data:`MAX_BODY_SIZE` bytes
    without reading them all (the Content-Length may be absent or lie)."""
    if request.content_length is not None and request.content_length > MAX_BODY_SIZE:
        raise RequestTooLarge(f"request body is {request.content_length} bytes, more than {MAX_BODY_SIZE}")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = request.stream.read(MAX_BODY_SIZE + 1 - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_BODY_SIZE:
            raise RequestTooLarge(f"request body is more than {MAX_BODY_SIZE} bytes")
    return b"".join(chunks)


def _text(status: int, message: str) -> Response:
    return Response(message.rstrip("\n") + "\n", status=status, content_type=_CONTENT_TYPE_TEXT)

