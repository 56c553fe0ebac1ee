"""Gossip against peers served over real HTTP on loopback: the endpoint, untrusted and
garbage answers, the comparison rules on signed in-memory trees, and scheduling.
Our side is always a real monitor state store holding what an audit verified."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, Response
from gossip_testlib import (
    ListSink,
    MemoryLog,
    audited,
    remember,
    serve_app,
    serve_gossip,
)

from monitor.gossip import (
    GOSSIP_PATH,
    Gossiper,
    Inconclusive,
    PeerReport,
    check_peer_once,
    gossip_blueprint,
    peer_endpoint,
)
from monitor.state import LogState, StateError, StateStore
from tlog.note import Note, NoteSignature


class Peer:
    """A peer whose answer the test sets: a JSON document, or a raw response."""

    def __init__(self) -> None:
        self.doc: Any = {"checkpoints": []}
        self.response: Response | None = None
        app = Flask("peer")

        @app.get(GOSSIP_PATH)
        def checkpoints() -> Response:
            if self.response is not None:
                return self.response
            return Response(json.dumps(self.doc), mimetype="application/json")

        self.app = app

    def lists(self, *pairs: tuple[str, str]) -> None:
        self.doc = {"checkpoints": [{"origin": o, "checkpoint": c} for o, c in pairs]}


@pytest.fixture
def peer() -> Iterator[tuple[Peer, str]]:
    p = Peer()
    with serve_app(p.app) as node:
        yield p, node.url


def only(report: list[PeerReport]) -> PeerReport:
    assert len(report) == 1
    return report[0]


# --- the endpoint -----------------------------------------------------------------------


def test_endpoint_lists_verified_checkpoints(tmp_path: Path) -> None:
    mem = MemoryLog.create().grow(5)
    other = MemoryLog.create("other.example/log").grow(2)
    empty = MemoryLog.create("none.example/log")
    store = StateStore(tmp_path / "ours")
    state = remember(store, mem)
    for log in (other, empty):
        remember(store, log)
    with serve_gossip(store) as node:
        resp = requests.get(node.url + GOSSIP_PATH, timeout=10)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    # One entry per log, by origin, each the note its audit verified; an empty log's too.
    assert resp.json() == {
        "checkpoints": [
            {"origin": mem.origin, "checkpoint": state.checkpoint},
            {"origin": empty.origin, "checkpoint": empty.checkpoint()},
            {"origin": other.origin, "checkpoint": other.checkpoint()},
        ]
    }
    with serve_gossip(StateStore(tmp_path / "new")) as node:
        assert requests.get(node.url + GOSSIP_PATH, timeout=10).json() == {"checkpoints": []}


def test_endpoint_survives_a_broken_store(tmp_path: Path) -> None:
    broken = audited(tmp_path / "broken", MemoryLog.create().grow(3))
    conn = sqlite3.connect(broken.path)
    with conn:
        conn.execute("UPDATE logs SET edge = ?", (b"\x00" * 33,))  # a damaged row: not whole hashes
    conn.close()
    with pytest.raises(StateError, match="not a multiple of 32"):
        broken.all()

    app = Flask("broken")
    app.register_blueprint(gossip_blueprint(broken))
    app.register_blueprint(gossip_blueprint(StateStore(tmp_path / "new"), name="gossip2"), url_prefix="/second")
    client = app.test_client()
    resp = client.get(GOSSIP_PATH)
    assert resp.status_code == 503 and "multiple" not in resp.get_data(as_text=True)
    assert client.get("/second" + GOSSIP_PATH).get_json() == {"checkpoints": []}


def test_peer_endpoint() -> None:
    assert peer_endpoint("http://m.example:8080") == "http://m.example:8080/gossip/checkpoints"
    assert peer_endpoint("http://m.example/base/") == "http://m.example/base/gossip/checkpoints"
    assert peer_endpoint(" http://m.example/gossip/checkpoints/ ") == "http://m.example/gossip/checkpoints"


# --- comparing checkpoints ------------------------------------------------------------------


def test_same_size_different_root(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    ours = MemoryLog.create().grow(6)
    theirs = ours.fork().grow(0)
    theirs.leaves[-1] = b"\x00" * 32
    p.lists((ours.origin, theirs.checkpoint()))
    sink = ListSink()
    report = check_peer_once(url, audited(tmp_path, ours), sink, ours.proofs())
    (alert,) = sink.alerts
    assert report.alerts == [alert]
    assert alert["evidence"]["check"] == "same_size_different_root"
    assert alert["evidence"]["ours"] == ours.checkpoint() and alert["evidence"]["peer"] == theirs.checkpoint()
    assert alert["evidence"]["peer_url"] == url
    assert (alert["evidence"]["ours_size"], alert["evidence"]["peer_size"]) == (6, 6)


@pytest.mark.parametrize(("ours_size", "peer_size"), [(3, 9), (9, 3), (1, 2), (8, 9), (7, 7), (16, 1)])
def test_honest_sizes_are_consistent(peer: tuple[Peer, str], tmp_path: Path, ours_size: int, peer_size: int) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(16)
    p.lists((mem.origin, mem.checkpoint(peer_size)))
    calls: list[tuple[str, int, int]] = []
    sink = ListSink()
    gossiper = Gossiper([url], audited(tmp_path, mem, ours_size), sink, mem.proofs(calls))
    for _ in range(2):
        report = only(gossiper.check_once())
        assert report.consistent == [mem.origin] and not report.alerts
    assert sink.alerts == []
    small, large = sorted((ours_size, peer_size))
    assert calls == ([] if small == large else [(mem.origin, small, large)])


def test_forked_peer_ahead_and_behind(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    base = MemoryLog.create().grow(5)
    ours, theirs = base.fork().grow(2, b"ours"), base.fork().grow(4, b"theirs")
    # Our log (the one that proves) only knows our branch.
    p.lists((ours.origin, theirs.checkpoint()))
    sink = ListSink()
    check_peer_once(url, audited(tmp_path / "ours", ours), sink, ours.proofs())
    (alert,) = sink.alerts
    assert alert["evidence"]["check"] == "proof_refused" and "LookupError" in alert["evidence"]["error"]
    # Seen from the other branch: its log has a proof 7 -> 9, but not from our root.
    p.lists((ours.origin, ours.checkpoint()))
    sink = ListSink()
    check_peer_once(url, audited(tmp_path / "theirs", theirs), sink, theirs.proofs())
    (alert,) = sink.alerts
    assert alert["evidence"]["check"] == "consistency_proof" and alert["evidence"]["proof"]


def test_empty_trees(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(4)
    calls: list[tuple[str, int, int]] = []
    # Our state is the empty tree: every tree extends it, no proof needed.
    p.lists((mem.origin, mem.checkpoint()))
    sink = ListSink()
    report = check_peer_once(url, audited(tmp_path / "empty", mem, 0), sink, mem.proofs(calls))
    assert report.consistent == [mem.origin] and calls == [] and sink.alerts == []
    # A signed empty tree whose root is not SHA-256(""): the log contradicts itself.
    p.lists((mem.origin, mem.checkpoint(0, root=b"\x11" * 32)))
    check_peer_once(url, audited(tmp_path / "full", mem), sink, mem.proofs(calls))
    assert [a["evidence"]["check"] for a in sink.alerts] == ["empty_root"] and calls == []


def test_inconclusive_proofs_are_retried_not_alerted(peer: tuple[Peer, str], tmp_path: Path) -> None:
    from monitor.client import LogUnreachable, ProtocolError

    p, url = peer
    mem = MemoryLog.create().grow(10)
    p.lists((mem.origin, mem.checkpoint(10)))
    failures: list[BaseException] = [
        Inconclusive("log down"),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        TimeoutError(),
        ConnectionResetError(),
        LogUnreachable("HTTP 503"),
    ]
    good = mem.proofs()

    def fetcher(origin: str, size1: int, size2: int) -> list[bytes]:
        if failures:
            raise failures.pop(0)
        return good(origin, size1, size2)

    sink = ListSink()
    store = audited(tmp_path, mem, 4)
    gossiper = Gossiper([url], store, sink, fetcher)
    for _ in range(6):
        report = only(gossiper.check_once())
        assert report.inconclusive == [mem.origin] and report.consistent == []
    report = only(gossiper.check_once())
    assert report.consistent == [mem.origin]
    assert sink.alerts == [] and gossiper.stats["inconclusive"] == 6

    # A log that answers but will not prove (the core client's ProtocolError) is a split view.
    def refuses(origin: str, size1: int, size2: int) -> list[bytes]:
        raise ProtocolError("GET /api/v1/log/proof: HTTP 400: lastSize beyond the tree")

    check_peer_once(url, store, sink, refuses)
    assert [a["evidence"]["check"] for a in sink.alerts] == ["proof_refused"]


@pytest.mark.parametrize(
    "proof",
    [[], [b"short"], ["not bytes"], [None], [b"\x00" * 32] * 40],
    ids=["empty", "short-hash", "str", "none", "too-long"],
)
def test_garbage_proofs_are_split_views(peer: tuple[Peer, str], tmp_path: Path, proof: list[Any]) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(10)
    p.lists((mem.origin, mem.checkpoint(10)))
    sink = ListSink()
    check_peer_once(url, audited(tmp_path, mem, 3), sink, lambda o, a, b: proof)
    (alert,) = sink.alerts
    assert alert["evidence"]["check"] == "consistency_proof"
    json.dumps(alert)


# --- untrusted peers ----------------------------------------------------------------------


def tampered(note: str) -> str:
    """The same note with its signature bytes flipped (same key name and ID)."""
    parsed = Note.parse(note)
    sig = parsed.signatures[0]
    bad = NoteSignature(sig.name, sig.key_id, bytes(b ^ 0xFF for b in sig.signature))
    return Note(parsed.text, (bad,)).to_bytes().decode()


def test_unverifiable_and_irrelevant_entries_are_skipped(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(8)
    impostor = MemoryLog.create(mem.origin).grow(8, b"impostor")  # same origin, another key
    followed_too = MemoryLog.create("second.example/log").grow(3)
    unknown = MemoryLog.create("unknown.example/log").grow(3)
    from tlog.note import sign_note

    junk_note = sign_note("hello\n", [mem.signer]).to_bytes().decode()
    entries: list[Any] = [
        "not an object",
        {"origin": mem.origin},
        {"origin": mem.origin, "checkpoint": 5},
        {"origin": "", "checkpoint": "x"},
        {"origin": mem.origin, "checkpoint": "x" * 70_000},
        {"origin": unknown.origin, "checkpoint": unknown.checkpoint()},
        {"origin": mem.origin, "checkpoint": impostor.checkpoint()},
        {"origin": mem.origin, "checkpoint": tampered(mem.checkpoint())},
        {"origin": mem.origin, "checkpoint": "garbage\n\n— x AAAA\n"},
        {"origin": mem.origin, "checkpoint": junk_note},
        {"origin": followed_too.origin, "checkpoint": mem.checkpoint()},
    ]
    p.doc = {"checkpoints": entries}
    sink = ListSink()
    store = audited(tmp_path, mem, 4)
    remember(store, followed_too)
    report = check_peer_once(url, store, sink, mem.proofs())
    assert report.ok and report.compared == [] and sink.alerts == []
    assert len(report.skipped) == 6
    # The first usable entry per origin counts; later ones for that origin are ignored.
    entries += [
        {"origin": mem.origin, "checkpoint": mem.checkpoint(8)},
        {"origin": mem.origin, "checkpoint": impostor.checkpoint()},
        {"origin": mem.origin, "checkpoint": mem.fork().grow(1, b"x").checkpoint()},
    ]
    report = check_peer_once(url, store, sink, mem.proofs())
    assert report.compared == [mem.origin] and report.consistent == [mem.origin] and sink.alerts == []


def slow_body() -> Iterator[bytes]:
    yield b'{"checkpoints": ['
    time.sleep(3)
    yield b"]}"


def trickle_body() -> Iterator[bytes]:
    """Never silent long enough for a read timeout, never done either."""
    yield b'{"checkpoints": ['
    for _ in range(30):
        time.sleep(0.25)
        yield b" "
    yield b"]}"


@pytest.mark.parametrize(
    ("make_response", "error"),
    [
        (lambda: Response("nope", status=404), "HTTP 404"),
        (lambda: Response("oops", status=500), "HTTP 500"),
        (lambda: Response("<html>", mimetype="text/html"), "not JSON"),
        (lambda: Response("[" * 200_000, mimetype="application/json"), "not JSON"),
        (lambda: Response("[1, 2]", mimetype="application/json"), "no 'checkpoints' list"),
        (lambda: Response('{"checkpoints": {"a": 1}}', mimetype="application/json"), "no 'checkpoints' list"),
        (lambda: Response(b" " * (2 << 20), mimetype="application/json"), "limit"),
        (lambda: Response((b" " * 65536 for _ in range(40)), mimetype="application/json"), "limit"),
        (lambda: Response(slow_body(), mimetype="application/json"), "timed out"),
        (lambda: Response(trickle_body(), mimetype="application/json"), "took longer than 3s"),
        (lambda: Response("", status=302, headers={"Location": "/gossip/checkpoints"}), "Redirects"),
    ],
    ids=["404", "500", "html", "deep", "list", "mapping", "huge", "huge-chunked", "slow", "trickle", "redirect-loop"],
)
def test_garbage_peers_never_break_a_round(peer: tuple[Peer, str], tmp_path: Path, make_response: Any, error: str) -> None:
    p, url = peer
    p.response = make_response()
    mem = MemoryLog.create().grow(3)
    sink = ListSink()
    gossiper = Gossiper([url], audited(tmp_path, mem), sink, mem.proofs(), timeout=1.0)
    report = only(gossiper.check_once())
    assert not report.ok and error in (report.error or ""), report.error
    assert sink.alerts == [] and gossiper.stats["peer_errors"] == 1


def test_unreachable_peer_and_mixed_peers(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    mem = MemoryLog.create().grow(5)
    theirs = mem.fork()
    theirs.leaves[0] = b"\x01" * 32
    p.lists((mem.origin, theirs.checkpoint()))
    sink = ListSink()
    gossiper = Gossiper([dead, url, url], audited(tmp_path, mem), sink, mem.proofs(), timeout=2.0)
    assert gossiper.peers == [dead, url]
    dead_report, live_report = gossiper.check_once()
    assert not dead_report.ok and "ConnectionError" in (dead_report.error or "")
    assert live_report.ok and [a["type"] for a in live_report.alerts] == ["split_view"]
    assert len(sink.alerts) == 1


# --- scheduling -----------------------------------------------------------------------------


def test_run_if_due_follows_the_interval(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(2)
    p.lists((mem.origin, mem.checkpoint()))
    now = [1000.0]
    gossiper = Gossiper(
        [url], audited(tmp_path, mem), ListSink(), mem.proofs(), interval=60, jitter=0, clock=lambda: now[0]
    )
    assert gossiper.run_if_due() is not None  # the first call runs at once
    now[0] += 59
    assert gossiper.run_if_due() is None
    now[0] += 1
    reports = gossiper.run_if_due()
    assert reports is not None and reports[0].consistent == [mem.origin]
    assert gossiper.stats["rounds"] == 2


def test_background_thread_keeps_gossiping(peer: tuple[Peer, str], tmp_path: Path) -> None:
    p, url = peer
    mem = MemoryLog.create().grow(4)
    theirs = mem.fork()
    theirs.leaves[1] = b"\x02" * 32
    p.lists((mem.origin, theirs.checkpoint()))
    seen = threading.Event()

    class Sink(ListSink):
        def emit(self, alert: dict[str, Any]) -> bool:
            super().emit(alert)
            if len(self.alerts) >= 3:
                seen.set()
            return True

    class FlakyStore(StateStore):
        """The real store, whose second read fails once, like a transient I/O error."""

        calls = 0

        def all(self) -> list[LogState]:
            self.calls += 1
            if self.calls == 2:
                raise sqlite3.OperationalError("disk I/O error")
            return super().all()

    store = FlakyStore(tmp_path)
    remember(store, mem)
    sink = Sink()
    gossiper = Gossiper([url], store, sink, mem.proofs(), interval=0.05, jitter=0.5)
    thread = gossiper.start()
    assert gossiper.start() is thread
    try:
        assert seen.wait(20), "the split view was not re-reported every round"
    finally:
        gossiper.stop(10)
    assert not thread.is_alive()
    assert all(a["evidence"]["check"] == "same_size_different_root" for a in sink.alerts)
    assert store.calls >= 4  # the failed read did not end the thread


def test_checkpoints_with_cosignatures_verify(peer: tuple[Peer, str], tmp_path: Path) -> None:
    """A peer's checkpoint may carry witness cosignatures we know nothing about."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tlog.checkpoint import add_signatures
    from tlog.note import CosignatureV1Signer, sign_note

    p, url = peer
    mem = MemoryLog.create().grow(7)
    witness = CosignatureV1Signer("witness.example", Ed25519PrivateKey.generate(), clock=lambda: 1_700_000_000)
    note = mem.checkpoint()
    cosig = sign_note(Note.parse(note).text, [witness]).signatures[0]
    cosigned = add_signatures(note, [cosig]).decode()
    p.lists((mem.origin, cosigned))
    sink = ListSink()
    report = check_peer_once(url, audited(tmp_path, mem, 5), sink, mem.proofs())
    assert report.consistent == [mem.origin] and sink.alerts == []
    assert base64.b64decode(cosigned.rsplit(" ", 1)[1])  # really a second signature line
