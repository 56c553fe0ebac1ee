"""Alerts: one JSON object per line, to a file or stdout, optionally POSTed to a webhook.

Every alert has at least::

    {"type": "...", "time": "2026-01-02T03:04:05Z", "log": "<url>", "origin": "<origin>",
     "message": "...", "evidence": {...}}

plus ``"log_index"`` where one entry is concerned. Types raised by the core:
``inconsistent``, ``bad_signature``, ``unreachable``, ``protocol_error``,
``identity_match``; the gossip adds ``split_view``; the trusted-publisher
watch (:mod:`monitor.publisher_watch`) adds ``unexpected_publisher``,
``attestation_mismatch`` and ``attestation_missing``. :data:`FAILURE_TYPES`
are the ones that mean a log misbehaved (``--once`` exits 1 on them).

A line written to a file is flushed and fsync'd before :meth:`AlertSink.emit`
returns. A webhook gets the same JSON object as the body of a POST; a webhook
that fails is logged, never fatal, and does not stop the line being written.

Identical alerts (same type, log, index and evidence) are written once per
``repeat_after`` seconds, so a daemon watching a forked log does not repeat
the same evidence every pass; :attr:`AlertSink.counts` counts them all.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import requests

__all__ = ["ALERT_TYPES", "FAILURE_TYPES", "AlertSink"]

log = logging.getLogger(__name__)

ALERT_TYPES = (
    "inconsistent",
    "bad_signature",
    "split_view",
    "identity_match",
    "unreachable",
    "protocol_error",
    "unexpected_publisher",
    "attestation_mismatch",
    "attestation_missing",
)
#: Alert types that are evidence of a misbehaving log (or of an attack on the monitor):
#: ``attestation_mismatch`` is a log serving another statement than the one it logged.
FAILURE_TYPES = frozenset({"inconsistent", "bad_signature", "split_view", "attestation_mismatch"})
_MAX_REMEMBERED = 10_000


class AlertSink:
    """Writes alerts to ``path`` (``"-"``: stdout) and POSTs them to ``webhook_url``.

    Thread-safe. ``listeners`` are called with each alert dict that is written
    (metrics use this).
    """

    def __init__(
        self,
        path: str | Path = "-",
        webhook_url: str | None = None,
        *,
        webhook_timeout: float = 10.0,
        repeat_after: float = 24 * 3600,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.webhook_url = webhook_url
        self.webhook_timeout = webhook_timeout
        self.repeat_after = repeat_after
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._seen: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def alert(
        self,
        type: str,
        message: str,
        *,
        log: str | None = None,
        origin: str | None = None,
        log_index: int | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build an alert and :meth:`emit` it; returns the alert."""
        alert: dict[str, Any] = {"type": type, "log": log, "origin": origin, "message": message}
        if log_index is not None:
            alert["log_index"] = log_index
        alert["evidence"] = dict(evidence or {})
        self.emit(alert)
        return alert

    def emit(self, alert: dict[str, Any]) -> bool:
        """Write ``alert`` (a dict with at least ``type`` and ``message``).

        Fills in ``time`` (RFC 3339, UTC) if absent. Returns False if an
        identical alert was written less than ``repeat_after`` seconds ago.
        """
        if "type" not in alert or "message" not in alert:
            raise ValueError("an alert needs a type and a message")
        now = self._clock()
        alert.setdefault("evidence", {})
        key = _dedupe_key(alert)
        with self._lock:
            self.counts[alert["type"]] += 1
            last = self._seen.get(key)
            if last is not None and now - last < self.repeat_after:
                return False
            self._seen[key] = now
            if len(self._seen) > _MAX_REMEMBERED:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.repeat_after}
            alert.setdefault(
                "time",
                datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            self._write(json.dumps(alert, sort_keys=False, default=str))
        for listener in self.listeners:
            listener(alert)
        if self.webhook_url:
            self._post(alert)
        return True

    def _write(self, line: str) -> None:
        if self.path == "-":
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        if self._file is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open, closed in close()
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def _post(self, alert: dict[str, Any]) -> None:
        session = self._session or requests
        try:
            resp = session.post(self.webhook_url, json=alert, timeout=self.webhook_timeout)  # type: ignore[arg-type]
            if resp.status_code >= 300:
                log.warning("alert webhook %s answered HTTP %d", self.webhook_url, resp.status_code)
        except requests.RequestException as exc:
            log.warning("alert webhook %s failed: %s", self.webhook_url, exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _dedupe_key(alert: Mapping[str, Any]) -> str:
    ident = {k: alert.get(k) for k in ("type", "log", "origin", "log_index", "evidence")}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
