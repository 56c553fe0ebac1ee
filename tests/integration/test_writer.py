"""The writer process of `tlog serve` (tlog.writer): killed under load it loses
nothing and comes back by itself; errors cross its socket intact."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
import speclient
from conftest import LiveServer
from test_crash_and_frontends import hammer
from test_live_server import check_history

from tlog import errors
from tlog.writer import _error_from_state, _error_state

pytestmark = pytest.mark.slow


def writer_pid(server: LiveServer) -> int:
    """The writer: the child of `tlog serve` running `-m tlog.writer`."""
    assert server.proc is not None
    # Children of every thread: a restarted writer is spawned by the watcher thread.
    tasks = Path(f"/proc/{server.proc.pid}/task").iterdir()
    children = [c for t in tasks for c in (t / "children").read_text().split()]
    for pid in map(int, children):
        if "tlog.writer" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
            return pid
    raise AssertionError(f"no writer among the children {children}")


def test_sigkill_of_the_writer_under_load(settings) -> None:  # type: ignore[no-untyped-def]
    """16 clients submit; the writer is SIGKILLed twice: nothing acknowledged is
    lost, clients see only 201 or 503 meanwhile, and a new writer takes over."""
    server = LiveServer(settings).start()
    acknowledged: list = []  # type: ignore[type-arg]
    failures: list = []  # type: ignore[type-arg]
    stop = threading.Event()
    threads = [threading.Thread(target=hammer, args=([server.url], stop, acknowledged, failures, i)) for i in range(16)]
    try:
        for t in threads:
            t.start()
        for _ in range(2):
            time.sleep(1.0)
            before = writer_pid(server)
            os.kill(before, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if writer_pid(server) != before:
                        break
                except (AssertionError, FileNotFoundError):
                    pass
                time.sleep(0.1)
            else:
                raise AssertionError("no new writer within 30 s:\n" + server.log())
        count = len(acknowledged)
        deadline = time.monotonic() + 20
        while len(acknowledged) <= count + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(acknowledged) > count + 20, "submissions did not resume after the writer restarted"
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not failures, failures[:5]
        assert len(acknowledged) > 50
        check_history(server.url, acknowledged, exact=False)
        assert "the writer process exited" in server.log()
    finally:
        server.stop()


def test_conflicts_and_refusals_cross_the_socket(settings) -> None:  # type: ignore[no-untyped-def]
    server = LiveServer(settings).start()
    try:
        req, _ = speclient.hashedrekord(speclient.make_identity())
        first = requests.post(server.url + "/api/v1/log/entries", json=req, timeout=30)
        again = requests.post(server.url + "/api/v1/log/entries", json=req, timeout=30)
        assert first.status_code == 201 and again.status_code == 409
        uuid = next(iter(first.json()))
        assert again.headers["Location"] == f"/api/v1/log/entries/{uuid}"
        assert "logIndex 0" in again.json()["message"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "exc",
    [
        errors.Conflict("already there at logIndex 7", uuid="ab" * 40, log_index=7),
        errors.Unavailable("storage is full", retry_after=5),
        errors.BadRequest("nope"),
    ],
)
def test_error_states_round_trip(exc: errors.TlogError) -> None:
    back = _error_from_state(_error_state(exc))
    assert type(back) is type(exc) and back.message == exc.message and vars(back) == vars(exc)
    assert back.http_status == exc.http_status


def test_an_unknown_error_class_becomes_internal() -> None:
    back = _error_from_state(("os.system", "x", {}))
    assert isinstance(back, errors.Internal)


def test_batches_wait_for_the_last_batch_size_and_a_lone_entry_does_not(settings) -> None:  # type: ignore[no-untyped-def]
    """Straight to the writer's socket, with a 400 ms interval: a lone entry after
    a batch of one is integrated at once; after a batch of several, one entry
    waits out the interval for company; concurrent entries all get in."""
    import socket

    from tlog import entries
    from tlog.shards import ENTRIES
    from tlog.writer import _recv, _send

    server = LiveServer(settings, extra_args=("--batch-interval-ms", "400")).start()
    conns: list[socket.socket] = []
    try:
        path = _writer_socket(server)
        for _ in range(8):
            conns.append(socket.socket(socket.AF_UNIX))
            conns[-1].connect(path)
            conns[-1].settimeout(30)

        def entry():  # type: ignore[no-untyped-def]
            return entries.canonicalize(speclient.hashedrekord(speclient.make_identity())[0])

        def submit(socks: list[socket.socket]) -> float:
            frames = [entry() for _ in socks]
            started = time.monotonic()
            for sock, e in zip(socks, frames):
                _send(sock, (ENTRIES, e))
            for sock in socks:
                status, _ = _recv(sock)
                assert status == "ok"
            return time.monotonic() - started

        assert submit(conns[:1]) < 0.2  # the first batch of this writer: nothing to wait for
        assert submit(conns[:1]) < 0.2  # after a batch of one
        submit(conns)  # eight at once: after the first, they go in batches of several
        assert submit(conns[:1]) > 0.25, "a lone entry after a batch of several did not wait for more"
        assert requests.get(server.url + "/api/v1/log", timeout=10).json()["treeSize"] == 11
    finally:
        for sock in conns:
            sock.close()
        server.stop()


def _writer_socket(server: LiveServer) -> str:
    argv = Path(f"/proc/{writer_pid(server)}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"tlog.writer") + 1].decode()  # python -m tlog.writer SOCKET PARENT_PID


def test_the_writer_survives_bad_frames(settings) -> None:  # type: ignore[no-untyped-def]
    """Garbage, an oversized frame, a frame cut off, an unknown log: each costs its
    sender the connection or an error, and the writer keeps serving the others."""
    import pickle
    import socket

    from tlog.writer import _HEADER, _recv, _send

    server = LiveServer(settings).start()
    try:
        path = _writer_socket(server)
        for payload in (_HEADER.pack(5) + b"\x80junk", _HEADER.pack(1 << 30), _HEADER.pack(100) + b"short"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(10)
                assert s.recv(100) == b""  # closed without an answer
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.settimeout(10)
            _send(s, ("no-such-log", None))
            status, state = _recv(s)
            assert status == "error" and state[0] == "Internal" and "no-such-log" in state[1]
            assert pickle.dumps(state)
        req, _ = speclient.hashedrekord(speclient.make_identity())
        assert requests.post(server.url + "/api/v1/log/entries", json=req, timeout=30).status_code == 201
    finally:
        server.stop()


# A stand-in for `tlog serve` that spawns its writer as WriterProcess does (its
# own pid as the parent to watch), hands it the settings after argv[2] seconds,
# and exits.
_DYING_PARENT = """\
import os, subprocess, sys, time
writer = subprocess.Popen([sys.executable, "-m", "tlog.writer", sys.argv[1], str(os.getpid())], stdin=subprocess.PIPE)
print(writer.pid, flush=True)
time.sleep(float(sys.argv[2]))  # the writer waits for its settings meanwhile
writer.stdin.write(sys.stdin.buffer.read())
writer.stdin.close()
"""


@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_the_writer_exits_when_tlog_serve_died_while_it_started(settings, tmp_path: Path, delay: float) -> None:  # type: ignore[no-untyped-def]
    """The writer used to read its parent's pid only once its logs were open: if
    `tlog serve` died meanwhile, that pid was init's and the writer lived on,
    holding the database. Now it exits, whether its parent is gone by the time
    it reads its settings or goes while it opens the logs."""
    import pickle
    import subprocess
    import sys

    from tlog.api.state import Services

    Services.open(settings, migrate=True).engine.dispose()  # what tlog serve does before spawning it
    # The writer inherits the launcher's stdout and stderr: run() returns once
    # the writer has closed them too, i.e. exited.
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _DYING_PARENT, str(tmp_path / "writer.sock"), str(delay)],
            input=pickle.dumps(settings), capture_output=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        os.kill(int((exc.stdout or b"").split()[0]), signal.SIGKILL)
        raise AssertionError("the writer outlived tlog serve") from None
    assert proc.returncode == 0, proc.stderr.decode()
    log = proc.stderr.decode()
    assert "not starting" in log or "tlog serve exited; writer stopping" in log, log
