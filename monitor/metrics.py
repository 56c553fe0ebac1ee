"""Prometheus metrics of the monitor, in a registry of its own (served at ``/metrics``).

=============================================  =========================================
tlog_monitor_verified_size{origin}             size of the last verified checkpoint
tlog_monitor_seen_size{origin}                 size of the last correctly signed checkpoint
tlog_monitor_lag_entries{origin}               seen - verified (entries not yet audited)
tlog_monitor_last_success_timestamp{origin}    POSIX time of the last successful pass
tlog_monitor_entries_audited_total{origin}     entries fetched and hashed by this process
tlog_monitor_alerts_total{type}                alerts raised, by type
tlog_monitor_up{log}                           1 if the last attempt reached the log
tlog_monitor_consecutive_failures{log}         failed attempts in a row (any reason)
=============================================  =========================================
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from monitor.alerts import ALERT_TYPES

__all__ = ["CONTENT_TYPE", "MonitorMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MonitorMetrics:
    """The monitor's gauges and counters; each instance has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.verified_size = Gauge(
            "tlog_monitor_verified_size", "Size of the last verified checkpoint.", ["origin"], registry=r
        )
        self.seen_size = Gauge(
            "tlog_monitor_seen_size", "Size of the last correctly signed checkpoint seen.", ["origin"], registry=r
        )
        self.lag = Gauge(
            "tlog_monitor_lag_entries", "Entries in the latest signed checkpoint not verified yet.", ["origin"], registry=r
        )
        self.last_success = Gauge(
            "tlog_monitor_last_success_timestamp",
            "POSIX time of the last pass that verified the log.",
            ["origin"],
            registry=r,
        )
        self.entries_audited = Counter(
            "tlog_monitor_entries_audited", "Entries fetched, hashed and verified.", ["origin"], registry=r
        )
        self.alerts = Counter("tlog_monitor_alerts", "Alerts raised, by type.", ["type"], registry=r)
        self.up = Gauge("tlog_monitor_up", "1 if the last attempt reached the log, else 0.", ["log"], registry=r)
        self.failures = Gauge(
            "tlog_monitor_consecutive_failures", "Failed passes in a row.", ["log"], registry=r
        )
        for t in ALERT_TYPES:
            self.alerts.labels(t)  # present at 0 from the start, so rate() works

    def on_alert(self, alert: dict[str, Any]) -> None:
        """An :class:`~monitor.alerts.AlertSink` listener."""
        self.alerts.labels(str(alert.get("type"))).inc()

    def verified(self, origin: str, size: int, *, seen: int, audited: int, at: float) -> None:
        """Record a successful pass."""
        self.verified_size.labels(origin).set(size)
        self.seen(origin, seen, verified=size)
        self.last_success.labels(origin).set(at)
        if audited:
            self.entries_audited.labels(origin).inc(audited)

    def seen(self, origin: str, size: int, *, verified: int | None) -> None:
        """Record a correctly signed checkpoint, verified or not (yet)."""
        self.seen_size.labels(origin).set(size)
        if verified is not None:
            self.lag.labels(origin).set(max(0, size - verified))

    def attempt(self, log: str, *, reached: bool, failures: int) -> None:
        """Record the outcome of one attempt at a log."""
        self.up.labels(log).set(1 if reached else 0)
        self.failures.labels(log).set(failures)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
