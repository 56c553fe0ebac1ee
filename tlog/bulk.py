"""Bulk loading: append many entries through the server's own integration path.

``tlog load`` fills a log with real, valid entries far faster than HTTP
submissions can, for benchmarks at scale and to reload exported data. It does
not bypass anything: every batch goes through
:func:`tlog.sequencer.integrate` (``with_proofs=False``, since nobody waits
for an answer; ``with_sets`` only with ``--sets``: without it the API signs
these entries' SETs on every read, and loading is faster, 15,500 against
11,700 entries/s on the development machine), which takes the same
single-writer lock as the server's sequencer, so it is safe to run next to a
live ``tlog serve``. Each batch is one transaction and one signed
checkpoint; a crash loses at most the batch in flight.

Two sources of entries, both turned into :class:`~tlog.entries.CanonicalEntry`
in worker processes while the main process integrates the previous batch:

* ``synthetic``: ``hashedrekord`` entries over random SHA-256 digests, each
  ECDSA-signed by one P-256 key and carrying its PEM public key (no
  certificate: bodies stay ~560 bytes). The log's contract is that every
  entry's signature verified, so each is real. Building the canonical body
  with :func:`tlog.entries.canonicalize` costs ~120 µs; the fast path here
  fills a template instead (~1 µs) and still verifies every signature with the
  public key (~55 µs). That the template is byte-for-byte what
  ``canonicalize`` produces is checked on the first entry of every chunk at
  run time (and on many entries in the tests), so the fast path cannot drift.
* a JSON-lines file of Rekor proposed entries (what clients POST to
  ``/api/v1/log/entries``), each validated and verified by ``canonicalize``
  exactly as the API does. A bad line stops the load with an error naming the
  file and line; the batch holding it is not written (batches before it are).
  A ``dsse`` entry keeps its DSSE payload as its attestation, written in the
  entry's batch like any submission's; the server's ``--max-attestation-bytes``
  does not apply (the operator chose the file), so no dsse entry is ever
  loaded without its payload.

Generation runs ahead of integration by a bounded number of chunks, so memory
stays flat however many entries are loaded.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tlog.entries import CanonicalEntry
from tlog.errors import BadRequest, TlogError

log = logging.getLogger(__name__)

#: Entries per job handed to a worker process (~50-150 ms of work).
CHUNK = 1000

#: Default entries per integrated batch (one transaction, one checkpoint).
DEFAULT_BATCH = 10_000


class LoadError(BadRequest):
    """Bad input for the bulk loader (e.g. an invalid line in a source file)."""


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    added: int
    duplicates: int
    batches: int
    seconds: float
    size: int
    root_hash: bytes

    @property
    def rate(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


# --- synthetic entries ------------------------------------------------------------------

_TEMPLATE = (
    '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256",'
    '"value":"%s"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}'
)
"""The RFC 8785 body of a hashedrekord 0.0.1 entry over a sha256 digest with a
public key: keys in code-point order, no whitespace; hex and base64 values
need no escaping."""

_worker_state: dict[str, Any] = {}


def _init_synthetic(private_pem: bytes) -> None:
    """Per worker process: load the signing key once."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    from tlog.entries import keys as entry_keys

    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = entry_keys.load_verifier(public_pem, "publicKey")  # the same policy checks as the API
    _worker_state.update(
        key=key,
        verifier=verifier,
        algorithm=ec.ECDSA(utils.Prehashed(hashes.SHA256())),
        pem_b64=base64.b64encode(verifier.canonical_pem).decode("ascii"),
        pubkey_search_key=entry_keys.public_key_search_key(verifier.canonical_pem),
    )


def synthetic_proposed(digest: bytes, signature: bytes, pem_b64: str) -> dict[str, Any]:
    """The proposed entry (what a client POSTs) for a signed sha256 digest."""
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {"content": base64.b64encode(signature).decode("ascii"), "publicKey": {"content": pem_b64}},
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        },
    }


def fast_hashedrekord(digest: bytes, signature: bytes, pem_b64: str, pubkey_search_key: str) -> tuple[bytes, tuple[str, ...]]:
    """(canonical body, search keys) of :func:`synthetic_proposed`, by template.

    Byte-identical to ``canonicalize(synthetic_proposed(...))`` for a PEM
    public key in canonical form and a DER signature; the caller must have
    verified the signature.
    """
    hex_digest = digest.hex()
    body = (_TEMPLATE % (hex_digest, base64.b64encode(signature).decode("ascii"), pem_b64)).encode("ascii")
    return body, (pubkey_search_key, "sha256:" + hex_digest)


def _synthetic_chunk(n: int) -> list[tuple[bytes, tuple[str, ...]]]:
    """``n`` freshly signed, verified entries as (body, search keys)."""
    from tlog.entries import canonicalize
    from tlog.entries.keys import verify_prehashed

    st = _worker_state
    key, verifier, algorithm = st["key"], st["verifier"], st["algorithm"]
    pem_b64, pubkey_key = st["pem_b64"], st["pubkey_search_key"]
    sign = key.sign
    urandom = os.urandom
    out = []
    for i in range(n):
        digest = urandom(32)
        signature = sign(digest, algorithm)
        if i == 0:
            # The slow, authoritative path on one entry per chunk: the template must match it exactly.
            ref = canonicalize(synthetic_proposed(digest, signature, pem_b64))
            fast = fast_hashedrekord(digest, signature, pem_b64, pubkey_key)
            if (ref.body, ref.search_keys) != fast:
                raise AssertionError(f"synthetic template drifted from canonicalize():\n{fast[0]!r}\n{ref.body!r}")
            out.append(fast)
            continue
        if not verify_prehashed(verifier, signature, digest, "sha256"):
            raise AssertionError("a synthetic signature did not verify")
        out.append(fast_hashedrekord(digest, signature, pem_b64, pubkey_key))
    return out


def _to_entries(items: Iterable[tuple[bytes, tuple[str, ...]]]) -> list[CanonicalEntry]:
    return [CanonicalEntry("hashedrekord", "0.0.1", body, keys, None) for body, keys in items]


# --- entries from a file ----------------------------------------------------------------


def _init_file() -> None:
    pass


#: The fields of a CanonicalEntry, in order, as plain values for the trip back from a worker process.
_EntryFields = tuple[str, str, bytes, tuple[str, ...], bytes | None, str | None]


def _file_chunk(job: tuple[int, list[str]]) -> tuple[list[_EntryFields], tuple[int, str] | None]:
    """Canonicalise lines numbered from ``first``; stops at the first bad line and reports it."""
    from tlog.entries import canonicalize

    first, lines = job
    out: list[_EntryFields] = []
    for n, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            proposed = json.loads(line)
        except ValueError as exc:
            return out, (n, f"not valid JSON: {exc}")
        try:
            e = canonicalize(proposed)
        except TlogError as exc:
            return out, (n, exc.message)
        out.append((e.kind, e.api_version, e.body, e.search_keys, e.attestation, e.payload_type))
    return out, None


# --- the pipeline -----------------------------------------------------------------------


class _Pipeline:
    """Ordered results of ``fn(job)`` computed by worker processes, at most ``ahead`` jobs in flight.

    With ``processes <= 1`` everything runs inline (no pool to start: best for
    small loads).
    """

    def __init__(self, fn: Callable[[Any], Any], jobs: Iterable[Any], *, processes: int,
                 initializer: Callable[..., None], initargs: tuple[Any, ...], ahead: int) -> None:  # fmt: skip
        self.fn, self.jobs = fn, iter(jobs)
        self.pool = None
        if processes > 1:
            # fork: no __main__ guard needed and no re-import. The pool is
            # started before any batch is integrated or progress thread runs,
            # and workers never touch the parent's database connections.
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self.pool = mp.get_context(method).Pool(processes, initializer=initializer, initargs=initargs)
        else:
            initializer(*initargs)
        self.ahead = max(1, ahead)

    def __iter__(self) -> Iterator[Any]:
        if self.pool is None:
            for job in self.jobs:
                yield self.fn(job)
            return
        pending: collections.deque[Any] = collections.deque()
        for job in self.jobs:
            pending.append(self.pool.apply_async(self.fn, (job,)))
            if len(pending) >= self.ahead:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def synthetic_batches(count: int, batch: int, *, processes: int) -> Iterator[list[CanonicalEntry]]:
    """``count`` new synthetic entries, in lists of ``batch``; the worker pool starts now."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    chunk = min(CHUNK, max(1, batch))
    sizes = [min(chunk, count - i) for i in range(0, count, chunk)]
    pipe = _Pipeline(_synthetic_chunk, sizes, processes=processes, initializer=_init_synthetic, initargs=(pem,),
                     ahead=2 * max(processes, 1) + batch // chunk)  # fmt: skip
    return _rebatch((_to_entries(items) for items in pipe), batch, pipe)


def _rebatch(lists: Iterable[list[CanonicalEntry]], batch: int, pipe: _Pipeline) -> Iterator[list[CanonicalEntry]]:
    try:
        pending: list[CanonicalEntry] = []
        for items in lists:
            pending.extend(items)
            while len(pending) >= batch:
                yield pending[:batch]
                del pending[:batch]
        if pending:
            yield pending
    finally:
        pipe.close()


def file_batches(path: Path, batch: int, *, processes: int, limit: int | None = None) -> Iterator[list[CanonicalEntry]]:
    """The proposed entries of a JSON-lines file, canonicalised, in lists of ``batch``.

    Raises :class:`LoadError` naming the line at the first bad one, before
    the batch holding it is handed out.
    """
    chunk = min(CHUNK, max(1, batch))

    def jobs() -> Iterator[tuple[int, list[str]]]:
        lines: list[str] = []
        first = 1
        taken = 0
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for n, line in enumerate(f, 1):
                if limit is not None and taken >= limit:
                    break
                if line.strip():
                    taken += 1
                lines.append(line)
                if len(lines) >= chunk:
                    yield first, lines
                    lines, first = [], n + 1
        if lines:
            yield first, lines

    pipe = _Pipeline(_file_chunk, jobs(), processes=processes, initializer=_init_file, initargs=(),
                     ahead=2 * max(processes, 1) + batch // chunk)  # fmt: skip

    def checked() -> Iterator[list[CanonicalEntry]]:
        for items, error in pipe:
            yield [CanonicalEntry(*item) for item in items]
            if error is not None:
                line, message = error
                raise LoadError(f"{path}:{line}: {message}")

    return _rebatch(checked(), batch, pipe)


# --- loading ----------------------------------------------------------------------------


class _Progress:
    """A tqdm bar on stderr: redrawn in place on a terminal, a line every few seconds in a file."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, unit=" entries", unit_scale=True, smoothing=0.1, dynamic_ncols=True,
                            mininterval=0.5 if sys.stderr.isatty() else 5.0, file=sys.stderr)  # fmt: skip

    def update(self, n: int, size: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(f"tree size {size:,}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def load(
    tlog: Any,
    batches: Iterable[list[CanonicalEntry]],
    *,
    total: int | None = None,
    progress: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
    with_sets: bool = False,
) -> LoadResult:
    """Integrate each batch (one transaction and one signed checkpoint per batch).

    Entries already in the log are skipped and counted as duplicates.
    ``on_batch(added, tree_size)`` is called after each commit. ``with_sets``
    signs and stores each entry's SET as a submission's is.
    """
    from tlog.errors import Conflict
    from tlog.sequencer import integrate

    started = time.perf_counter()
    added = duplicates = n_batches = 0
    head = tlog.latest_head()
    size, root = head.size, head.root_hash
    bar = _Progress(total, progress)

    def so_far() -> tuple[int, int]:
        return added, size

    stream = _reporting(batches, so_far)
    try:
        for batch in stream:
            results = integrate(tlog, batch, with_proofs=False, with_sets=with_sets)
            n_added = sum(1 for r in results if not isinstance(r, Conflict))
            added += n_added
            duplicates += len(results) - n_added
            n_batches += 1
            for r in results:
                if not isinstance(r, Conflict):
                    size, root = r.head.size, r.head.root_hash
                    break
            bar.update(len(batch), size)
            if on_batch is not None:
                on_batch(n_added, size)
    finally:
        stream.close()  # stops the worker processes if integration failed
        bar.close()
    return LoadResult(added, duplicates, n_batches, time.perf_counter() - started, size, root)


def _reporting(batches: Iterable[list[CanonicalEntry]], state: Callable[[], tuple[int, int]]) -> Iterator[list[CanonicalEntry]]:
    """Pass batches through; a LoadError also tells what earlier batches added."""
    try:
        yield from batches
    except LoadError as exc:
        added, size = state()
        raise LoadError(
            f"{exc.message}\nnothing of the batch holding that line was written; "
            f"{added:,} entries of earlier batches were added (tree size {size:,})"
        ) from None


def open_log(
    data_dir: Path,
    database_url: str | None,
    *,
    origin: str | None = None,
    ecdsa_key: Path | None = None,
    ed25519_key: Path | None = None,
) -> Any:
    """Open (creating if needed) the entry log exactly as ``tlog serve`` would."""
    from tlog.api.state import ENTRIES, _tree_exists
    from tlog.config import Settings, default_origin
    from tlog.keys import LogKeys
    from tlog.log import TransparencyLog
    from tlog.storage import db

    settings = Settings(data_dir=data_dir, database_url=database_url, origin=origin)
    engine = db.create_engine(settings.resolved_database_url, pool_size=2)
    db.upgrade(engine)
    keys = LogKeys.load(data_dir, ecdsa_path=ecdsa_key, ed25519_path=ed25519_key)
    if origin is None and not _tree_exists(engine, ENTRIES):
        origin = default_origin()
    return TransparencyLog.open(engine, keys, purpose=ENTRIES, origin=origin)


def default_processes() -> int:
    return max(1, os.cpu_count() or 1)
