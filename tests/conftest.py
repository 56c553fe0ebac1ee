"""Shared fixtures: real databases (SQLite and PostgreSQL), the app, a live server.

Every test that takes ``database_url`` runs twice, on a SQLite file in a
temporary directory and on a fresh PostgreSQL database. PostgreSQL is reached
over the local socket directory with peer authentication (``.ci/run`` starts the
cluster and creates our role). Where no server answers, the PostgreSQL half
skips with the reason, unless ``TLOG_REQUIRE_POSTGRES=1`` (set by CI), in which
case it fails: CI must never pass by skipping it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tlog.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PG_SOCKET_DIR = os.environ.get("TLOG_TEST_PG_HOST", "/var/run/postgresql")

_pg_problem: str | None = None
_pg_checked = False


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(host=PG_SOCKET_DIR, dbname="postgres", autocommit=True, connect_timeout=5)


def postgres_unavailable() -> str | None:
    """None if a PostgreSQL server answers on the socket, else the reason it does not."""
    global _pg_problem, _pg_checked
    if not _pg_checked:
        _pg_checked = True
        try:
            with _pg_admin() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_problem = f"no PostgreSQL server reachable over {PG_SOCKET_DIR}: {exc}".strip()
    return _pg_problem


def _require_postgres() -> None:
    problem = postgres_unavailable()
    if problem:
        if os.environ.get("TLOG_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TLOG_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    _require_postgres()
    name = f"tlog_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg:///{name}?host={PG_SOCKET_DIR}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'tlog.db'}"
    return request.getfixturevalue("postgres_url")  # type: ignore[no-any-return]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, origin="test.example/log")


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from tlog.api.app import create_app

    app = create_app(settings)
    yield app
    app.extensions["tlog"].engine.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(Exception):
    pass


class LiveServer:
    """A real ``tlog serve`` (gunicorn) process on a loopback port."""

    def __init__(self, settings: Settings, *, workers: int = 2, threads: int = 8, extra_args: tuple[str, ...] = ()):
        self.settings = settings
        self.workers = workers
        self.threads = threads
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = settings.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> LiveServer:
        # Another test process may grab our free port between probe and bind
        # (tests run in parallel): then try again on a new port.
        for _attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError("no free port after 3 attempts")

    def _start(self, timeout: float) -> LiveServer:
        args = [
            sys.executable, "-m", "tlog.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.settings.data_dir),
            "--workers", str(self.workers), "--threads", str(self.threads),
        ]  # fmt: skip
        if self.settings.database_url:
            args += ["--database-url", self.settings.database_url]
        if self.settings.origin:
            args += ["--origin", self.settings.origin]
        args += list(self.extra_args)
        self.settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._logf = logf
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._logf.close()
                if "Address already in use" in self.log():
                    raise PortTaken(self.port)
                raise RuntimeError(f"tlog serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tlog serve did not come up within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers die mid-flight."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._logf.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._logf.close()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()
