"""Scheduling: audit passes over every log, retries with backoff, ``--once`` exit status.

This is the only module that sleeps. One thread runs :func:`run`; the HTTP
side (``monitor.http``) and the gossip/witness modules share its
:class:`MonitorContext`.

A log that cannot be reached (:class:`~monitor.client.LogUnreachable`) is
retried after ``retry_delay * 2**(failures - 1)`` seconds, capped at the
interval, with jitter (a random 50-100% of the delay) so that monitors
restarted together do not retry in lockstep. After ``unreachable_threshold``
failed attempts in a row it raises one ``unreachable`` alert for the outage.

``--once`` makes one pass over every log (an unreachable log gets up to
``unreachable_threshold`` attempts) and then runs the per-cycle tasks (gossip)
once. Its exit status:

* **0** - every log was verified up to its latest checkpoint and no alert of a
  failure type (``inconsistent``, ``bad_signature``, ``split_view``,
  ``attestation_mismatch``) was raised; ``identity_match``,
  ``unexpected_publisher`` and ``attestation_missing`` alerts do not change
  the status;
* **1** - a verification failed: an ``inconsistent``, ``bad_signature``,
  ``split_view`` or ``attestation_mismatch`` alert was raised during the run;
* **3** - nothing failed verification, but some log could not be audited:
  unreachable after every retry, a malformed answer (``protocol_error``), or
  an internal error. (2 is click's status for a usage error.)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.alerts import FAILURE_TYPES, AlertSink
from monitor.audit import AuditResult, EntryCheck, Progress, Watcher, audit_log
from monitor.client import LogClient, LogUnreachable
from monitor.metrics import MonitorMetrics
from monitor.state import LogState, StateStore
from monitor.verify import Pins

__all__ = [
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "LogTarget",
    "MonitorContext",
    "attempt",
    "run",
    "run_once",
]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INCOMPLETE = 3


@dataclass
class LogTarget:
    """One ``--log``: its client, configured keys and retry bookkeeping."""

    client: LogClient
    pins: Pins | None = None
    failures: int = 0
    alerted: bool = False
    next_due: float = 0.0
    last: AuditResult | None = None

    @property
    def url(self) -> str:
        return self.client.url


@dataclass
class MonitorContext:
    """Everything a running monitor shares between its loop and its HTTP side.

    Hooks for the other modules:

    * ``on_verified`` - called as ``hook(ctx, state)`` after every pass that
      verified a log (grown or unchanged), with its :class:`LogState`; the
      witness adds the log's pinned keys here, the gossip its checkpoint;
    * ``tasks`` - called as ``task(ctx)`` once per cycle after the logs (every
      ``interval`` seconds; once with ``--once``); gossip exchanges with peers
      here and raises ``split_view`` through ``ctx.alerts``;
    * ``checks`` - entry checks given each batch of audited entries with the
      log's client (the trusted-publisher watch, ``--publisher-policy``);
    * ``progress`` - ``progress(origin, entries)`` makes a progress display
      for a catch-up (``--progress``; None: no display);
    * ``extensions`` - a place for their own objects, by name.
    """

    store: StateStore
    alerts: AlertSink
    targets: list[LogTarget]
    watcher: Watcher | None = None
    checks: list[EntryCheck] = field(default_factory=list)
    progress: Callable[[str, int], Progress] | None = None
    metrics: MonitorMetrics = field(default_factory=MonitorMetrics)
    state_dir: Path | None = None
    peers: list[str] = field(default_factory=list)
    interval: float = 60.0
    unreachable_threshold: int = 3
    retry_delay: float = 1.0
    stop: threading.Event = field(default_factory=threading.Event)
    on_verified: list[Callable[[MonitorContext, LogState], None]] = field(default_factory=list)
    tasks: list[Callable[[MonitorContext], None]] = field(default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Stop the loop, close the logs' HTTP connections and the alert file."""
        self.stop.set()
        for target in self.targets:
            target.client.close()
        self.alerts.close()

    def backoff(self, failures: int) -> float:
        """Seconds before attempt ``failures + 1``: exponential, capped, jittered."""
        delay = min(max(self.interval, self.retry_delay), self.retry_delay * 2 ** max(0, failures - 1))
        return delay * random.uniform(0.5, 1.0)


def attempt(ctx: MonitorContext, target: LogTarget) -> AuditResult:
    """One audit pass over ``target``, with failure bookkeeping; never raises for the log's faults.

    Unreachable: status ``unreachable``, and after ``unreachable_threshold``
    attempts in a row one ``unreachable`` alert. Unexpected exceptions (a bug,
    a broken state file) give status ``error``.
    """
    try:
        result = audit_log(
            target.client,
            ctx.store,
            target.pins,
            ctx.watcher,
            ctx.alerts,
            metrics=ctx.metrics,
            checks=ctx.checks,
            progress=ctx.progress,
        )
    except LogUnreachable as exc:
        target.failures += 1
        log.warning("%s: unreachable (attempt %d): %s", target.url, target.failures, exc)
        if target.failures >= ctx.unreachable_threshold and not target.alerted:
            target.alerted = True
            state = ctx.store.get_by_url(target.url)
            ctx.alerts.alert(
                "unreachable",
                f"the log did not answer {target.failures} times in a row: {exc}",
                log=target.url,
                origin=state.origin if state is not None else None,
                evidence={"attempts": target.failures, "error": str(exc)},
            )
        result = AuditResult(target.url, "unreachable", message=str(exc))
        ctx.metrics.attempt(target.url, reached=False, failures=target.failures)
        target.last = result
        return result
    except Exception as exc:
        log.exception("%s: the audit pass failed", target.url)
        target.failures += 1
        result = AuditResult(target.url, "error", message=f"{type(exc).__name__}: {exc}")
        ctx.metrics.attempt(target.url, reached=True, failures=target.failures)
        target.last = result
        return result
    if target.alerted:
        log.info("%s: reachable again after %d failed attempts", target.url, target.failures)
    target.alerted = False
    target.failures = 0 if result.ok else target.failures + 1
    ctx.metrics.attempt(target.url, reached=True, failures=target.failures)
    target.last = result
    if result.ok and result.state is not None:
        for hook in ctx.on_verified:
            try:
                hook(ctx, result.state)
            except Exception:
                log.exception("on_verified hook %r failed", hook)
    return result


def _run_tasks(ctx: MonitorContext) -> None:
    for task in ctx.tasks:
        try:
            task(ctx)
        except Exception:
            log.exception("monitor task %r failed", task)


def run_once(ctx: MonitorContext) -> int:
    """One pass over every log, then the tasks once; returns the exit status (module docstring)."""
    before = {t: ctx.alerts.counts[t] for t in FAILURE_TYPES}
    results: list[AuditResult] = []
    for target in ctx.targets:
        target.failures = 0
        conflicts = 0
        while not ctx.stop.is_set():
            result = attempt(ctx, target)
            if result.status == "unreachable" and target.failures < ctx.unreachable_threshold:
                ctx.stop.wait(ctx.backoff(target.failures))
                continue
            if result.status == "conflict" and conflicts == 0:
                conflicts += 1
                continue
            break
        results.append(target.last or AuditResult(target.url, "error", message="stopped"))
    _run_tasks(ctx)
    failed = any(ctx.alerts.counts[t] > before[t] for t in FAILURE_TYPES)
    failed = failed or any(r.alert_type in FAILURE_TYPES for r in results)
    if failed:
        return EXIT_FAILED
    if not all(r.ok for r in results):
        return EXIT_INCOMPLETE
    return EXIT_OK


def run_forever(ctx: MonitorContext) -> None:
    """Audit every log each ``interval`` seconds (sooner while retrying) until ``ctx.stop`` is set."""
    tasks_due = time.monotonic()
    while not ctx.stop.is_set():
        now = time.monotonic()
        for target in ctx.targets:
            if ctx.stop.is_set():
                return
            if target.next_due > now:
                continue
            result = attempt(ctx, target)
            now = time.monotonic()
            if result.status in ("unreachable", "error"):
                target.next_due = now + ctx.backoff(target.failures)
            elif result.status == "conflict":
                target.next_due = now
            else:
                target.next_due = now + ctx.interval
        if tasks_due <= now:
            _run_tasks(ctx)
            tasks_due = time.monotonic() + ctx.interval
        wake = min([t.next_due for t in ctx.targets] + [tasks_due])
        ctx.stop.wait(max(0.0, wake - time.monotonic()))


def run(ctx: MonitorContext, *, once: bool) -> int:
    """:func:`run_once` (returning its exit status) or :func:`run_forever` (returning 0 when stopped)."""
    if once:
        return run_once(ctx)
    run_forever(ctx)
    return EXIT_OK
