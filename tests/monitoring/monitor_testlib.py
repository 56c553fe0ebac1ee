"""Helpers for the monitor core tests: real logs built fast, served by real
``tlog serve`` processes, and a tampering proxy.

Logs are written straight through ``tlog.sequencer.integrate`` (one
transaction per batch) on the SQLite file in the log's data directory, which a
:class:`conftest.LiveServer` serves at the same time; no HTTP submission, so
a test log of a few thousand entries takes a fraction of a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

import speclient
from conftest import LiveServer, free_port

from tlog.config import Settings

MONITOR = str(Path(sys.executable).with_name("tlog-monitor"))
ORIGIN = "monitor.test/log"


def settings_for(data_dir: Path, origin: str = ORIGIN) -> Settings:
    """SQLite in ``data_dir`` (so copying the directory copies the whole log), no CA."""
    return Settings(data_dir=data_dir, origin=origin, ca=False)


class LogBuilder:
    """Appends hashedrekord entries to the log in ``settings.data_dir`` directly."""

    _identity: speclient.Identity | None = None

    def __init__(self, settings: Settings) -> None:
        from tlog.api.state import Services

        self.settings = settings
        self.services = Services.open(settings, migrate=True)
        self.log = self.services.log

    @classmethod
    def identity(cls) -> speclient.Identity:
        if cls._identity is None:
            cls._identity = speclient.make_identity("builder@example.com")
        return cls._identity

    def append(self, count: int, *, batch: int = 500) -> int:
        """Append ``count`` fresh entries; returns the new size."""
        from tlog import entries
        from tlog.sequencer import integrate

        ident = self.identity()
        pending = []
        for _ in range(count):
            req, _digest = speclient.hashedrekord(ident)
            pending.append(entries.canonicalize(req))
            if len(pending) == batch:
                integrate(self.log, pending)
                pending = []
        if pending:
            integrate(self.log, pending)
        return self.size()

    def size(self) -> int:
        return self.log.latest_head().size

    def close(self) -> None:
        self.services.engine.dispose()


def build_log(data_dir: Path, count: int, origin: str = ORIGIN) -> Settings:
    settings = settings_for(data_dir, origin)
    builder = LogBuilder(settings)
    try:
        if count:
            builder.append(count)
    finally:
        builder.close()
    return settings


def fork_log(src: Path, dst: Path) -> Settings:
    """Copy a stopped log's data directory (keys and database): same origin, same keys."""
    shutil.copytree(src, dst)
    return settings_for(dst)


def append(settings: Settings, count: int) -> int:
    builder = LogBuilder(settings)
    try:
        return builder.append(count)
    finally:
        builder.close()


def serve(settings: Settings, *, port: int | None = None, access_log: bool = False) -> LiveServer:
    """A started ``tlog serve`` (1 worker) on ``port`` (default: a free one)."""
    extra = ("--no-ca", "--access-log") if access_log else ("--no-ca",)
    server = LiveServer(settings, workers=1, threads=8, extra_args=extra)
    if port is not None:
        server.port = port
        server.url = f"http://127.0.0.1:{port}"
    return server.start()


class InProcessServer:
    """The real tlog app (``tlog.api.app.create_app``) behind werkzeug's threaded
    HTTP server on a thread of the test process: the same endpoints as ``tlog
    serve`` over real HTTP, but it starts and stops in milliseconds."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        from tlog.api.app import create_app

        self.settings = settings
        self.app = create_app(settings)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.app.extensions["tlog"].engine.dispose()


def serve_fast(settings: Settings, *, port: int | None = None) -> InProcessServer:
    return InProcessServer(settings, port)


def run_monitor(*args: str, timeout: float = 120) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``tlog-monitor ARGS`` (alerts to stdout); returns (status, alerts, stderr)."""
    proc = subprocess.run([MONITOR, *args], capture_output=True, text=True, timeout=timeout)
    alerts = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, alerts, proc.stderr


class CountingSession(requests.Session):
    """A requests session that records every URL path it fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            self.paths.append(str(url).split("/", 3)[3] if str(url).count("/") >= 3 else str(url))
        return super().request(method, url, *args, **kwargs)

    def count(self, prefix: str) -> int:
        return sum(1 for p in self.paths if p.startswith(prefix))


@contextmanager
def tampering_proxy(upstream: str, rewrite: Callable[[str, bytes], bytes | None]) -> Iterator[str]:
    """A tiny HTTP proxy in front of ``upstream`` whose successful answers pass
    through ``rewrite(path, body)`` (None: answer 404 instead); yields its URL."""
    from flask import Flask, Response, request

    app = Flask("tampering-proxy")
    session = requests.Session()

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def proxy(path: str) -> Response:
        resp = session.request(
            request.method,
            f"{upstream}/{path}",
            params=request.args,
            data=request.get_data(),
            headers={"Content-Type": request.content_type or ""},
            timeout=30,
        )
        body = rewrite("/" + path, resp.content) if resp.status_code == 200 else resp.content
        if body is None:
            return Response("gone\n", status=404)
        return Response(body, status=resp.status_code, content_type=resp.headers.get("Content-Type"))

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join()


