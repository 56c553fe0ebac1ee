"""Gossip between monitors: detect a log showing different histories (a split view).

A log that wants to fool one victim must show it a tree the rest of the world
never sees. Each monitor's own audit cannot notice that: every checkpoint it
receives is consistent with the previous ones *it* saw. Monitors therefore
compare notes.

Protocol
--------
Every monitor serves (:func:`gossip_blueprint`)::

    GET /gossip/checkpoints
    200 application/json
    {"checkpoints": [{"origin": "<origin>", "checkpoint": "<signed note text>"}, ...]}

one entry per log origin, holding the latest checkpoint its audit *verified*
(signature, consistency and entries), read from the state store. Nothing else
is exchanged: peers need no keys, no accounts and no trust.

Checking a peer
---------------
A :class:`Gossiper` pulls every peer's list once per ``interval`` seconds. For
each entry whose origin we also follow:

1. The peer's checkpoint is verified with **our** pinned keys for that origin
   (``LogState.vkeys``, through :func:`tlog.note.verifier_from_vkey`). Peers
   are not trusted: a checkpoint that does not verify, is malformed, names
   another origin, or belongs to a log we do not follow is logged and skipped,
   never alerted on. Only the first entry per origin of a peer's answer that
   verifies is compared; later ones for that origin are ignored.
2. It is compared with our latest verified state of that origin:

   * same size, same root: nothing to do;
   * same size, different roots: **split view** -- two checkpoints the log
     signed cannot both be true;
   * different sizes: the log is asked (``proof_fetcher(origin, smaller,
     larger)``, which the daemon wires to the log's consistency-proof API)
     for a proof that the smaller tree is a prefix of the larger, checked
     with :func:`tlog.merkle.verify_consistency`. If the proof does not
     verify, or the log refuses to give one, that is a split view. A size-0
     tree must have the empty root (SHA-256 of nothing) and needs no proof.

   Consistent pairs are remembered (an LRU), so an unchanged peer costs one
   HTTP request per round and no proof.

``proof_fetcher`` failures come in two kinds. *Inconclusive* ones --
:class:`Inconclusive`, ``monitor.client.LogUnreachable``,
``requests.ConnectionError``/``Timeout``, ``ConnectionError``, ``TimeoutError``
-- mean the log could not be reached right now: the pair is retried next
round and nothing is alerted (an unreachable log is the audit's
``unreachable`` alert). Any other exception -- ``monitor.client.ProtocolError``
for an HTTP 4xx or a malformed answer, for instance -- is the log refusing to
prove consistency with a checkpoint it signed, which is a split view.

Alerts
------
Sent through ``alerts.emit(dict)``::

    {"type": "split_view", "origin": ..., "log": <our log URL>, "message": ...,
     "evidence": {"ours": "<our checkpoint>", "peer": "<peer checkpoint>",
                  "peer_url": ..., "check": "same_size_different_root" |
                  "consistency_proof" | "proof_refused" | "empty_root",
                  "ours_size": ..., "peer_size": ..., ["proof": [hex...]], ["error": ...]}}

Both signed checkpoints are in the evidence, so anyone holding the log's
public key can re-check the claim. A split view found once is re-emitted every
round while it lasts; the alert sink drops repeats of identical alerts.

Peers are untrusted input: answers are capped (:data:`MAX_RESPONSE_BYTES`,
:data:`MAX_PEER_CHECKPOINTS` entries, :data:`MAX_CHECKPOINT_CHARS` per note),
requests have connect/read timeouts and an overall deadline, and nothing a
peer sends can raise out of :meth:`Gossiper.check_peer`.

Wiring (daemon / CLI)
---------------------
``monitor.cli`` calls :func:`install` with its ``MonitorContext``; it adds the
gossip round to the context's per-cycle tasks and returns the blueprint. By
hand::

    gossiper = Gossiper(peers, store, alerts, proof_fetcher, interval=300)
    gossiper.start()            # background thread; gossiper.stop() to end it
    # or, from the daemon's own loop:   gossiper.run_if_due()
    # or, for --once:                   reports = gossiper.check_once()
    app.register_blueprint(gossip_blueprint(store))

where ``proof_fetcher = lambda origin, size1, size2:
clients[origin].consistency_proof(size1, size2)``.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
import urllib3
from flask import Blueprint, Response, jsonify

from tlog.checkpoint import Checkpoint, open_checkpoint
from tlog.merkle import EMPTY_ROOT, verify_consistency
from tlog.note import NoteError, NoteVerifier, verifier_from_vkey

try:  # the core's client, if present: its error classes decide retry vs. refusal
    from monitor.client import LogUnreachable as _LogUnreachable
except ImportError:  # pragma: no cover - monitor.client is part of the package
    _LogUnreachable = None  # type: ignore[assignment,misc]

__all__ = [
    "GOSSIP_PATH",
    "MAX_CHECKPOINT_CHARS",
    "MAX_PEER_CHECKPOINTS",
    "MAX_RESPONSE_BYTES",
    "Gossiper",
    "Inconclusive",
    "PeerReport",
    "check_peer_once",
    "gossip_blueprint",
    "install",
    "peer_endpoint",
]

log = logging.getLogger(__name__)

GOSSIP_PATH = "/gossip/checkpoints"
MAX_RESPONSE_BYTES = 1 << 20
"""Largest peer answer read (bytes); larger ones are dropped unread past this point."""
MAX_PEER_CHECKPOINTS = 1000
"""Most entries of one peer answer looked at."""
MAX_CHECKPOINT_CHARS = 64 * 1024
"""Longest checkpoint note accepted from a peer."""
_REMEMBERED = 4096
USER_AGENT = "tlog-monitor-gossip/0.1"


class Inconclusive(Exception):
    """Raised by a ``proof_fetcher`` that could not reach the log: retry later, do not alert."""


_INCONCLUSIVE: tuple[type[BaseException], ...] = (
    Inconclusive,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
) + ((_LogUnreachable,) if _LogUnreachable is not None else ())


class AlertSinkLike(Protocol):
    def emit(self, alert: dict[str, Any]) -> Any: ...


class StateLike(Protocol):
    """What gossip reads from ``monitor.state.LogState``."""

    origin: str
    url: str
    size: int
    root_hash: bytes
    checkpoint: str | bytes
    vkeys: Sequence[str]


class StoreLike(Protocol):
    def all(self) -> Sequence[StateLike]: ...


ProofFetcher = Callable[[str, int, int], Sequence[bytes]]


def peer_endpoint(peer: str) -> str:
    """The gossip URL of a peer given by its base URL (or already by the full endpoint)."""
    peer = peer.strip()
    if peer.rstrip("/").endswith(GOSSIP_PATH):
        return peer.rstrip("/")
    return peer.rstrip("/") + GOSSIP_PATH


# ---------------------------------------------------------------------------
# Serving.


def gossip_blueprint(store: StoreLike, *, name: str = "gossip") -> Blueprint:
    """``GET /gossip/checkpoints``: the latest verified checkpoint of every log in ``store``.

    Register with ``app.register_blueprint(gossip_blueprint(store))``.
    """
    bp = Blueprint(name, __name__)

    @bp.get(GOSSIP_PATH)
    def checkpoints() -> Response | tuple[Response, int]:
        try:
            states = store.all()
        except Exception:
            log.exception("gossip: cannot read the state store")
            return jsonify({"error": "state unavailable"}), 503
        out = []
        for state in states:
            note = _text(getattr(state, "checkpoint", None))
            if note:
                out.append({"origin": state.origin, "checkpoint": note})
        response = jsonify({"checkpoints": out})
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


# ---------------------------------------------------------------------------
# Checking peers.


@dataclass
class PeerReport:
    """What one check of one peer found.

    ``ok`` is False if the peer could not be fetched or parsed (``error``
    says why). ``compared`` lists the origins whose checkpoints were compared
    with ours, ``consistent`` those found consistent, ``inconclusive`` those
    whose proof could not be fetched this time, and ``skipped`` explains the
    peer entries that were ignored.
    """

    peer: str
    ok: bool = True
    error: str | None = None
    compared: list[str] = field(default_factory=list)
    consistent: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class PeerError(Exception):
    """A peer's answer could not be used."""


class Gossiper:
    """Pulls peers' checkpoints and raises ``split_view`` alerts; see the module docstring.

    ``peers``: base URLs of other monitors. ``store``: our state store
    (``.all()``). ``alerts``: anything with ``emit(dict)``. ``proof_fetcher``:
    ``(origin, size1, size2) -> list of 32-byte hashes`` from the log of
    ``origin``. ``interval`` (seconds, with ``jitter`` as a fraction) paces
    :meth:`start` and :meth:`run_if_due`; ``timeout`` bounds each peer
    request. Thread-safe: one round runs at a time.
    """

    def __init__(
        self,
        peers: Iterable[str],
        store: StoreLike,
        alerts: AlertSinkLike,
        proof_fetcher: ProofFetcher,
        *,
        interval: float = 300.0,
        jitter: float = 0.1,
        timeout: float = 10.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers = [p for p in dict.fromkeys(p.strip() for p in peers) if p]
        self.store = store
        self.alerts = alerts
        self.proof_fetcher = proof_fetcher
        self.interval = float(interval)
        self.jitter = float(jitter)
        self.timeout = float(timeout)
        self.max_response_bytes = int(max_response_bytes)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.max_redirects = 3
        self._session = session
        self._clock = clock
        self._round_lock = threading.Lock()
        self._next_round: float | None = None
        self._consistent: collections.OrderedDict[tuple[Any, ...], None] = collections.OrderedDict()
        self._verifiers: dict[tuple[str, ...], list[NoteVerifier]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: counters: rounds, peer_errors, compared, consistent, inconclusive, split_views, skipped, proofs_fetched
        self.stats: collections.Counter[str] = collections.Counter()

    # -- scheduling ---------------------------------------------------------

    def check_once(self) -> list[PeerReport]:
        """One round over every peer, now. Returns a report per peer."""
        with self._round_lock:
            self.stats["rounds"] += 1
            states = self._our_states()
            return [self._check_peer(peer, states) for peer in self.peers]

    def run_if_due(self) -> list[PeerReport] | None:
        """Run a round if ``interval`` has passed since the last one (the first call runs at once).

        For a daemon that drives its own loop; returns None when not due.
        """
        now = self._clock()
        if self._next_round is not None and now < self._next_round:
            return None
        self._next_round = now + self._delay()
        return self.check_once()

    def start(self) -> threading.Thread:
        """Run rounds every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tlog-monitor-gossip", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:
                log.exception("gossip round failed")
            self._stop.wait(self._delay())

    def _delay(self) -> float:
        spread = self.interval * self.jitter
        return max(0.0, self.interval + random.uniform(-spread, spread))

    # -- one peer -----------------------------------------------------------

    def check_peer(self, peer: str) -> PeerReport:
        """Fetch ``peer``'s checkpoints and compare them with ours (never raises)."""
        with self._round_lock:
            return self._check_peer(peer, self._our_states())

    def _our_states(self) -> dict[str, StateLike]:
        try:
            return {s.origin: s for s in self.store.all() if _text(getattr(s, "checkpoint", None))}
        except Exception:
            log.exception("gossip: cannot read the state store")
            return {}

    def _check_peer(self, peer: str, ours: dict[str, StateLike]) -> PeerReport:
        report = PeerReport(peer)
        try:
            entries = self._fetch(peer)
        except PeerError as exc:
            self.stats["peer_errors"] += 1
            report.ok, report.error = False, str(exc)
            log.warning("gossip: peer %s: %s", peer, exc)
            return report
        seen: set[str] = set()
        for origin, note in entries:
            try:
                self._check_entry(peer, origin, note, ours, seen, report)
            except Exception as exc:
                log.exception("gossip: peer %s, origin %r: unexpected error", peer, origin)
                report.skipped.append(f"{origin!r}: internal error: {exc}")
        self.stats["skipped"] += len(report.skipped)
        return report

    def _check_entry(
        self,
        peer: str,
        origin: str,
        note: str,
        ours: dict[str, StateLike],
        seen: set[str],
        report: PeerReport,
    ) -> None:
        state = ours.get(origin)
        if state is None:
            report.skipped.append(f"{origin!r}: not a log we follow")
            return
        if origin in seen:
            report.skipped.append(f"{origin!r}: listed more than once")
            return
        try:
            verifiers = self._verifiers_for(tuple(state.vkeys))
            checkpoint, _, _ = open_checkpoint(note, verifiers)
        except NoteError as exc:  # CheckpointError, InvalidSignatureError, UnverifiedNoteError
            log.warning("gossip: peer %s sent a checkpoint for %r that does not verify: %s", peer, origin, exc)
            report.skipped.append(f"{origin!r}: checkpoint does not verify: {exc}")
            return
        if checkpoint.origin != origin:
            report.skipped.append(f"{origin!r}: the checkpoint is for {checkpoint.origin!r}")
            return
        seen.add(origin)
        report.compared.append(origin)
        self.stats["compared"] += 1
        outcome = self._compare(state, checkpoint, note, peer)
        if outcome is None:
            report.consistent.append(origin)
            self.stats["consistent"] += 1
        elif outcome == "inconclusive":
            report.inconclusive.append(origin)
            self.stats["inconclusive"] += 1
        else:
            self.stats["split_views"] += 1
            report.alerts.append(outcome)
            self.alerts.emit(dict(outcome))

    def _verifiers_for(self, vkeys: tuple[str, ...]) -> list[NoteVerifier]:
        cached = self._verifiers.get(vkeys)
        if cached is None:
            unique: dict[tuple[str, bytes], NoteVerifier] = {}
            for value in vkeys:
                v = verifier_from_vkey(value)
                unique.setdefault((v.name, bytes(v.key_id)), v)
            cached = list(unique.values())
            if len(self._verifiers) > 256:
                self._verifiers.clear()
            self._verifiers[vkeys] = cached
        if not cached:
            raise NoteError("no keys are pinned for this log")
        return cached

    def _compare(
        self, state: StateLike, peer_cp: Checkpoint, peer_note: str, peer: str
    ) -> dict[str, Any] | str | None:
        """None (consistent), "inconclusive", or a split_view alert."""
        origin = state.origin
        ours_size, ours_root = int(state.size), bytes(state.root_hash)
        ours_note = _text(state.checkpoint)

        def split(check: str, message: str, **extra: Any) -> dict[str, Any]:
            log.error("gossip: SPLIT VIEW of %r (peer %s): %s", origin, peer, message)
            return {
                "type": "split_view",
                "origin": origin,
                "log": state.url,
                "message": f"split view of {origin}: {message} (peer {peer})",
                "evidence": {
                    "check": check,
                    "ours": ours_note,
                    "peer": peer_note,
                    "peer_url": peer,
                    "ours_size": ours_size,
                    "peer_size": peer_cp.size,
                    **extra,
                },
            }

        if peer_cp.size == ours_size:
            if peer_cp.root_hash != ours_root:
                return split(
                    "same_size_different_root",
                    f"the log signed two different roots for size {ours_size}",
                )
            return None
        if peer_cp.size < ours_size:
            size1, root1, size2, root2 = peer_cp.size, peer_cp.root_hash, ours_size, ours_root
        else:
            size1, root1, size2, root2 = ours_size, ours_root, peer_cp.size, peer_cp.root_hash
        if size1 == 0:
            if root1 != EMPTY_ROOT:
                return split("empty_root", "the log signed an empty tree with a root other than SHA-256('')")
            return None
        key = (origin, size1, root1, size2, root2)
        if key in self._consistent:
            self._consistent.move_to_end(key)
            return None
        try:
            self.stats["proofs_fetched"] += 1
            proof = list(self.proof_fetcher(origin, size1, size2))
        except _INCONCLUSIVE as exc:
            log.warning(
                "gossip: no consistency proof %d -> %d for %r right now (%s); retrying next round",
                size1,
                size2,
                origin,
                exc,
            )
            return "inconclusive"
        except Exception as exc:  # noqa: BLE001 - the log refused: that is the finding
            return split(
                "proof_refused",
                f"the log refused a consistency proof from size {size1} to {size2}: {exc}",
                error=f"{type(exc).__name__}: {exc}",
            )
        try:
            verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)
        except Exception as exc:  # noqa: BLE001 - ProofError, or a proof that is not even hashes
            return split(
                "consistency_proof",
                f"the log's consistency proof from size {size1} to {size2} does not verify: {exc}",
                proof=[h.hex() if isinstance(h, (bytes, bytearray)) else repr(h) for h in proof],
                error=f"{type(exc).__name__}: {exc}",
            )
        self._consistent[key] = None
        if len(self._consistent) > _REMEMBERED:
            self._consistent.popitem(last=False)
        return None

    # -- fetching -----------------------------------------------------------

    def _fetch(self, peer: str) -> list[tuple[str, str]]:
        """The (origin, checkpoint) pairs a peer lists; PeerError if its answer is unusable."""
        url = peer_endpoint(peer)
        deadline = time.monotonic() + 3 * self.timeout
        try:
            resp = self._session.get(
                url,
                timeout=(self.timeout, self.timeout),
                stream=True,
                headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            )
        except requests.RequestException as exc:
            raise PeerError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        with resp:
            if resp.status_code != 200:
                raise PeerError(f"GET {url}: HTTP {resp.status_code}")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_response_bytes:
                raise PeerError(f"GET {url}: answer of {declared} bytes is over the {self.max_response_bytes} byte limit")
            body = self._read_capped(resp, url, deadline)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise PeerError(f"GET {url}: the answer is not JSON") from None
        items = doc.get("checkpoints") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise PeerError(f"GET {url}: the answer has no 'checkpoints' list")
        if len(items) > MAX_PEER_CHECKPOINTS:
            log.warning("gossip: peer %s lists %d checkpoints; reading the first %d", peer, len(items), MAX_PEER_CHECKPOINTS)
        out: list[tuple[str, str]] = []
        for item in items[:MAX_PEER_CHECKPOINTS]:
            if not isinstance(item, dict):
                continue
            origin, note = item.get("origin"), item.get("checkpoint")
            if not (isinstance(origin, str) and isinstance(note, str)) or not origin or not note:
                continue
            if len(note) > MAX_CHECKPOINT_CHARS or len(origin) > 1024:
                continue
            out.append((origin, note))
        return out

    def _read_capped(self, resp: requests.Response, url: str, deadline: float) -> bytes:
        """The body, read one socket read at a time so that both the size cap and the
        overall deadline hold even against a peer trickling bytes."""
        raw = resp.raw
        read = getattr(raw, "read1", None) or raw.read  # urllib3 >= 2.3 has read1
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise PeerError(f"GET {url}: answer took longer than {3 * self.timeout:g}s")
                chunk = read(64 * 1024)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_response_bytes:
                    raise PeerError(f"GET {url}: answer is over the {self.max_response_bytes} byte limit")
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, ValueError) as exc:
            raise PeerError(f"GET {url}: reading the answer failed: {type(exc).__name__}: {exc}") from None
        return b"".join(chunks)


def check_peer_once(
    peer: str,
    store: StoreLike,
    alerts: AlertSinkLike,
    proof_fetcher: ProofFetcher,
    *,
    timeout: float = 10.0,
    session: requests.Session | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> PeerReport:
    """Check one peer now (``--once`` and tests); split views go to ``alerts`` and the report."""
    gossiper = Gossiper(
        [peer], store, alerts, proof_fetcher, timeout=timeout, session=session, max_response_bytes=max_response_bytes
    )
    return gossiper.check_peer(peer)


def install(ctx: Any) -> Blueprint:
    """Wire gossip into a running monitor (``monitor.cli`` calls this when ``--peer`` is given).

    ``ctx`` is a ``monitor.daemon.MonitorContext``: its ``peers``, ``store``,
    ``alerts`` and ``targets`` (whose ``LogClient.consistency_proof`` answers
    the proof requests, chosen by the URL our state records for the origin).
    Adds a per-cycle task (``ctx.tasks``: every ``interval``, and once with
    ``--once``, so a split view makes ``--once`` exit 1), keeps the
    :class:`Gossiper` in ``ctx.extensions["gossiper"]`` and returns the
    blueprint to serve.
    """

    def proof_fetcher(origin: str, size1: int, size2: int) -> Sequence[bytes]:
        state = ctx.store.get(origin)
        url = state.url.rstrip("/") if state is not None else None
        for target in ctx.targets:
            if target.url.rstrip("/") == url:
                return target.client.consistency_proof(size1, size2)  # type: ignore[no-any-return]
        raise Inconclusive(f"no configured log serves {origin!r} (last fetched from {url})")

    gossiper = Gossiper(ctx.peers, ctx.store, ctx.alerts, proof_fetcher, interval=ctx.interval)
    ctx.extensions["gossiper"] = gossiper

    def gossip_task(_ctx: Any) -> None:
        gossiper.check_once()

    ctx.tasks.append(gossip_task)
    return gossip_blueprint(ctx.store)

def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else ""
