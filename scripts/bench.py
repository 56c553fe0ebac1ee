#!/usr/bin/env python3
"""Benchmark ``tlog serve`` over HTTP: submissions, proofs, and the framework's ceiling.

Run it as ``scripts/bench`` (sets up .venv) or ``.venv/bin/python scripts/bench.py``.

Per backend (SQLite, then PostgreSQL when one answers on /var/run/postgresql)
it starts ``tlog serve`` with its *default* workers and threads on a fresh
log, then measures POST /api/v1/log/entries, GET /api/v1/log/entries?logIndex=
(inclusion proof + SET) and GET /api/v1/log/proof (consistency). A trivial
Flask app under the same gunicorn settings gives the ceiling the log is
compared with. Finally a random sample of every kind of response is checked
by the independent verifier in tests/speclient.py: a fast wrong log is worthless.

The load generator is closed-loop: each connection sends its next request as
soon as the previous response is complete. It is callback-driven asyncio
(``asyncio.Protocol``, no coroutine or HTTP library per request) over
keep-alive HTTP/1.1 with the requests pre-serialised to bytes, split over
``--clients`` forked processes. On a 2-core machine the client steals CPU
from the server whatever it is written in, so what matters is its CPU per
request; every row reports the client's CPU use (% of one core) so a reader
can see how much of the machine it took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import urllib.request
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() and VENV_PYTHON.exists():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # tlog, gunicorn and psycopg live there

sys.path.insert(0, str(ROOT / "tests"))
import speclient  # noqa: E402  (the independent verifier; nothing of tlog's own is trusted)

PG_SOCKET_DIR = os.environ.get("TLOG_TEST_PG_HOST", "/var/run/postgresql")
HOST = "127.0.0.1"
ORIGIN = "bench.example/tlog"


# --- load generator --------------------------------------------------------------------


class _Run:
    """One client process's share of a measurement: its requests, clock and tallies."""

    def __init__(self, reqs: list[bytes], unique: bool, expect: int, sample: int) -> None:
        self.reqs, self.unique, self.expect, self.sample = reqs, unique, expect, sample
        self.next = 0
        self.end_at = 0.0
        self.last = 0.0
        self.latencies = array("d")
        self.ok = self.errors = 0
        self.samples: list[tuple[int, bytes]] = []  # reservoir of (request index, response body)
        self.error_samples: list[str] = []
        self.rng = random.Random(os.getpid())

    def take(self) -> int | None:
        if time.monotonic() >= self.end_at or (self.unique and self.next >= len(self.reqs)):
            return None
        i, self.next = self.next, self.next + 1
        return i % len(self.reqs)

    def record(self, i: int, latency: float, status: int, body: bytes) -> None:
        self.last = time.monotonic()
        self.latencies.append(latency)
        if status != self.expect:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"HTTP {status}: {body[:300]!r}")
            return
        self.ok += 1
        if len(self.samples) < self.sample:
            self.samples.append((i, body))
        elif (j := self.rng.randrange(self.ok)) < self.sample:
            self.samples[j] = (i, body)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


class _Conn(asyncio.Protocol):
    """A keep-alive connection sending one request at a time, driven by callbacks alone."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buf = bytearray()
        self.need = -1  # total length of the response in flight, once its headers are in
        self.i: int | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def go(self) -> None:
        self.i = self.run.take()
        if self.i is None:
            self.transport.close()
            return
        self.t0 = time.monotonic()
        self.transport.write(self.run.reqs[self.i])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            p = head.find(b"\r\ncontent-length:")
            if p < 0:  # tlog and Flask always send a length; anything else is a bug worth seeing
                self.run.fail(f"response without Content-Length: {head[:200]!r}")
                self.i = None
                self.transport.close()
                return
            q = head.find(b"\r\n", p + 17)
            self.status = int(head[9:12])
            self.body_at = end + 4
            self.need = self.body_at + int(head[p + 17 : q if q >= 0 else None])
        if len(buf) < self.need:
            return
        assert self.i is not None
        self.run.record(self.i, time.monotonic() - self.t0, self.status, bytes(buf[self.body_at : self.need]))
        del buf[: self.need]
        self.need = -1
        self.go()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.i is not None:
            self.run.fail(f"connection lost mid-request: {exc or 'closed by server'}")
        if not self.finished.done():
            self.finished.set_result(None)


def _client_main(pipe, port: int, reqs: list[bytes], conns: int, unique: bool, expect: int, sample: int) -> None:  # type: ignore[no-untyped-def]
    async def main() -> dict:
        loop = asyncio.get_running_loop()
        run = _Run(reqs, unique, expect, sample)
        protos = [(await loop.create_connection(lambda: _Conn(run), HOST, port))[1] for _ in range(conns)]
        pipe.send("ready")  # connections are open before the clock starts
        start_at, run.end_at = pipe.recv()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = sum(os.times()[:2])
        for p in protos:
            p.go()
        await asyncio.gather(*(p.finished for p in protos))
        return {
            "ok": run.ok, "errors": run.errors, "error_samples": run.error_samples, "samples": run.samples,
            "latencies": run.latencies.tobytes(), "last": run.last, "cpu": sum(os.times()[:2]) - cpu0,
            "taken": run.next,
        }  # fmt: skip

    try:
        pipe.send(asyncio.run(main()))
    except Exception:  # noqa: BLE001 - hand the traceback to the parent, which reports it
        pipe.send({"crash": traceback.format_exc()})


def run_load(port: int, reqs: list[bytes], *, concurrency: int, duration: float, clients: int,
             unique: bool = False, expect: int = 200, sample: int = 200) -> dict:  # fmt: skip
    """Drive ``reqs`` (cycled, or each once if ``unique``) at ``concurrency`` for ``duration`` s."""
    k = min(clients, concurrency)
    ctx = mp.get_context("fork")  # children inherit the pre-built requests without pickling
    procs, pipes = [], []
    for c in range(k):
        mine, theirs = ctx.Pipe()
        conns = concurrency // k + (c < concurrency % k)
        p = ctx.Process(target=_client_main, args=(theirs, port, reqs[c::k], conns, unique, expect, sample), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(mine)
    for pipe in pipes:
        if (msg := pipe.recv()) != "ready":
            raise RuntimeError(f"load client failed to start: {msg}")
    start = time.monotonic() + 0.05
    for pipe in pipes:
        pipe.send((start, start + duration))
    parts = [pipe.recv() for pipe in pipes]
    for p in procs:
        p.join()
    if crashed := [r["crash"] for r in parts if "crash" in r]:
        raise RuntimeError("load client crashed:\n" + crashed[0])
    lat = array("d")
    for r in parts:
        lat.frombytes(r["latencies"])
    lat_sorted = sorted(lat)
    n = len(lat_sorted)
    elapsed = max([r["last"] for r in parts if r["last"]] or [start]) - start
    samples = [(c + i * k, body) for c, r in enumerate(parts) for i, body in r["samples"]]
    return {
        "requests": n, "ok": sum(r["ok"] for r in parts), "errors": sum(r["errors"] for r in parts),
        "error_samples": [e for r in parts for e in r["error_samples"]], "seconds": elapsed,
        "rate": n / elapsed if elapsed > 0 else 0.0,
        "p50_ms": lat_sorted[(n - 1) // 2] * 1000 if n else None,
        "p99_ms": lat_sorted[int(0.99 * (n - 1))] * 1000 if n else None,
        "client_cpu_pct": 100 * sum(r["cpu"] for r in parts) / elapsed if elapsed > 0 else 0.0,
        "samples": random.sample(samples, min(sample, len(samples))),
        # One past the highest request index sent: with unique requests, the next run starts there.
        "consumed": max((c + (r["taken"] - 1) * k + 1 for c, r in enumerate(parts) if r["taken"]), default=0),
    }  # fmt: skip


def http_request(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    """One pre-serialised HTTP/1.1 keep-alive request."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# --- servers, databases, request bodies ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()  # type: ignore[no-any-return]


class Server:
    """A gunicorn master (tlog serve or the ceiling app) in its own process group."""

    def __init__(self, args: list[str], port: int, log_path: Path) -> None:
        self.args, self.port, self.log_path = args, port, log_path
        self.url = f"http://{HOST}:{port}"

    def __enter__(self) -> Server:
        self.logf = open(self.log_path, "ab")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[2:4]} exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError):
                http_get(self.url + "/healthz")
                return self
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up within 60 s:\n{self.log_path.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


@contextlib.contextmanager
def postgres_database():  # type: ignore[no-untyped-def]
    """Yield (SQLAlchemy URL, server version) of a fresh database, or (None, why not)."""
    import psycopg

    try:
        admin = psycopg.connect(host=PG_SOCKET_DIR, dbname="postgres", autocommit=True, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        yield None, f"no PostgreSQL server reachable over {PG_SOCKET_DIR}: {exc}".strip()
        return
    name = f"tlog_bench_{secrets.token_hex(4)}"
    with admin:
        version = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg:///{name}?host={PG_SOCKET_DIR}", version
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BodyPool:
    """Unique signed hashedrekord request bodies, signed before any clock runs.

    Each log starts at the pool's beginning, so the PostgreSQL log reuses the
    bodies the SQLite log got; they are unique within either log.
    """

    def __init__(self) -> None:
        self.identities = [speclient.make_identity(f"bench{i}@example.com") for i in range(32)]
        self.bodies: list[bytes] = []

    def get(self, start: int, count: int) -> list[bytes]:
        while len(self.bodies) < start + count:
            req, _digest = speclient.hashedrekord(self.identities[len(self.bodies) % len(self.identities)])
            self.bodies.append(json.dumps(req).encode())
        return self.bodies[start : start + count]


CEILING_APP = """\
from flask import Flask, jsonify, request

app = Flask(__name__)

@app.post("/echo")
def echo():
    return jsonify({"ok": True, "fields": len(request.get_json())}), 201

@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
"""


# --- verification ----------------------------------------------------------------------


class Verifier:
    """Checks sampled responses with tests/speclient.py and tallies the outcome per kind."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = speclient.LogKey.from_pem(http_get(url + "/api/v1/log/publicKey"))
        self.roots: dict[int, bytes] = {}  # tree size -> root, from verified checkpoints only
        self.tally: dict[str, list[int]] = {}
        self.failures: list[str] = []

    def check(self, kind: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
        t = self.tally.setdefault(kind, [0, 0])
        t[1] += 1
        try:
            fn(*args)
            t[0] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal here
            self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")

    def _remember(self, cp: speclient.ParsedCheckpoint) -> None:
        if self.roots.setdefault(cp.size, cp.root) != cp.root:
            raise speclient.VerificationError(f"two different roots signed for size {cp.size}: a fork")

    def submission(self, request_body: bytes, response: bytes) -> None:
        _uuid, entry, cp = speclient.verify_entry(json.loads(response), self.key)
        self._remember(cp)
        logged = json.loads(speclient.base64.b64decode(entry["body"]))["spec"]
        sent = json.loads(request_body)["spec"]
        if logged["data"]["hash"] != sent["data"]["hash"] or logged["signature"]["content"] != sent["signature"]["content"]:
            raise speclient.VerificationError("the logged entry is not the one submitted")

    def final_head(self, acknowledged: int) -> None:
        head = json.loads(http_get(self.url + "/api/v1/log"))
        self.final = speclient.verify_checkpoint(head["signedTreeHead"], self.key)
        self._remember(self.final)
        if self.final.size != acknowledged:  # no entry lost, none invented
            raise speclient.VerificationError(f"tree size {self.final.size} but {acknowledged} submissions got 201")

    def inclusion(self, index: int, response: bytes) -> None:
        _uuid, entry, cp = speclient.verify_entry(json.loads(response), self.key)
        if entry["logIndex"] != index or (cp.size, cp.root) != (self.final.size, self.final.root):
            raise speclient.VerificationError(f"entry {index}: wrong index or not proven against the final head")

    def consistency(self, first: int, response: bytes) -> None:
        body = json.loads(response)
        if body["rootHash"] != self.final.root.hex():
            raise speclient.VerificationError("rootHash is not the final root")
        proof = [bytes.fromhex(h) for h in body["hashes"]]
        speclient.verify_consistency(first, self.final.size, self.roots[first], self.final.root, proof)


# --- the benchmark ---------------------------------------------------------------------


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), platform.processor())
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = next((int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemTotal")), 0)
    os_name = platform.platform()
    if Path("/etc/os-release").exists():
        rel = dict(ln.split("=", 1) for ln in Path("/etc/os-release").read_text().splitlines() if "=" in ln)
        os_name = f"{rel.get('PRETTY_NAME', '').strip(chr(34))} (kernel {platform.release()})"
    import gunicorn

    return {
        "cpu": model, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "gunicorn": gunicorn.__version__, "os": os_name,
    }  # fmt: skip


def maybe_profile(args: argparse.Namespace, pid: int, name: str) -> subprocess.Popen | None:  # type: ignore[type-arg]
    """py-spy over the gunicorn master and its workers for one measurement (perturbs the figures)."""
    if not args.profile:
        return None
    out = args.out.parent / f"profile-{name}.txt"
    cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--subprocesses",
           "--duration", str(max(1, int(args.duration))), "--rate", "200", "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict] = []
        self.ceiling: dict[int, float] = {}
        self.pool = BodyPool()
        self.ok = True
        self.verification: dict[str, dict] = {}

    def point(self, backend: str, test: str, conc: int, res: dict) -> dict:
        row = {"backend": backend, "test": test, "concurrency": conc,
               **{k: v for k, v in res.items() if k not in ("samples", "error_samples", "consumed")}}  # fmt: skip
        if test != "ceiling" and conc in self.ceiling:
            row["vs_ceiling"] = row["rate"] / self.ceiling[conc]
        self.rows.append(row)
        print_row(row)
        if res["errors"]:
            self.ok = False
            for e in res["error_samples"]:
                print(f"      error: {e}")
        if res["client_cpu_pct"] > 80:
            print("      warning: the load generator used >80% of a core; it may be the bottleneck (try --clients)")
        return row

    def framework_ceiling(self, tmp: Path, workers: int, threads: int) -> None:
        (tmp / "ceiling_app.py").write_text(CEILING_APP)
        port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", str(workers), "--threads", str(threads),
               "--bind", f"{HOST}:{port}", "--keep-alive", "5", "--timeout", "60", "--chdir", str(tmp), "ceiling_app:app"]  # fmt: skip
        reqs = [http_request("POST", "/echo", port, b) for b in self.pool.get(0, 1000)]
        with Server(cmd, port, tmp / "ceiling.log"):
            run_load(port, reqs, concurrency=max(self.args.concurrency), duration=self.args.warmup, clients=self.args.clients, expect=201)
            for c in self.args.concurrency:
                res = run_load(port, reqs, concurrency=c, duration=self.args.duration, clients=self.args.clients, expect=201)
                self.ceiling[c] = res["rate"]
                self.point("flask", "ceiling", c, res)

    def log_backend(self, backend: str, tmp: Path, database_url: str | None) -> None:
        a = self.args
        port = free_port()
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--host", HOST, "--port", str(port),
               "--data-dir", str(tmp / f"data-{backend}"), "--origin", ORIGIN]  # fmt: skip
        if database_url:
            cmd += ["--database-url", database_url]
        with Server(cmd, port, tmp / f"tlog-{backend}.log") as server:
            used = 0  # bodies consumed so far; every one of them must be in the log exactly once
            acked = 0
            sub_samples: list[tuple[bytes, bytes]] = []

            def submit(conc: int, duration: float, count: int, name: str | None) -> dict:
                nonlocal used, acked
                bodies = self.pool.get(used, count)
                reqs = [http_request("POST", "/api/v1/log/entries", port, b) for b in bodies]
                prof = maybe_profile(a, server.proc.pid, name) if name else None
                res = run_load(port, reqs, concurrency=conc, duration=duration, clients=a.clients, unique=True, expect=201)
                if prof:
                    prof.wait()
                used += res.pop("consumed")  # a few bodies below this may be unsent; never reuse them
                acked += res["ok"]
                sub_samples.extend((bodies[i], body) for i, body in res["samples"])
                if res["requests"] >= count:
                    print(f"      note: ran out of the {count} pre-signed bodies after {res['seconds']:.1f} s")
                return res

            submit(max(a.concurrency), a.warmup, 20_000, None)  # warm every worker, pool and cache
            rate = 0.0
            for c in a.concurrency:
                # Enough pre-signed bodies for this point at up to 3x the best rate yet.
                count = int(max(rate * 3, 1000) * a.duration) + 200
                res = submit(c, a.duration, count, f"{backend}-submit-c{c}")
                rate = max(rate, res["rate"])
                self.point(backend, "submit", c, res)

            v = Verifier(server.url)
            for req, resp in random.sample(sub_samples, min(a.sample, len(sub_samples))):
                v.check("submissions", v.submission, req, resp)
            v.check("final tree head", v.final_head, acked)
            if not hasattr(v, "final"):
                raise SystemExit(f"cannot verify the final tree head: {v.failures}")
            size = v.final.size

            incl_idx = [random.randrange(size) for _ in range(20_000)]
            incl = [http_request("GET", f"/api/v1/log/entries?logIndex={i}", port) for i in incl_idx]
            # firstSize is random among the checkpoints verified above, so any
            # sampled consistency proof can be checked against a trusted root.
            known = [s for s in v.roots if 0 < s < size] or [max(1, size // 2)]
            cons_first = [random.choice(known) for _ in range(20_000)]
            cons = [http_request("GET", f"/api/v1/log/proof?firstSize={s}&lastSize={size}", port) for s in cons_first]
            for test, reqs, args_of, check in (("inclusion", incl, incl_idx, v.inclusion), ("consistency", cons, cons_first, v.consistency)):
                for c in a.proof_concurrency:
                    prof = maybe_profile(a, server.proc.pid, f"{backend}-{test}-c{c}")
                    res = run_load(port, reqs, concurrency=c, duration=a.duration, clients=a.clients, sample=a.sample)
                    if prof:
                        prof.wait()
                    self.point(backend, test, c, res)
                    for i, body in res["samples"]:
                        v.check(f"{test} proofs", check, args_of[i], body)

        self.verification[backend] = {k: {"verified": t[0], "checked": t[1]} for k, t in v.tally.items()}
        good, total = sum(t[0] for t in v.tally.values()), sum(t[1] for t in v.tally.values())
        detail = ", ".join(f"{t[0]}/{t[1]} {k}" for k, t in v.tally.items())
        print(f"  {backend}: verified {good}/{total} ({detail}); log size {size}")
        for f in v.failures[:10]:
            print(f"      FAILED {f}")
        self.ok &= good == total


HEADER = f"{'backend':<10} {'test':<12} {'conc':>4} {'requests':>8} {'secs':>5} {'rate/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cliCPU%':>7} {'÷ceiling':>8}"


def print_row(r: dict) -> None:
    ratio = f"{r['vs_ceiling']:.2f}" if "vs_ceiling" in r else ""
    p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-"
    p99 = f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-"
    print(f"{r['backend']:<10} {r['test']:<12} {r['concurrency']:>4} {r['requests']:>8} {r['seconds']:>5.1f} "
          f"{r['rate']:>8.1f} {p50:>7} {p99:>7} {r['errors']:>6} {r['client_cpu_pct']:>7.0f} {ratio:>8}", flush=True)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, help="seconds per measurement (default 10, or 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="a few seconds per point, for smoke tests")
    p.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    p.add_argument("--concurrency", default="1,16,64", help="submission and ceiling concurrencies (default 1,16,64)")
    p.add_argument("--proof-concurrency", default="16,64", help="proof concurrencies (default 16,64)")
    p.add_argument("--clients", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--sample", type=int, default=200, help="responses verified per kind and measurement")
    p.add_argument("--profile", action="store_true", help="py-spy the server during each point (slows it down)")
    p.add_argument("--out", type=Path, help="JSON results (default bench-results/bench-<timestamp>.json)")
    a = p.parse_args()
    a.duration = a.duration or (2.0 if a.quick else 10.0)
    a.warmup = min(1.0, a.duration / 4)
    a.concurrency = [int(c) for c in a.concurrency.split(",")]
    a.proof_concurrency = [int(c) for c in a.proof_concurrency.split(",")]
    a.out = a.out or ROOT / "bench-results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    a.out.parent.mkdir(parents=True, exist_ok=True)

    from tlog.cli import serve
    from tlog.server import default_workers

    workers = default_workers()
    threads = next(o.default for o in serve.params if o.name == "threads")  # the CLI's own default
    bench = Bench(a)
    with contextlib.ExitStack() as stack:
        pg_url, pg_info = (None, "--sqlite-only") if a.sqlite_only else stack.enter_context(postgres_database())
        machine = machine_info() | {"postgresql": pg_info if pg_url else None}
        print("machine:")
        for k, val in machine.items():
            print(f"  {k:<11} {val if val is not None else '-'}")
        print(f"settings: tlog serve defaults = {workers} workers x {threads} threads (gthread); "
              f"{a.duration:g} s per point; {a.clients} client processes; sample {a.sample}")  # fmt: skip
        if not pg_url:
            print(f"PostgreSQL skipped: {pg_info}")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlog-bench-")))
        t = time.monotonic()
        bench.pool.get(0, int(2000 * a.duration))  # most of the signing, before any clock runs
        print(f"pre-signed {len(bench.pool.bodies)} hashedrekord bodies in {time.monotonic() - t:.1f} s\n")
        print(HEADER)
        bench.framework_ceiling(tmp, workers, threads)
        bench.log_backend("sqlite", tmp, None)
        if pg_url:
            bench.log_backend("postgres", tmp, pg_url)

    a.out.write_text(json.dumps({
        "machine": machine, "workers": workers, "threads": threads,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "results": bench.rows, "verification": bench.verification, "ok": bench.ok,
    }, indent=2) + "\n")  # fmt: skip
    print(f"\nresults written to {a.out}")
    if not bench.ok:
        print("FAILED: errors or unverified responses (see above)")
    return 0 if bench.ok else 1


if __name__ == "__main__":
    sys.exit(main())
