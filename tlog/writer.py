"""One writer process per server: every worker's submissions, one sequencer.

With a sequencer thread in each gunicorn worker, two things slowed writes
down (measured, see README "Performance"): the sequencer shared its worker's
GIL with sixteen busy request threads, so a batch that takes 3 ms alone took
15-25 ms; and the workers' sequencers took turns on the database's write
lock, each with a small batch. ``tlog serve`` therefore starts one *writer*
process next to gunicorn. Workers verify and canonicalise submissions as
before, then hand each one to the writer over a private Unix socket
(:class:`RemoteSequencer`, same contract as :class:`tlog.sequencer.Sequencer`);
the writer runs the ordinary :class:`~tlog.sequencer.Sequencer` over all of
them, so batches are larger and the batch thread has its process to itself.

Crash consistency is unchanged: the writer commits a batch before it answers,
exactly as the in-worker sequencer did. If the writer dies, workers answer
503 until ``tlog serve`` has started a new one; an entry committed just
before the crash is answered with 409 and its location on retry. The writer
is spawned (fork + exec, not a fork of gunicorn's master), so no database
handle or lock crosses a fork; it exits by itself if ``tlog serve`` goes away.

The socket lives in a fresh 0700 directory and carries pickles: only this
server's own user can connect, and that user can read the log's keys anyway.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import selectors
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from tlog import errors
from tlog.config import Settings
from tlog.entries import CanonicalEntry
from tlog.errors import TlogError, Unavailable
from tlog.sequencer import Integrated, Sequencer, batch_due

log = logging.getLogger(__name__)

#: Largest frame either side accepts: a batch of one entry with its attestation and proof.
_MAX_FRAME = 16 << 20
_HEADER = struct.Struct(">I")
#: Seconds the writer waits for a worker to take an answer before dropping its connection.
_SEND_TIMEOUT = 10.0
#: Submissions the writer holds at once; past it, 503 (one per worker thread is normal).
_MAX_PENDING = 10_000
SOCKET_NAME = "writer.sock"


# --- framing ------------------------------------------------------------------------------


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket) -> Any:
    """The next object, or None when the peer closed the connection between frames."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (n,) = _HEADER.unpack(header)
    if n > _MAX_FRAME:
        raise ConnectionError(f"writer frame of {n} bytes is too large")
    data = _recv_exactly(sock, n)
    if data is None:
        raise ConnectionError("writer connection closed mid-frame")
    return pickle.loads(data)  # noqa: S301 - a private socket of this server's own user


def _error_state(exc: TlogError) -> tuple[str, str, dict[str, Any]]:
    """An error as (class name, message, attributes): exceptions with keyword-only
    attributes (Conflict's uuid and index) do not survive pickle's default."""
    return type(exc).__name__, exc.message, {k: v for k, v in vars(exc).items() if k != "message"}


def _error_from_state(state: tuple[str, str, dict[str, Any]]) -> TlogError:
    name, message, attrs = state
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, TlogError)):
        return errors.Internal(message)
    exc = cls.__new__(cls)
    TlogError.__init__(exc, message)
    vars(exc).update(attrs)
    return exc


# --- the writer process -------------------------------------------------------------------


class _WriterLoop:
    """One thread: every worker connection's submissions in, batches integrated, outcomes out.

    A thread per connection, handing entries to a sequencer thread, cost the
    writer two thread switches and a GIL hand-over per entry (0.75 ms of CPU
    per entry at 64 clients, measured); here the loop reads whatever frames
    have arrived on any connection, integrates them as one batch per log, and
    answers each connection, all on one thread. Each worker thread has at most
    one submission in flight, so the pool is bounded by the connections.
    """

    def __init__(self, listener: socket.socket, sequencers: dict[str, Sequencer]) -> None:
        self.listener = listener
        self.sequencers = sequencers
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.buffers: dict[socket.socket, bytearray] = {}
        self.pending: list[tuple[socket.socket, str, CanonicalEntry]] = []
        # Every sequencer of this writer shares the batching rhythm.
        self.interval = max((s.batch_interval for s in sequencers.values()), default=0.0)
        self.max_batch = min((s.max_batch for s in sequencers.values()), default=1000)

    def run(self) -> None:
        last_start, last_size = 0.0, 0
        while True:
            wait = None
            if self.pending:
                wait = batch_due(time.monotonic(), last_start, last_size, len(self.pending), self.interval)
                if wait == 0 or len(self.pending) >= self.max_batch:
                    batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
                    last_start, last_size = time.monotonic(), len(batch)
                    self._integrate(batch)
                    wait = 0  # only poll: answering took time, more may have come
            for key, _ in self.selector.select(wait):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        # Reads happen only when the selector says so; answers are small and
        # the worker is waiting for them, but a stuck one must not stop us.
        sock.settimeout(_SEND_TIMEOUT)
        self.buffers[sock] = bytearray()
        self.selector.register(sock, selectors.EVENT_READ)

    def _close(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.buffers[sock]
        self.pending = [p for p in self.pending if p[0] is not sock]
        sock.close()

    def _read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._close(sock)  # the worker went away; its entry, if integrated, answers 409 on retry
            return
        buf = self.buffers[sock]
        buf += data
        while len(buf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf)
            if n > _MAX_FRAME:
                log.warning("closing a writer connection: frame of %d bytes", n)
                self._close(sock)
                return
            if len(buf) < _HEADER.size + n:
                break
            frame = bytes(buf[_HEADER.size : _HEADER.size + n])
            del buf[: _HEADER.size + n]
            try:
                purpose, entry = pickle.loads(frame)  # noqa: S301 - a private socket of this server's own user
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
                self._close(sock)
                return
            if purpose not in self.sequencers:
                self._answer(sock, errors.Internal(f"this writer does not write the {purpose} log"))
            elif len(self.pending) >= _MAX_PENDING:
                self._answer(sock, Unavailable("the log is overloaded; retry shortly", retry_after=1))
            else:
                self.pending.append((sock, purpose, entry))

    def _integrate(self, batch: list[tuple[socket.socket, str, CanonicalEntry]]) -> None:
        for purpose, sequencer in self.sequencers.items():
            mine = [(sock, entry) for sock, p, entry in batch if p == purpose]
            if mine:
                outcomes = sequencer.integrate_batch([entry for _, entry in mine])
                for (sock, _), outcome in zip(mine, outcomes):
                    self._answer(sock, outcome)

    def _answer(self, sock: socket.socket, outcome: Integrated | TlogError) -> None:
        reply = ("error", _error_state(outcome)) if isinstance(outcome, TlogError) else ("ok", outcome)
        try:
            _send(sock, reply)
        except OSError:
            if sock in self.buffers:
                self._close(sock)


def run_writer(settings: Settings, socket_path: str, parent: int | None = None) -> None:
    """Open the logs and serve submissions on ``socket_path`` until ``tlog serve`` (pid ``parent``) goes away.

    ``parent`` comes from ``tlog serve`` itself: read with ``os.getppid()`` after
    the seconds opening the logs takes, it would be init's pid if ``tlog serve``
    had died meanwhile, and this process would then outlive it for good.
    """
    parent = os.getppid() if parent is None else parent
    from tlog.api.state import Services
    from tlog.rotation import CERTIFICATES
    from tlog.shards import ENTRIES

    svc = Services.open(settings.replace(writer_socket=None), migrate=False)
    sequencers: dict[str, Any] = {ENTRIES: svc.sequencer}
    if svc.ca is not None:
        sequencers[CERTIFICATES] = svc.ca.sequencer
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(1024)
    threading.Thread(target=_WriterLoop(listener, sequencers).run, name="tlog-writer", daemon=True).start()
    if settings.witnesses is not None:
        # One per server, next to the head it cosigns, and never in gunicorn's
        # master (which forks workers: no SQLite there).
        from tlog.witnessing import CosignatureCollector, load_witnesses

        witnesses = load_witnesses(settings.witnesses)
        CosignatureCollector(svc.log, witnesses).start()
        log.info("collecting cosignatures from %d witness(es)", len(witnesses))
    log.info("writer ready on %s (%s)", socket_path, ", ".join(sequencers))
    while os.getppid() == parent:  # reparented: tlog serve is gone, so are we
        time.sleep(1)
    log.info("tlog serve exited; writer stopping")


def main() -> None:
    """``python -m tlog.writer SOCKET [PARENT_PID]``, with the pickled :class:`Settings` on stdin."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [writer] %(levelname)s %(name)s: %(message)s")
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by our own parent
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if parent is not None and os.getppid() != parent:
        log.info("tlog serve (pid %d) exited before the writer started; not starting", parent)
        return
    try:
        run_writer(settings, sys.argv[1], parent)
    finally:
        from prometheus_client import multiprocess

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class WriterProcess:
    """The writer as ``tlog serve`` runs it: spawned, watched, restarted if it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = tempfile.mkdtemp(prefix="tlog-writer-")  # 0700
        self.socket_path = os.path.join(self.dir, SOCKET_NAME)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start(self, timeout: float = 60.0) -> None:
        self._spawn(timeout)
        threading.Thread(target=self._watch, name="tlog-writer-watch", daemon=True).start()

    def _spawn(self, timeout: float) -> None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tlog.writer", self.socket_path, str(os.getpid())], stdin=subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(self.settings))
        proc.stdin.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the writer process exited with {proc.returncode} while starting")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(self.socket_path)
                self._proc = proc
                return
            except OSError:
                time.sleep(0.05)
        proc.kill()
        raise RuntimeError(f"the writer process did not start within {timeout:.0f} s")

    def _watch(self) -> None:
        while not self._stopping:
            proc = self._proc
            if proc is None:
                return
            proc.wait()
            if self._stopping or proc.returncode == -signal.SIGTERM:
                # Asked to stop (by us, or by a signal to the whole process
                # group, which gunicorn's master is handling too).
                return
            log.error("the writer process exited with %s; starting a new one", proc.returncode)
            try:
                self._spawn(60.0)
            except (RuntimeError, OSError):
                log.exception("could not restart the writer; retrying in 5 s")
                time.sleep(5)

    def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            os.unlink(self.socket_path)
            os.rmdir(self.dir)
        except OSError:
            pass


# --- the worker side ----------------------------------------------------------------------


class RemoteSequencer:
    """:meth:`Sequencer.submit` answered by the writer process (one connection per thread)."""

    def __init__(self, socket_path: str, purpose: str) -> None:
        self.socket_path = socket_path
        self.purpose = purpose
        self._local = threading.local()

    def _connection(self, timeout: float) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None or getattr(self._local, "pid", None) != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
            self._local.sock, self._local.pid = sock, os.getpid()
        # The writer answers as soon as the entry's batch commits.
        sock.settimeout(timeout)
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

    def submit(self, entry: CanonicalEntry, *, timeout: float = 30.0) -> Integrated:
        try:
            sock = self._connection(timeout)
            _send(sock, (self.purpose, entry))
            reply = _recv(sock)
        except TimeoutError:
            # The connection may still carry the late answer: never reuse it.
            self._drop()
            raise Unavailable(f"the entry was not integrated within {timeout:.0f}s; retry to learn its fate") from None
        except (OSError, ConnectionError, pickle.UnpicklingError, EOFError) as exc:
            self._drop()
            log.warning("writer unreachable: %s", exc)
            raise Unavailable("the log's writer is restarting; retry shortly (a 409 on retry means the entry was written)", retry_after=1) from None
        if reply is None:
            self._drop()
            raise Unavailable("the log's writer closed the connection; retry shortly (a 409 on retry means the entry was written)", retry_after=1)
        status, value = reply
        if status == "ok":
            return value  # type: ignore[no-any-return]
        raise _error_from_state(value)


if __name__ == "__main__":
    main()
