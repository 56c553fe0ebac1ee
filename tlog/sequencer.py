"""The write path: from verified submissions to durable, signed, integrated entries.

Read this file top to bottom.

1. A request thread verifies and canonicalises its entry (``tlog.entries``),
   then calls :meth:`Sequencer.submit`, which queues it in this process's pool
   and waits.
2. One sequencer thread per process takes everything queued so far as a batch
   and calls :func:`integrate`, which runs **one database transaction**:

   a. take the tree's single-writer lock (``BEGIN IMMEDIATE`` on SQLite, an
      advisory lock on PostgreSQL), so that workers of every process and every
      frontend machine take turns;
   b. read the latest tree head and the right edge of the tree (the compact
      range: at most log2(n) node hashes) — under the lock, so nobody can
      move them while we work;
   c. drop entries already in the log (409 to their submitters);
   d. assign the next dense indexes and the integration time, hash the
      leaves into the compact range and collect every new perfect-subtree
      node;
   e. sign each new entry's SET (Rekor's signed entry timestamp over its
      body, integration time, log ID and global index, none of which can
      change once assigned) and the new tree head (ECDSA for Rekor clients,
      Ed25519 for C2SP witnesses);
   f. insert entries with their SETs, the attestations of dsse entries (their
      DSSE payloads, which the bodies only hash), nodes, search keys and the
      tree head;
   g. build each new entry's inclusion proof (one read), and COMMIT.

   The commit is the point of no return and the only one. If the process dies
   anywhere before it, the database rolls the whole batch back: no index is
   used, no entry, attestation or node is written, no head is signed into
   storage, and no submitter has had an answer. If it dies after it,
   everything is durable (SQLite ``synchronous=FULL`` / PostgreSQL's WAL) and
   only the answers are lost; the clients retry and get 409 with the entry's
   location. Either way nobody ever reads a dsse entry without its
   attestation, nor an attestation without its entry, and an entry's SET is
   committed with the entry or not at all (the SETs signed for a batch that
   rolls back were never handed out).
3. The sequencer thread wakes the waiting request threads, which answer with
   the stored SET: neither they nor any later read signs it again.

Batching is what makes throughput grow with concurrency: while one batch
holds the lock, the next one accumulates, and it costs one lock, one
checkpoint signature pair and one commit however many entries it carries. A
batch also waits until it is as large as the previous one, but never longer
than ``batch_interval`` after the previous one started (as Sunlight's
sequencing period and Tessera's batch age bound theirs): the clients that
were just answered come back with their next entry, so the per-batch work is
shared by more entries without idling, and a lone submission is never kept
waiting.
Measured in README "Performance": without it, batches under 64 clients
averaged three entries and the writer spent 0.75 ms of CPU per entry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from tlog import merkle, metrics
from tlog.entries import CanonicalEntry
from tlog.errors import Conflict, Internal, TlogError, Unavailable
from tlog.log import TransparencyLog
from tlog.storage import store
from tlog.storage.db import storage_error_message, write_transaction
from tlog.storage.models import node_key
from tlog.storage.store import AttestationRecord, EntryRecord, TreeHeadRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Integrated:
    """A submission's outcome: the stored entry, the head that first included
    it, and the inclusion proof against that head."""

    entry: EntryRecord
    head: TreeHeadRecord
    proof: list[bytes]


def integrate(
    tlog: TransparencyLog, batch: Sequence[CanonicalEntry], *, with_proofs: bool = True, with_sets: bool = True
) -> list[Integrated | Conflict]:
    """Append ``batch`` to the log in one transaction; see the module docstring.

    Returns, per submission and in order, the integrated entry or a
    :class:`Conflict` naming the entry that was already there. A bulk loader,
    which answers nobody, passes ``with_proofs=False`` (the proofs are empty)
    and, unless asked (``tlog load --sets``), ``with_sets=False``: a SET is an
    ECDSA signature per entry, which makes integration 2.5 times slower (20 ->
    53 µs per entry in batches of 10,000 on SQLite), so its entries are stored
    without one and the API signs theirs on each read, as for entries logged
    before SETs were stored.
    So does the CA's certificate log, whose entries are never served as Rekor
    LogEntries.
    """
    leaf_hashes = [merkle.hash_leaf(e.body) for e in batch]
    tree = tlog.tree
    with write_transaction(tlog.engine, tree) as conn:
        # (b) The current head and the right edge of the tree. A tree frozen by
        # a key rotation takes no more entries: a server still running with
        # the old keys fails here until it is restarted on the new shard.
        if store.is_frozen(conn, tree):
            raise Unavailable(
                f"the shard {tlog.info.origin!r} was frozen by a key rotation; restart the server to use the new shard",
                retry_after=5,
            )
        head = store.latest_head(conn, tree)
        if head is None:
            raise Internal(f"tree {tree} has no signed head; it was not created by TransparencyLog.open")
        edge_ids = merkle.perfect_nodes(head.size)
        edge = merkle.CompactRange.from_hashes(0, head.size, store.get_node_hashes(conn, tree, edge_ids))

        # (c) Duplicates: already in the log, or twice in this batch.
        existing = store.find_leaf_hashes(conn, tree, leaf_hashes)

        # (d) Dense indexes, leaf and node hashes. The integration time never
        # goes backwards, even if the clock does.
        now_ms = max(int(time.time() * 1000), head.timestamp)
        integrated_time = now_ms // 1000
        records: list[EntryRecord] = []
        outcome: list[int | None] = []  # None: the next of ``records``; else the index of the existing entry
        next_index = head.size
        for entry, leaf in zip(batch, leaf_hashes):
            if leaf in existing:
                outcome.append(existing[leaf])
                continue
            records.append(EntryRecord(next_index, leaf, entry.body, integrated_time, _attestation(entry)))
            existing[leaf] = next_index
            next_index += 1
            outcome.append(None)

        if not records:
            return [_conflict(tlog, leaf, o) for leaf, o in zip(leaf_hashes, outcome) if o is not None]

        # All new perfect nodes, a contiguous run per level (level 0: the leaves).
        new_levels = edge.extend_levels([r.leaf_hash for r in records])

        # (e) Sign each new entry's SET, then the new tree head.
        if with_sets:
            sign = tlog.signed_entry_timestamp
            records = [dataclasses.replace(r, signed_entry_timestamp=sign(r)) for r in records]
        new_head = tlog.sign_head(edge.end, edge.root(), now_ms)

        # (f) Write it all; the commit at the end of this block is the point of no return.
        store.insert_entries(conn, tree, records)
        store.insert_attestations(conn, tree, records)
        store.insert_node_levels(conn, tree, new_levels)
        store.insert_search_keys(
            conn,
            tree,
            ((k, r.log_index) for r, e in zip(records, _submitted(batch, outcome)) for k in e.search_keys),
        )
        store.insert_head(conn, tree, new_head)

        # (g) Inclusion proofs for the answers, while we hold everything: the
        # nodes this batch created are in memory, the rest is one read.
        proofs: list[list[bytes]] = [[] for _ in records]
        if with_proofs:
            wanted = [merkle.inclusion(r.log_index, new_head.size) for r in records]
            ids = [n for w in wanted for n in w.ids]
            known = {
                node_key(level, first + i): h for level, (first, hs) in enumerate(new_levels) for i, h in enumerate(hs)
            }
            hashes = iter(store.get_node_hashes(conn, tree, ids, known=known))
            proofs = [w.rehash([next(hashes) for _ in w.ids]) for w in wanted]

    log.debug("integrated %d entries: size %d -> %d", len(records), head.size, new_head.size)
    added = (Integrated(r, new_head, p) for r, p in zip(records, proofs))
    return [next(added) if o is None else _conflict(tlog, leaf, o) for leaf, o in zip(leaf_hashes, outcome)]


def _attestation(entry: CanonicalEntry) -> AttestationRecord | None:
    if entry.attestation is None or entry.payload_type is None:
        return None
    return AttestationRecord(entry.payload_type, entry.attestation)


def _submitted(batch: Sequence[CanonicalEntry], outcome: Sequence[int | None]) -> list[CanonicalEntry]:
    """The submissions that became new entries, in the order of their records."""
    return [e for e, o in zip(batch, outcome) if o is None]


def _conflict(tlog: TransparencyLog, leaf_hash: bytes, log_index: int) -> Conflict:
    uuid = tlog.entry_uuid(leaf_hash)
    log_index += tlog.index_offset
    return Conflict(f"an equivalent entry already exists in the log at logIndex {log_index}", uuid=uuid, log_index=log_index)


def batch_due(now: float, last_start: float, last_size: int, pending: int, interval: float) -> float:
    """How long the next batch should still wait for more entries (0: start it now).

    See the module docstring: until ``pending`` reaches the previous batch's
    size, at most until ``interval`` after the previous batch started.
    """
    if pending >= last_size:
        return 0.0
    return min(interval, max(0.0, last_start + interval - now))  # min: float rounding


@dataclass(eq=False)
class _Pending:
    entry: CanonicalEntry
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Integrated | TlogError | None = None


class Sequencer:
    """This process's pool of submissions and the thread that integrates them.

    ``max_pending`` bounds the pool: past it, submissions are refused with 503
    and ``Retry-After`` rather than queued without limit. ``with_sets`` is
    :func:`integrate`'s. The writer process (:mod:`tlog.writer`) has its own
    loop and calls :meth:`integrate_batch`.
    """

    def __init__(
        self,
        tlog: TransparencyLog,
        *,
        max_batch: int = 1000,
        max_pending: int = 10_000,
        batch_interval: float = 0.0,
        with_sets: bool = True,
    ) -> None:
        self.tlog = tlog
        self.with_sets = with_sets
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.batch_interval = batch_interval
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, entry: CanonicalEntry, *, timeout: float = 30.0) -> Integrated:
        """Integrate ``entry``; returns once it is durable, raises :class:`Conflict` if it was there."""
        pending = _Pending(entry)
        with self._cond:
            if len(self._queue) >= self.max_pending:
                raise Unavailable("the log is overloaded; retry shortly", retry_after=1)
            self._ensure_thread()
            self._queue.append(pending)
            self._cond.notify()
        if not pending.done.wait(timeout):
            # The entry may still be integrated; a retry then answers 409 with its location.
            raise Unavailable(f"the entry was not integrated within {timeout:.0f}s; retry to learn its fate")
        outcome = pending.outcome
        if isinstance(outcome, TlogError):  # Conflict included
            raise outcome
        assert outcome is not None
        return outcome

    def _ensure_thread(self) -> None:
        # A thread does not survive fork(); each worker process starts its own.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="tlog-sequencer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last_start, last_size = 0.0, 0
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                while wait := batch_due(time.monotonic(), last_start, last_size, len(self._queue), self.batch_interval):
                    self._cond.wait(wait)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            last_start, last_size = time.monotonic(), len(batch)
            for p, outcome in zip(batch, self.integrate_batch([p.entry for p in batch])):
                p.outcome = outcome
                p.done.set()

    def integrate_batch(self, entries: list[CanonicalEntry]) -> list[Integrated | TlogError]:
        """Integrate ``entries`` in one transaction; per entry, its outcome or the error to answer.

        Never raises: a failed batch fails each of its entries with the same
        error, and nothing of it was written.
        """
        started = time.perf_counter()
        try:
            results = integrate(self.tlog, entries, with_sets=self.with_sets)
        except TlogError as exc:
            metrics.INTEGRATION_FAILURES.labels(exc.category).inc()
            return [exc] * len(entries)
        except SQLAlchemyError as exc:
            metrics.INTEGRATION_FAILURES.labels("storage").inc()
            # The batch's transaction was rolled back (or, if the connection
            # died during COMMIT, may have committed: hence the 409 hint).
            # storage_error_message says "full" for a full disk (SQLITE_FULL,
            # PostgreSQL 53100), "unavailable" otherwise.
            log.error("integration of %d entries failed: storage error: %s", len(entries), exc)
            error = Unavailable(storage_error_message(exc) + " (a 409 on retry means the entry was written)", retry_after=5)
            return [error] * len(entries)
        except Exception:  # a bug: fail the batch, keep the sequencer alive
            metrics.INTEGRATION_FAILURES.labels("internal").inc()
            log.exception("integration of %d entries failed", len(entries))
            return [Internal("internal error while integrating; nothing was written")] * len(entries)
        elapsed = time.perf_counter() - started
        added = [r for r in results if isinstance(r, Integrated)]
        metrics.BATCH_SIZE.observe(len(entries))
        metrics.BATCH_DURATION.observe(elapsed)
        metrics.ENTRIES_INTEGRATED.inc(len(added))
        metrics.DUPLICATES.inc(len(results) - len(added))
        if added:
            metrics.TREE_SIZE.set(added[0].head.size)
        log.debug("batch of %d in %.1f ms", len(entries), elapsed * 1000)
        return list(results)
