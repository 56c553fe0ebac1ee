"""Prometheus metrics of the log, correct across gunicorn's worker processes.

Under ``tlog serve`` every worker writes its samples to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` (set by the master before anything imports
``prometheus_client``), and ``/metrics`` aggregates them, so a scrape sees
the whole server and not whichever worker answered.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

HTTP_REQUESTS = Counter(
    "tlog_http_requests_total", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "tlog_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENTRIES_INTEGRATED = Counter("tlog_entries_integrated_total", "Entries appended to the log.")
DUPLICATES = Counter("tlog_duplicate_submissions_total", "Submissions refused as already in the log.")
BATCH_SIZE = Histogram(
    "tlog_integration_batch_entries",
    "Entries per integration batch (one transaction and one signed checkpoint each).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BATCH_DURATION = Histogram(
    "tlog_integration_batch_seconds",
    "Time to integrate one batch, lock wait and commit included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
INTEGRATION_FAILURES = Counter("tlog_integration_failures_total", "Batches that failed, by error category.", ["category"])
TREE_SIZE = Gauge("tlog_tree_size", "Size of the latest signed tree head seen by this server.", multiprocess_mode="max")


def render() -> bytes:
    """The exposition text: aggregated over workers when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
