"""One audit pass over one log: the monitor's whole verification procedure.

1. Fetch the log's checkpoint.
2. Choose its keys: those pinned in the state for its origin (plus any
   configured), else the configured ones, else the keys pinned for its URL,
   else trust on first use (the ECDSA key from ``/api/v1/log/publicKey``).
3. Verify the signature (:class:`~monitor.verify.BadSignature`).
4. Against the verified state: same size must mean same root, smaller is a
   rollback, and a larger tree needs a consistency proof from the log that
   verifies (:class:`~monitor.verify.Inconsistent`).
5. Fetch every new entry, hash it into the stored right edge of the tree and
   compare the resulting root with the checkpoint: a second check,
   independent of the log's own hashes, that the entries are the tree. On
   first contact this starts from leaf 0. Each entry also goes to the
   watcher, and each batch of entries to the entry checks (the trusted
   publisher watch, which may ask the log for more about some entries).
6. Write the alerts for watched identities and the checks' findings, then
   compare-and-swap the new state. Nothing is written unless every check
   passed, so a failed pass leaves the state at the last verified checkpoint.

Network failures (:class:`~monitor.client.LogUnreachable`) propagate: retrying
is the daemon's business. Everything else ends in an :class:`AuditResult`;
failures also raise an alert through the sink.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.alerts import AlertSink
from monitor.client import LogClient, LogUnreachable, ProtocolError
from monitor.metrics import MonitorMetrics
from monitor.state import LogState, StateStore
from monitor.verify import (
    Pins,
    VerificationFailure,
    VerifiedCheckpoint,
    check_consistency,
    check_empty,
    check_entries_root,
    claimed_origin,
    open_checkpoint,
)
from tlog.merkle import EMPTY_ROOT, CompactRange

__all__ = ["AuditResult", "EntryCheck", "Match", "Progress", "Watcher", "audit_log"]

log = logging.getLogger(__name__)

_sha256 = hashlib.sha256


class Match(Protocol):
    """A watched value found in an entry (``monitor.watch``)."""

    def to_alert(self) -> dict[str, Any]:
        """The alert fields: at least ``message``; ``type`` defaults to ``identity_match``."""
        ...


class Watcher(Protocol):
    """Looks at every audited entry (``monitor.watch.Watchlist``)."""

    def match(self, body: bytes, log_index: int) -> list[Match]:
        """The watched values found in the entry ``body`` at ``log_index``."""
        ...


class EntryCheck(Protocol):
    """Looks at each batch of audited entries, with the log at hand (``monitor.publisher_watch``)."""

    def check_batch(self, client: LogClient, origin: str, start: int, bodies: Sequence[bytes]) -> list[Match]:
        """Findings for ``bodies`` at indexes ``start, start + 1, ...``; may fetch more from ``client``.

        :class:`~monitor.client.LogUnreachable` and
        :class:`~monitor.client.ProtocolError` fail the pass like the audit's own.
        """
        ...


class Progress(Protocol):
    """A progress display (a ``tqdm`` bar): told how many entries were hashed, then closed."""

    def update(self, n: int) -> Any:
        """``n`` more entries are done."""
        ...

    def close(self) -> None:
        """The pass is over."""
        ...


@dataclass
class AuditResult:
    """The outcome of one pass.

    ``status`` is one of: ``verified`` (the log grew and every check passed),
    ``unchanged`` (same checkpoint as before), ``failed`` (a verification
    failed; ``alert_type`` says which), ``protocol_error`` (a malformed answer)
    or ``conflict`` (another process moved the state meanwhile; retry).
    """

    url: str
    status: str
    origin: str | None = None
    old_size: int | None = None
    new_size: int | None = None
    entries: int = 0
    alert_type: str | None = None
    message: str = ""
    state: LogState | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if the log is verified up to its latest checkpoint."""
        return self.status in ("verified", "unchanged")


def audit_log(
    client: LogClient,
    store: StateStore,
    origin_pins: Pins | None,
    watcher: Watcher | None,
    alerts: AlertSink,
    *,
    metrics: MonitorMetrics | None = None,
    clock: Callable[[], float] = time.time,
    checks: Sequence[EntryCheck] = (),
    progress: Callable[[str, int], Progress] | None = None,
) -> AuditResult:
    """Run one pass over the log behind ``client``; see the module docstring.

    ``origin_pins`` are keys configured for this log (trust config,
    ``--log-key``), or None. ``progress(origin, entries)``, when given, makes
    the display for a pass that has entries to fetch. Raises
    :class:`~monitor.client.LogUnreachable`.
    """
    url = client.url
    origin: str | None = None
    try:
        # (1) The checkpoint; its claimed origin only selects the pinned state.
        raw = client.checkpoint()
        origin = claimed_origin(raw)
        old = store.get(origin)

        # (2, 3) The keys, and the signature.
        pins = _pins_for(client, store, old, origin_pins, origin)
        new = open_checkpoint(raw, pins)
        origin = new.origin
        if metrics is not None:
            metrics.seen(origin, new.size, verified=old.size if old is not None else None)
        vkeys = tuple(dict.fromkeys((old.vkeys if old is not None else ()) + new.vkeys))

        # (4) Against what we verified before.
        check_empty(new)
        if old is not None:
            proof = (
                client.consistency_proof(old.size, new.size)
                if 0 < old.size < new.size
                else []
            )
            check_consistency(
                old_size=old.size, old_root=old.root_hash, old_checkpoint=old.checkpoint, new=new, proof=proof
            )
            if new.size == old.size:
                if old.url != url or set(vkeys) != set(old.vkeys):
                    store.compare_and_swap(origin, old.size, replace(old, url=url, vkeys=vkeys))
                if metrics is not None:
                    metrics.verified(origin, old.size, seen=new.size, audited=0, at=clock())
                return AuditResult(url, "unchanged", origin, old.size, new.size, state=old)

        # (5) The entries.
        begin = old.size if old is not None else 0
        edge = old.compact_range() if old is not None else CompactRange()
        bar = progress(origin, new.size - begin) if progress is not None and new.size > begin else None
        try:
            matches = _audit_entries(client, edge, begin, new, watcher, checks, bar)
        finally:
            if bar is not None:
                bar.close()
        root = edge.root() if edge.end else EMPTY_ROOT
        if root != new.root_hash:
            check_entries_root(new, root, begin=begin, bad_index=_first_bad_leaf(client, begin, new))

        # (6) Watched identities and findings, then the new state.
        emitted = [_emit_match(alerts, m, url, origin) for m in matches]
        state = LogState(
            origin=origin,
            url=url,
            size=new.size,
            root_hash=new.root_hash,
            checkpoint=new.note,
            vkeys=vkeys,
            edge=tuple(edge.hashes),
            entries_audited=(old.entries_audited if old is not None else 0) + (new.size - begin),
        )
        if not store.compare_and_swap(origin, old.size if old is not None else None, state):
            log.warning("%s: the state of %r changed during the pass; not saved", url, origin)
            return AuditResult(url, "conflict", origin, begin, new.size, message="state changed meanwhile")
        if metrics is not None:
            metrics.verified(origin, new.size, seen=new.size, audited=new.size - begin, at=clock())
        log.info("%s: verified %r from size %d to %d", url, origin, begin, new.size)
        return AuditResult(
            url, "verified", origin, begin, new.size, entries=new.size - begin, state=state, alerts=emitted
        )
    except VerificationFailure as exc:
        alert = alerts.alert(
            exc.alert_type, exc.message, log=url, origin=origin, log_index=exc.log_index, evidence=exc.evidence
        )
        log.error("%s: %s: %s", url, exc.alert_type, exc.message)
        return AuditResult(url, "failed", origin, alert_type=exc.alert_type, message=exc.message, alerts=[alert])
    except ProtocolError as exc:
        alert = alerts.alert("protocol_error", str(exc), log=url, origin=origin)
        log.error("%s: protocol error: %s", url, exc)
        return AuditResult(url, "protocol_error", origin, alert_type="protocol_error", message=str(exc), alerts=[alert])


def _pins_for(
    client: LogClient, store: StateStore, old: LogState | None, configured: Pins | None, origin: str
) -> Pins:
    """Step (2): which keys this checkpoint must be signed by."""
    if old is not None:
        # Pinned for this origin: never replaced silently. Configured keys are
        # added, as the operator's explicit trust (a planned key rotation).
        return Pins(vkeys=old.vkeys) | (configured or Pins())
    if configured:
        return configured
    by_url = store.get_by_url(client.url)
    if by_url is not None:
        # A new origin at a known URL (Rekor shards the log under a new tree
        # ID): only the keys pinned for that URL may sign it.
        log.warning(
            "%s serves a new origin %r (was %r); only its pinned keys may sign it", client.url, origin, by_url.origin
        )
        return Pins(vkeys=by_url.vkeys)
    return _trust_on_first_use(client)


def _trust_on_first_use(client: LogClient) -> Pins:
    try:
        pem = client.public_key_pem()
    except ProtocolError as exc:
        raise ProtocolError(f"cannot pin the log's key on first use ({exc}); pin it with --log-key or --trust-config") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ProtocolError(f"{client.url}/api/v1/log/publicKey is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProtocolError(f"{client.url}/api/v1/log/publicKey is not an ECDSA key; pin one with --log-key")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    log.warning("%s: no key pinned; trusting the log's key %s on first use", client.url, hashlib.sha256(spki).hexdigest()[:8])
    return Pins(spkis=(spki,))


def _audit_entries(
    client: LogClient,
    edge: CompactRange,
    begin: int,
    new: VerifiedCheckpoint,
    watcher: Watcher | None,
    checks: Sequence[EntryCheck] = (),
    bar: Progress | None = None,
) -> list[Match]:
    """Step (5): hash entries ``[begin, new.size)`` into ``edge``; collect watcher matches
    and the checks' findings."""
    matches: list[Match] = []
    sha = _sha256
    for start, bodies in client.entry_batches(begin, new.size):
        if start != edge.end:
            raise ProtocolError(f"expected entry {edge.end}, got a batch starting at {start}")
        edge.extend([sha(b"\x00" + b).digest() for b in bodies])
        if watcher is not None:
            for i, body in enumerate(bodies, start):
                try:
                    matches.extend(watcher.match(body, i))
                except Exception:  # a watcher bug must not stall the audit
                    log.exception("%s: the watcher failed on entry %d", client.url, i)
        for check in checks:
            try:
                matches.extend(check.check_batch(client, new.origin, start, bodies))
            except (LogUnreachable, ProtocolError):
                raise  # the log's fault: the pass fails, is retried, and no entry goes unchecked
            except Exception:  # a bug in a check must not stall the audit
                log.exception("%s: %r failed on entries %d-%d", client.url, check, start, start + len(bodies) - 1)
        if bar is not None:
            bar.update(len(bodies))
    if edge.end != new.size:
        raise ProtocolError(f"the log served entries up to {edge.end}, the checkpoint has {new.size}")
    return matches


def _first_bad_leaf(client: LogClient, begin: int, new: VerifiedCheckpoint) -> int | None:
    """The first entry in ``[begin, size)`` whose hash differs from the log's own
    level-0 tile: a diagnosis for the alert, only after the root did not match."""
    if client.mode != "tiles":
        return None
    try:
        leaves = client.leaf_hashes(begin, new.size, new.size)
        for (i, body), (j, leaf) in zip(client.entries(begin, new.size), leaves):
            if i != j or _sha256(b"\x00" + body).digest() != leaf:
                return i
    except Exception as exc:  # noqa: BLE001 - a diagnosis only; the alert goes out anyway
        log.warning("%s: could not locate the bad entry: %s", client.url, exc)
    return None


def _emit_match(alerts: AlertSink, match: Match, url: str, origin: str) -> dict[str, Any]:
    alert = dict(match.to_alert())
    alert.setdefault("type", "identity_match")
    alert.setdefault("log", url)
    alert.setdefault("origin", origin)
    alert.setdefault("message", "a watched value appeared in the log")
    alerts.emit(alert)
    return alert
