"""monitor.daemon (retries, backoff, --once status, hooks) and monitor.http (/metrics, blueprints)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint

import monitor_testlib as lib
from conftest import free_port

from monitor.alerts import AlertSink
from monitor.client import LogClient, LogUnreachable
from monitor.daemon import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    LogTarget,
    MonitorContext,
    run,
    run_once,
)
from monitor.http import create_app
from monitor.state import LogState, StateStore


@pytest.fixture
def server(tmp_path: Path) -> Iterator[lib.InProcessServer]:
    srv = lib.serve_fast(lib.build_log(tmp_path / "log", 50))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Callable[..., MonitorContext]]:
    """Builds MonitorContexts (closed afterwards, so servers stop without waiting on keep-alives)."""
    made: list[MonitorContext] = []

    def make(*clients: LogClient, **kw: Any) -> MonitorContext:
        ctx = _context(tmp_path, *clients, **kw)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def _context(tmp_path: Path, *clients: LogClient, **kw: Any) -> MonitorContext:
    alerts = AlertSink(tmp_path / "alerts.jsonl")
    ctx = MonitorContext(
        store=StateStore(tmp_path / "state"),
        alerts=alerts,
        targets=[LogTarget(c) for c in clients],
        state_dir=tmp_path / "state",
        **{"retry_delay": 0.01, "interval": 0.2, **kw},
    )
    alerts.listeners.append(ctx.metrics.on_alert)
    return ctx


def alerts_of(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Flaky(LogClient):
    """A client whose first ``failures`` checkpoint fetches fail like a network outage."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures
        self.calls = 0

    def checkpoint(self) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise LogUnreachable("connection refused (simulated)")
        return super().checkpoint()


def test_once_retries_an_unreachable_log_before_giving_up(server: lib.InProcessServer, context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    flaky = Flaky(server.url, failures=2)
    ctx = context(flaky, unreachable_threshold=3)
    assert run_once(ctx) == EXIT_OK  # third attempt succeeded: no alert
    assert flaky.calls == 3 and alerts_of(tmp_path) == []

    down = LogClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    ctx = context(down, unreachable_threshold=2)
    assert run_once(ctx) == EXIT_INCOMPLETE
    assert [a["type"] for a in alerts_of(tmp_path)] == ["unreachable"]


def test_forever_alerts_once_per_outage_and_recovers(server: lib.InProcessServer, context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    flaky = Flaky(server.url, failures=5)
    ctx = context(flaky, unreachable_threshold=3)
    verified = threading.Event()
    seen: list[LogState] = []
    ctx.on_verified.append(lambda _ctx, state: (seen.append(state), verified.set()))
    thread = threading.Thread(target=run, args=(ctx,), kwargs={"once": False})
    thread.start()
    try:
        assert verified.wait(30)
    finally:
        ctx.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [a["type"] for a in alerts_of(tmp_path)] == ["unreachable"]  # one alert for 5 failures
    assert seen[0].origin == lib.ORIGIN and seen[0].size == 50
    assert ctx.targets[0].failures == 0 and not ctx.targets[0].alerted
    metrics = ctx.metrics.render().decode()
    assert f'tlog_monitor_up{{log="{server.url}"}} 1.0' in metrics
    assert 'tlog_monitor_alerts_total{type="unreachable"} 1.0' in metrics


def test_backoff_doubles_with_jitter_and_is_capped(context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    ctx = context(retry_delay=1.0, interval=10.0)
    for failures, top in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (30, 10)]:
        for _ in range(20):
            assert top / 2 <= ctx.backoff(failures) <= top


def test_tasks_run_once_and_their_failure_alerts_set_the_exit_status(server: lib.InProcessServer, context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    """Gossip hooks in through ctx.tasks and raises split_view through ctx.alerts."""
    ctx = context(LogClient(server.url))
    calls: list[int] = []

    def gossip(ctx: MonitorContext) -> None:
        calls.append(1)
        ctx.alerts.alert("split_view", "peer saw another tree", origin=lib.ORIGIN,
                         evidence={"ours": "cp1", "theirs": "cp2"})  # fmt: skip

    ctx.tasks.append(gossip)
    assert run_once(ctx) == EXIT_FAILED
    assert calls == [1]
    assert [a["type"] for a in alerts_of(tmp_path)] == ["split_view"]


def test_a_failing_hook_does_not_stop_the_audit(server: lib.InProcessServer, context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    ctx = context(LogClient(server.url))
    ctx.on_verified.append(lambda _ctx, _state: 1 / 0)
    ctx.tasks.append(lambda _ctx: [][0])
    assert run_once(ctx) == EXIT_OK


def test_http_app_metrics_logs_and_extra_blueprints(server: lib.InProcessServer, context: Callable[..., MonitorContext], tmp_path: Path) -> None:
    ctx = context(LogClient(server.url))
    assert run_once(ctx) == EXIT_OK
    bp = Blueprint("extra", __name__)
    bp.add_url_rule("/extra", "extra", lambda: "hello")
    client = create_app(ctx, [bp]).test_client()
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.content_type.startswith("text/plain")
    text = metrics.get_data(as_text=True)
    for line in (
        f'tlog_monitor_verified_size{{origin="{lib.ORIGIN}"}} 50.0',
        f'tlog_monitor_lag_entries{{origin="{lib.ORIGIN}"}} 0.0',
        f'tlog_monitor_entries_audited_total{{origin="{lib.ORIGIN}"}} 50.0',
        'tlog_monitor_alerts_total{type="bad_signature"} 0.0',
    ):
        assert line in text
    assert "tlog_monitor_last_success_timestamp" in text
    assert client.get("/healthz").get_json() == {"status": "ok", "logs": {server.url: "verified"}}
    (entry,) = client.get("/logs").get_json()
    assert entry["origin"] == lib.ORIGIN and entry["size"] == 50 and entry["checkpoint"].startswith(lib.ORIGIN)
    assert client.get("/extra").get_data() == b"hello"
