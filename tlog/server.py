"""Production serving: gunicorn with threaded workers, configured from ``Settings``.

The master process migrates the schema, creates the keys and the log once,
then forks the workers; each worker builds its own app (engine, pool and
sequencer thread are never shared across a fork).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from tlog.config import Settings

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Two processes per core: signature checks are CPU-bound under each process's
    GIL, and with the writer in its own process a request thread mostly waits
    for its batch. Measured on 2 cores at 64 clients: 1,256 submissions/s with
    2 workers, 1,499 with 4, 1,442 with 6 (16 threads each)."""
    return 2 * (os.cpu_count() or 1)


class GunicornApp(BaseApplication):  # type: ignore[misc]
    """gunicorn run from code: ``options`` are gunicorn settings, ``factory``
    builds the WSGI app in each worker after the fork (no preload)."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory()


def _create_app(settings: Settings) -> Any:
    from tlog.api.app import create_app

    return create_app(settings, migrate=False)


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def start_witness_collector(settings: Settings) -> None:
    """Run the cosignature collector as a thread of this process (`tlog serve --debug`; the writer runs its own)."""
    if settings.witnesses is None:
        return
    from tlog.api.state import Services
    from tlog.witnessing import CosignatureCollector, load_witnesses

    witnesses = load_witnesses(settings.witnesses)
    svc = Services.open(settings.replace(ca=False), migrate=False)
    CosignatureCollector(svc.log, witnesses).start()
    log.info("collecting cosignatures from %d witness(es)", len(witnesses))


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Prepare storage and keys in this process, then run gunicorn until stopped."""
    # Must be set before prometheus_client is first imported (by the app's
    # modules, below): it picks its multi-process value class at import time.
    metrics_dir = tempfile.mkdtemp(prefix="tlog-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from tlog.api.state import Services

    Services.open(settings, migrate=True).engine.dispose()
    if settings.witnesses is not None:
        from tlog.witnessing import load_witnesses

        load_witnesses(settings.witnesses)  # fail at start, not in a background thread
    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        # Requests are bounded by MAX_CONTENT_LENGTH in the app; these cap the header part.
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "tlog",
        "child_exit": _child_exit,
        # No database work in this process (gunicorn's master): a fork taken
        # while another thread is inside SQLite can leave the worker with a
        # held SQLite mutex. The witness collector runs in the writer.
        # gunicorn's control socket defaults to one per-user path, which
        # several servers on one machine would fight over; we do not use it.
        "control_socket_disable": True,
    }
    # One writer process integrates what every worker submits (tlog.writer).
    from tlog.writer import WriterProcess

    writer = WriterProcess(settings)
    writer.start()
    log.info("serving on %s with %d workers x %d threads", options["bind"], workers, threads)
    # Every request thread may hold a connection at once.
    worker_settings = settings.replace(pool_size=max(settings.pool_size, threads + 4), writer_socket=writer.socket_path)
    master = os.getpid()
    try:
        GunicornApp(lambda: _create_app(worker_settings), options).run()
    finally:
        # Workers are forks of this process and leave through here too (their
        # SystemExit unwinds this very call): only the master cleans up.
        if os.getpid() == master:
            writer.stop()
            shutil.rmtree(metrics_dir, ignore_errors=True)
