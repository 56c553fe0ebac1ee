"""Split-view detection with real logs: one log's keys, two histories from a common
prefix, each served by a real ``tlog serve``; two monitors, each following one
branch, gossip over HTTP and must both catch the fork."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import speclient
from conftest import LiveServer
from gossip_testlib import (
    ORIGIN,
    ListSink,
    follow,
    fork,
    log_vkeys,
    rekor_proof_fetcher,
    serve_gossip,
)

from monitor.gossip import Gossiper, check_peer_once
from monitor.state import StateStore
from tlog.config import Settings
from tlog.note import Note

pytestmark = pytest.mark.slow


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[LiveServer], data_dir: Path) -> LiveServer:
    server = LiveServer(Settings(data_dir=data_dir, origin=ORIGIN), workers=1, threads=4).start()
    servers.append(server)
    return server


def assert_split_view(alert: dict, ours: str, peer: str, peer_url: str, check: str) -> None:
    assert alert["type"] == "split_view"
    assert alert["origin"] == ORIGIN
    assert ORIGIN in alert["message"]
    ev = alert["evidence"]
    assert ev["ours"] == ours and ev["peer"] == peer and ev["peer_url"] == peer_url
    assert ev["check"] == check
    # Both are checkpoints the log really signed, for the same origin.
    assert Note.parse(ours).text.split("\n")[0] == Note.parse(peer).text.split("\n")[0] == ORIGIN
    assert ours != peer


@pytest.mark.parametrize(
    ("a_extra", "b_extra", "check_a", "check_b"),
    [
        # Same size, different roots: caught without asking the log anything.
        (3, 3, "same_size_different_root", "same_size_different_root"),
        # Different sizes: A's log cannot prove A's tree extends to B's (it has no
        # such tree), and B's log's proof from size 8 does not start at A's root.
        (3, 5, "proof_refused", "consistency_proof"),
    ],
    ids=["same-size", "different-size"],
)
def test_forked_log_is_caught_by_both_monitors(
    tmp_path: Path, servers: list[LiveServer], a_extra: int, b_extra: int, check_a: str, check_b: str
) -> None:
    dir_a, dir_b = fork(tmp_path, prefix=5, a_extra=a_extra, b_extra=b_extra)
    vkeys = log_vkeys(dir_a)
    assert log_vkeys(dir_b) == vkeys  # one log, as far as any verifier can tell
    log_a, log_b = start(servers, dir_a), start(servers, dir_b)

    store_a, store_b = StateStore(tmp_path / "monitor-a"), StateStore(tmp_path / "monitor-b")
    state_a, state_b = follow(store_a, log_a.url, vkeys), follow(store_b, log_b.url, vkeys)
    assert (state_a.size, state_b.size) == (5 + a_extra, 5 + b_extra)
    assert state_a.root_hash != state_b.root_hash

    with serve_gossip(store_a) as node_a, serve_gossip(store_b) as node_b:
        # Each node serves what its monitor verified.
        listed = requests.get(node_a.url + "/gossip/checkpoints", timeout=10).json()
        assert listed == {"checkpoints": [{"origin": ORIGIN, "checkpoint": state_a.checkpoint}]}

        sink_a, sink_b = ListSink(), ListSink()
        gossip_a = Gossiper([node_b.url], store_a, sink_a, rekor_proof_fetcher(log_a.url))
        gossip_b = Gossiper([node_a.url], store_b, sink_b, rekor_proof_fetcher(log_b.url))
        (report_a,) = gossip_a.check_once()
        (report_b,) = gossip_b.check_once()

    assert report_a.ok and report_a.compared == [ORIGIN] and report_a.consistent == []
    assert report_b.ok and report_b.compared == [ORIGIN] and report_b.consistent == []
    (alert_a,) = sink_a.alerts
    (alert_b,) = sink_b.alerts
    assert report_a.alerts == [alert_a] and report_b.alerts == [alert_b]
    assert_split_view(alert_a, state_a.checkpoint, state_b.checkpoint, node_b.url, check_a)
    assert_split_view(alert_b, state_b.checkpoint, state_a.checkpoint, node_a.url, check_b)
    assert alert_a["log"] == log_a.url and alert_b["log"] == log_b.url
    if check_b == "consistency_proof":
        assert alert_b["evidence"]["proof"]  # the log's own (bad) proof is part of the evidence


def test_honest_log_raises_no_alert(tmp_path: Path, servers: list[LiveServer]) -> None:
    data = tmp_path / "log" / "data"
    from gossip_testlib import add_entries

    add_entries(data, 6, "honest@example.com")
    vkeys = log_vkeys(data)
    log = start(servers, data)
    store_a, store_b, store_c = (StateStore(tmp_path / f"monitor-{n}") for n in "abc")
    follow(store_a, log.url, vkeys)  # A has seen size 6
    follow(store_c, log.url, vkeys)  # C too
    ident = speclient.make_identity("later@example.com")
    for _ in range(3):
        req, _ = speclient.hashedrekord(ident)
        assert requests.post(log.url + "/api/v1/log/entries", json=req, timeout=60).status_code == 201
    follow(store_b, log.url, vkeys)  # B has seen size 9
    assert [s.size for s in (store_a.all()[0], store_b.all()[0])] == [6, 9]

    with serve_gossip(store_a) as node_a, serve_gossip(store_b) as node_b, serve_gossip(store_c) as node_c:
        calls_a: list[tuple[str, int, int]] = []
        calls_b: list[tuple[str, int, int]] = []
        sink_a, sink_b = ListSink(), ListSink()
        gossip_a = Gossiper([node_b.url, node_c.url], store_a, sink_a, rekor_proof_fetcher(log.url, calls_a))
        gossip_b = Gossiper([node_a.url + "/gossip/checkpoints"], store_b, sink_b, rekor_proof_fetcher(log.url, calls_b))
        for _ in range(3):
            reports = gossip_a.check_once() + gossip_b.check_once()
            assert all(r.ok and r.consistent == [ORIGIN] and not r.alerts for r in reports)
        # A peer at the same size costs nothing; a proof is fetched once, then remembered.
        assert calls_a == [(ORIGIN, 6, 9)] and calls_b == [(ORIGIN, 6, 9)]
        # The one-shot helper agrees.
        once = check_peer_once(node_b.url, store_a, sink_a, rekor_proof_fetcher(log.url))
        assert once.ok and once.consistent == [ORIGIN]
    assert sink_a.alerts == [] and sink_b.alerts == []


def test_core_log_client_as_proof_fetcher(tmp_path: Path, servers: list[LiveServer]) -> None:
    """Wired the way the daemon wires it: ``LogClient.consistency_proof`` (tiles or Rekor API)."""
    from monitor.client import LogClient

    dir_a, dir_b = fork(tmp_path, prefix=4, a_extra=2, b_extra=6)
    vkeys = log_vkeys(dir_a)
    log_a, log_b = start(servers, dir_a), start(servers, dir_b)
    store_a, store_b = StateStore(tmp_path / "monitor-a"), StateStore(tmp_path / "monitor-b")
    follow(store_a, log_a.url, vkeys)
    follow(store_b, log_b.url, vkeys)
    with serve_gossip(store_a) as node_a, serve_gossip(store_b) as node_b:
        for mode in ("tiles", "rekor"):
            client_a, client_b = LogClient(log_a.url, mode=mode), LogClient(log_b.url, mode=mode)
            sink_a, sink_b = ListSink(), ListSink()
            check_peer_once(node_b.url, store_a, sink_a, lambda o, s1, s2, c=client_a: c.consistency_proof(s1, s2))
            check_peer_once(node_a.url, store_b, sink_b, lambda o, s1, s2, c=client_b: c.consistency_proof(s1, s2))
            assert [a["type"] for a in sink_a.alerts] == ["split_view"], mode
            assert [a["type"] for a in sink_b.alerts] == ["split_view"], mode
            assert sink_a.alerts[0]["evidence"]["check"] == "proof_refused"
            assert sink_b.alerts[0]["evidence"]["check"] == "consistency_proof"


def test_daemon_once_with_gossip_exits_failed(tmp_path: Path, servers: list[LiveServer]) -> None:
    """The real monitor loop: ``install`` adds the gossip to ``--once``, whose exit status turns 1."""
    from monitor.alerts import AlertSink
    from monitor.client import LogClient
    from monitor.daemon import EXIT_FAILED, EXIT_OK, LogTarget, MonitorContext, run_once
    from monitor.gossip import install
    from monitor.verify import Pins

    dir_a, dir_b = fork(tmp_path, prefix=3, a_extra=1, b_extra=4)
    vkeys = log_vkeys(dir_a)
    log_a, log_b = start(servers, dir_a), start(servers, dir_b)
    store_b = StateStore(tmp_path / "monitor-b")
    follow(store_b, log_b.url, vkeys)

    def monitor_of_a(peers: list[str], name: str) -> MonitorContext:
        ctx = MonitorContext(
            store=StateStore(tmp_path / name),
            alerts=AlertSink(tmp_path / f"{name}.jsonl"),
            targets=[LogTarget(LogClient(log_a.url), Pins(vkeys=vkeys))],
            peers=peers,
            interval=1.0,
        )
        blueprint = install(ctx)
        assert blueprint.name == "gossip" and "gossiper" in ctx.extensions
        return ctx

    with serve_gossip(store_b) as node_b, serve_gossip(StateStore(tmp_path / "monitor-a2")) as node_empty:
        ctx = monitor_of_a([node_b.url], "monitor-a")
        assert run_once(ctx) == EXIT_FAILED
        (alert,) = [json.loads(line) for line in (tmp_path / "monitor-a.jsonl").read_text().splitlines()]
        assert alert["type"] == "split_view" and alert["evidence"]["peer"] == store_b.get(ORIGIN).checkpoint
        assert alert["evidence"]["ours"] == ctx.store.get(ORIGIN).checkpoint
        # A peer that follows nothing yet: nothing to compare, all good.
        assert run_once(monitor_of_a([node_empty.url], "monitor-c")) == EXIT_OK
