"""The monitor's HTTP side (``--listen``): ``/metrics``, ``/healthz``, ``/logs`` and
the blueprints of the witness and the gossip.

The monitor is one process: gunicorn runs a single ``gthread`` worker, and
that worker builds the app and starts the audit loop (:func:`monitor.daemon.run`)
on a background thread, so the loop, the witness and the gossip share one
:class:`~monitor.daemon.MonitorContext`. Everything that must not be shared
across ``fork()`` (threads, connections) is created in the worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify

from monitor.daemon import MonitorContext, run
from monitor.metrics import CONTENT_TYPE
from tlog.server import GunicornApp

__all__ = ["create_app", "serve", "start_loop"]

log = logging.getLogger(__name__)


def create_app(ctx: MonitorContext, blueprints: Iterable[Blueprint] = ()) -> Flask:
    """The Flask app: ``/metrics`` and ``/healthz``, ``/logs``, then ``blueprints`` in order.

    ``ctx`` is available to views as ``current_app.extensions["monitor"]``.
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["monitor"] = ctx

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics of this monitor."""
        return Response(ctx.metrics.render(), content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness, and per log the status of its last pass."""
        return jsonify(
            {
                "status": "ok",
                "logs": {t.url: (t.last.status if t.last else "pending") for t in ctx.targets},
            }
        )

    @app.get("/logs")
    def logs() -> Response:
        """The last verified checkpoint of every log."""
        return jsonify(
            [
                {"origin": s.origin, "url": s.url, "size": s.size, "root_hash": s.root_hash.hex(), "checkpoint": s.checkpoint}
                for s in ctx.store.all()
            ]
        )

    for bp in blueprints:
        app.register_blueprint(bp)
    return app


def start_loop(ctx: MonitorContext) -> threading.Thread:
    """Run the audit loop (never ``--once``) on a daemon thread of this process."""
    thread = threading.Thread(target=run, args=(ctx,), kwargs={"once": False}, name="tlog-monitor-loop", daemon=True)
    thread.start()
    return thread


def serve(
    ctx: MonitorContext,
    *,
    host: str,
    port: int,
    blueprints: Callable[[MonitorContext], Iterable[Blueprint]] = lambda ctx: (),
    threads: int = 8,
) -> None:
    """Serve :func:`create_app` with gunicorn (one gthread worker) and run the loop in that worker.

    ``blueprints`` is called in the worker, so the witness and gossip may open
    their own files and threads there.
    """

    def factory() -> Flask:
        app = create_app(ctx, blueprints(ctx))
        start_loop(ctx)
        return app

    def worker_exit(_server: Any, _worker: Any) -> None:
        ctx.stop.set()

    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "tlog-monitor",
        "worker_exit": worker_exit,
        "control_socket_disable": True,
    }
    log.info("tlog-monitor listening on %s", options["bind"])
    GunicornApp(factory, options).run()
