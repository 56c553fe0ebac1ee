#!/usr/bin/env python3
"""Benchmark tlog at scale: tree append and proofs in process, and a served log from 1k to 10M entries.

Run it as ``scripts/bench-scale`` (sets up .venv with the ``bench`` extra) or
``.venv/bin/python scripts/bench_scale.py``. Three parts, each selectable with
``--only``:

a. **append** (in process): appending 1M leaf hashes to a ``CompactRange``
   (root only; with a node-collecting visitor, as the sequencer did before;
   with ``extend_levels``, as it does now), then the *tree append*: the same
   plus the SQLite write of every new node in 10k-leaf transactions, as the
   sequencer does it (``store.insert_node_levels``) and as it did before
   (visitor + ``store.insert_nodes``). Then the full write path,
   ``sequencer.integrate(with_proofs=False, with_sets=False)`` as ``tlog
   load`` runs it, over 1M pre-generated real entries, with a breakdown of
   where its time goes.
b. **proofs** (in a fresh process, on the 1M-entry log of part a):
   ``TransparencyLog.entry_by_index`` (entry + inclusion proof, what
   ``GET /api/v1/log/entries?logIndex=`` serves), cold (the process's first
   proofs) and warm, and ``TransparencyLog.entries`` with 100 indexes per call
   (``POST /api/v1/log/entries/retrieve``).
c. **scale**: one log grown with ``tlog load`` to 1k, 10k, 100k, 1M (and 10M
   with ``--full``) entries; at each size a fresh ``tlog serve`` with its
   default settings answers ~500 inclusion-proof and ~500 consistency-proof
   requests (sequential, keep-alive); latency p50/p99 and the server's RSS
   (master and each worker, from /proc) are recorded, then plotted to
   ``bench-results/scale.png``. Then, still on that fresh server, proofs/s at
   64 concurrent clients for each kind, with scripts/bench.py's load generator,
   against the framework's ceiling (its trivial Flask endpoint under the same
   gunicorn settings) measured once at the start.

Every part verifies a sample of its own results with the independent verifier
in tests/speclient.py (roots, inclusion and consistency proofs, checkpoint
signatures, SETs): a fast wrong log is worthless. The machine is printed
first; it is shared, so the load average is printed at each step and every
in-process rate is given both per wall-clock second and per CPU second of the
measuring process (the latter is what one core sustains, whatever else runs).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() and VENV_PYTHON.exists():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # tlog and matplotlib live there

sys.path.insert(0, str(ROOT / "tests"))
import speclient  # noqa: E402  (the independent verifier: nothing of tlog's own is trusted)

ORIGIN = "bench.example/scale"
HOST = "127.0.0.1"
MiB = 1 << 20


# --- machine and measuring helpers -----------------------------------------------------


def machine_info() -> dict[str, Any]:
    def field(path: str, prefix: str) -> str:
        lines = Path(path).read_text().splitlines() if Path(path).exists() else []
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "?")

    rel = Path("/etc/os-release").read_text().splitlines() if Path("/etc/os-release").exists() else []
    pretty = next((ln.split("=", 1)[1].strip('"') for ln in rel if ln.startswith("PRETTY_NAME=")), platform.system())
    import cryptography
    import sqlalchemy

    return {
        "cpu": field("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(int(field("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "os": f"{pretty}, kernel {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "cryptography": cryptography.__version__,
        "loadavg_at_start": loadavg(),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Clock:
    """Wall and CPU (user + system of this process) time of a block."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0

    def rates(self, n: int) -> dict[str, float]:
        return {"n": n, "wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "per_s_wall": round(n / self.wall), "per_s_cpu": round(n / self.cpu) if self.cpu else None}  # fmt: skip


def show(name: str, r: dict[str, Any], unit: str) -> None:
    cpu = f"{r['per_s_cpu']:>10,} {unit}/s CPU" if r["per_s_cpu"] else " " * (15 + len(unit))
    print(f"  {name:<58} {r['per_s_wall']:>10,} {unit}/s wall  {cpu}"
          f"  ({r['n']:,} in {r['wall_s']:.2f} s, load {loadavg()})", flush=True)  # fmt: skip


def sha256_calibration(n: int = 1_000_000) -> dict[str, float]:
    """How fast this core hashes Merkle nodes right now (SHA-256 over 65 bytes)."""
    import hashlib

    sha = hashlib.sha256
    a, b = os.urandom(32), os.urandom(32)
    with Clock() as c:
        for _ in range(n):
            sha(b"\x01" + a + b).digest()
    return c.rates(n)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# --- (a) tree append and the integrate path ---------------------------------------------


def fresh_engine(path: Path) -> Any:
    from tlog.storage import db

    if path.exists():
        shutil.rmtree(path)
    engine = db.create_engine(db.sqlite_url(path))  # the server's settings: WAL, synchronous=FULL
    db.upgrade(engine)
    return engine


def bench_append(a: argparse.Namespace, work: Path, out: dict[str, Any]) -> None:
    from tlog import merkle
    from tlog.storage import store
    from tlog.storage.db import write_transaction
    from tlog.storage.models import node_key

    n, batch = a.append_count, a.batch
    print(f"\n(a) tree append: {n:,} leaves, {batch:,} per transaction")
    rng = random.Random(1)
    leaves = [rng.randbytes(32) for _ in range(n)]
    t = time.perf_counter()
    expected_root = speclient.root_of(leaves)  # independent: pairwise reduction
    print(f"  reference root by tests/speclient.py in {time.perf_counter() - t:.1f} s")
    res: dict[str, Any] = {}

    cr = merkle.CompactRange()
    with Clock() as c:
        cr.extend(leaves)
    assert cr.root() == expected_root
    res["compact_range_root_only"] = c.rates(n)
    show("CompactRange.extend, root only", res["compact_range_root_only"], "leaves")

    cr, collected = merkle.CompactRange(), []
    keep = collected.append
    with Clock() as c:
        cr.extend(leaves, lambda node, h: keep((node_key(node.level, node.index), h)))
    assert cr.root() == expected_root and len(collected) == 2 * n - bin(n).count("1")
    res["compact_range_visitor"] = c.rates(n)
    show("CompactRange.extend + node-collecting visitor (before)", res["compact_range_visitor"], "leaves")
    del collected

    cr, count = merkle.CompactRange(), 0
    with Clock() as c:
        for i in range(0, n, batch):
            count += sum(len(hs) for _, hs in cr.extend_levels(leaves[i : i + batch]))
    assert cr.root() == expected_root and count == 2 * n - bin(n).count("1")
    res["compact_range_extend_levels"] = c.rates(n)
    show("CompactRange.extend_levels, all nodes collected (now)", res["compact_range_extend_levels"], "leaves")

    # The tree append: hashing plus the durable write of every node.
    engine = fresh_engine(work / "append")
    cr = merkle.CompactRange()
    with Clock() as c:
        for i in range(0, n, batch):
            with write_transaction(engine, 1) as conn:
                store.insert_node_levels(conn, 1, cr.extend_levels(leaves[i : i + batch]))
    res["tree_append"] = c.rates(n)
    show("tree append: extend_levels + insert_node_levels (now)", res["tree_append"], "leaves")
    res["tree_append_verified"] = verify_stored_tree(engine.url.database, leaves, expected_root)
    engine.dispose()

    m = min(a.baseline_count, n)
    engine = fresh_engine(work / "append-before")
    cr = merkle.CompactRange()
    with Clock() as c:
        for i in range(0, m, batch):
            nodes: list[tuple[int, bytes]] = []
            cr.extend(leaves[i : i + batch], lambda node, h, keep=nodes.append: keep((node_key(node.level, node.index), h)))
            with write_transaction(engine, 1) as conn:
                store.insert_nodes(conn, 1, nodes)
    res["tree_append_before"] = c.rates(m)
    show("tree append: visitor + insert_nodes (before)", res["tree_append_before"], "leaves")
    engine.dispose()
    shutil.rmtree(work / "append-before")
    out["append"] = res


def verify_stored_tree(db_path: str, leaves: list[bytes], root: bytes, samples: int = 50) -> str:
    """Rebuild sampled inclusion proofs from the stored nodes with plain sqlite3 and check them with speclient."""
    from tlog import merkle
    from tlog.storage.models import node_key

    n = len(leaves)
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT count(*) FROM nodes WHERE tree = 1").fetchone()[0]
        if rows != 2 * n - bin(n).count("1"):
            raise speclient.VerificationError(f"{rows} nodes stored for {n} leaves")
        for i in random.Random(2).sample(range(n), samples):
            ids = merkle.inclusion(i, n)
            hashes = [con.execute("SELECT hash FROM nodes WHERE tree = 1 AND key = ?", (node_key(x.level, x.index),)).fetchone()[0] for x in ids.ids]
            if speclient.root_from_inclusion(i, n, leaves[i], ids.rehash(hashes)) != root:
                raise speclient.VerificationError(f"stored nodes give a wrong proof for leaf {i}")
    finally:
        con.close()
    msg = f"verified: {rows:,} nodes stored; root and {samples} inclusion proofs from the stored nodes check out"
    print("  " + msg)
    return msg


def generate_entries(count: int, batch: int, jobs: int) -> tuple[list[Any], dict[str, Any]]:
    from tlog import bulk

    entries: list[Any] = []
    with Clock() as c:
        for b in bulk.synthetic_batches(count, batch, processes=jobs):
            entries.extend(b)
    rates = c.rates(count)
    rates["per_s_cpu"] = None  # the work is done in the worker processes
    return entries, rates


@contextlib.contextmanager
def integrate_breakdown() -> Iterator[dict[str, float]]:
    """Time spent in each storage call and in the commit, inside sequencer.integrate."""
    import tlog.sequencer as seq
    from tlog.storage import store

    spent: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    names = ["latest_head", "get_node_hashes", "find_leaf_hashes", "insert_entries", "insert_node_levels",
             "insert_search_keys", "insert_head"]  # fmt: skip
    saved = {name: getattr(store, name) for name in names}
    saved_tx = seq.write_transaction

    @contextlib.contextmanager
    def write_transaction(engine: Any, tree: int) -> Iterator[Any]:
        cm = saved_tx(engine, tree)
        conn = cm.__enter__()
        try:
            yield conn
        except BaseException:
            if not cm.__exit__(*sys.exc_info()):
                raise
        else:
            t = time.perf_counter()
            cm.__exit__(None, None, None)
            spent["commit"] = spent.get("commit", 0.0) + time.perf_counter() - t

    for name in names:
        setattr(store, name, timed(name, saved[name]))
    seq.write_transaction = write_transaction
    try:
        yield spent
    finally:
        for name, fn in saved.items():
            setattr(store, name, fn)
        seq.write_transaction = saved_tx


def bench_integrate(a: argparse.Namespace, work: Path, out: dict[str, Any]) -> Path:
    from tlog import bulk
    from tlog.sequencer import integrate

    n = a.integrate_count
    print(f"\n(a') integrate path: {n:,} real hashedrekord entries, {a.batch:,} per batch (one transaction and checkpoint each)")
    entries, gen = generate_entries(n, a.batch, a.jobs)
    show(f"generating signed entries ({a.jobs} worker processes)", gen, "entries")
    data = work / "log-1m"
    if data.exists():
        shutil.rmtree(data)
    tlog = bulk.open_log(data, None, origin=ORIGIN)
    sign = tlog.sign_head
    signing = [0.0]

    def timed_sign(*args: Any) -> Any:
        t = time.perf_counter()
        try:
            return sign(*args)
        finally:
            signing[0] += time.perf_counter() - t

    tlog.sign_head = timed_sign  # type: ignore[method-assign]
    with integrate_breakdown() as spent, Clock() as c:
        for i in range(0, n, a.batch):
            integrate(tlog, entries[i : i + a.batch], with_proofs=False, with_sets=False)
    tlog.sign_head = sign  # type: ignore[method-assign]
    spent["sign_head"] = signing[0]
    spent["other (leaf hashing, extend_levels, Python)"] = c.wall - sum(spent.values())
    res = {"generate": gen, "integrate": c.rates(n), "breakdown_s": {k: round(v, 3) for k, v in spent.items()}}
    show("sequencer.integrate(with_proofs=False, with_sets=False)", res["integrate"], "entries")
    for k, v in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"      {k:<44} {v:7.2f} s  {100 * v / c.wall:5.1f} %")
    head = tlog.latest_head()
    sample = random.Random(3).sample(range(n), 50)
    proofs = tlog.entries(sample)
    for p in proofs:
        if speclient.root_from_inclusion(p.entry.log_index, head.size, speclient.leaf_hash(entries[p.entry.log_index].body), p.proof) != head.root_hash:
            raise speclient.VerificationError(f"entry {p.entry.log_index}: proof does not reach the signed root")
    cp = speclient.verify_checkpoint(head.checkpoint, speclient.LogKey(tlog.keys.ecdsa.public_key()))
    assert (cp.size, cp.root) == (n, head.root_hash) and len(proofs) == 50
    res["verified"] = f"verified: checkpoint signature, size {n:,}, 50 entries' bodies and inclusion proofs against its root"
    print("  " + res["verified"])
    tlog.engine.dispose()
    del entries
    out["integrate"] = res
    return data


# --- (b) proofs in a fresh process --------------------------------------------------------


def proof_worker(data_dir: Path, n: int) -> None:
    """Runs in its own process: open the log cold, serve proofs, verify a sample, print JSON."""
    t0 = time.perf_counter()
    from tlog import bulk, merkle

    tlog = bulk.open_log(data_dir, None)
    tlog.preload_upper_levels()  # as each worker of `tlog serve` does when it starts
    opened = time.perf_counter() - t0
    head = tlog.latest_head()
    rng = random.Random(os.getpid())
    res: dict[str, Any] = {"open_s": round(opened, 3), "size": head.size}
    cold = [rng.randrange(head.size) for _ in range(n)]
    t = time.perf_counter()
    first = tlog.entry_by_index(cold[0])
    res["first_proof_ms"] = round((time.perf_counter() - t) * 1000, 3)
    # Every 50th answer is kept for verification (keeping all would measure the benchmark's memory).
    with Clock() as c:
        got_cold = [p for k, i in enumerate(cold) if (p := tlog.entry_by_index(i)) and k % 50 == 0]
    res["entry_by_index_cold"] = c.rates(n)
    warm = [rng.randrange(head.size) for _ in range(n)]
    with Clock() as c:
        got_warm = [p for k, i in enumerate(warm) if (p := tlog.entry_by_index(i)) and k % 50 == 0]
    res["entry_by_index_warm"] = c.rates(n)
    batched = [rng.randrange(head.size) for _ in range(n)]
    got_batched = []
    with Clock() as c:
        for j in range(0, n, 100):
            got_batched.extend(tlog.entries(batched[j : j + 100])[::50])
    res["entries_100_per_call"] = c.rates(n)
    key = speclient.LogKey(tlog.keys.ecdsa.public_key())
    cp = speclient.verify_checkpoint(head.checkpoint, key)
    checked = 0
    for inc in [first, *got_cold, *got_warm, *got_batched]:
        e = inc.entry
        if inc.head.root_hash != cp.root or inc.head.size != cp.size:
            raise speclient.VerificationError("proof against another head")
        merkle.verify_inclusion(e.log_index, cp.size, speclient.leaf_hash(e.body), inc.proof, cp.root)
        if speclient.root_from_inclusion(e.log_index, cp.size, speclient.leaf_hash(e.body), inc.proof) != cp.root:
            raise speclient.VerificationError(f"entry {e.log_index}: proof does not verify")
        checked += 1
    res["verified"] = f"verified: checkpoint signature; {checked} sampled proofs with tlog.merkle.verify_inclusion and tests/speclient.py"
    # VmHWM, not ru_maxrss: the latter survives exec, so it would report the parent's size at fork.
    hwm = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:"))
    res["max_rss_mib"] = round(int(hwm.split()[1]) / 1024, 1)
    print(json.dumps(res))


def bench_proofs(a: argparse.Namespace, data: Path, out: dict[str, Any]) -> None:
    print(f"\n(b) inclusion proofs in a fresh process, SQLite, {a.proof_count:,} per pass (OS page cache not dropped)")
    proc = subprocess.run([sys.executable, __file__, "--proof-worker", str(data), str(a.proof_count)],
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"proof worker failed:\n{proc.stdout}\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  tree size {res['size']:,}; process start + imports + open: {res['open_s']:.2f} s; first proof {res['first_proof_ms']:.1f} ms")
    show("entry_by_index, cold (the process's first proofs)", res["entry_by_index_cold"], "proofs")
    show("entry_by_index, warm", res["entry_by_index_warm"], "proofs")
    show("entries(), 100 indexes per call (retrieve API)", res["entries_100_per_call"], "proofs")
    print(f"  {res['verified']}; worker max RSS {res['max_rss_mib']} MiB")
    out["proofs"] = res


# --- (c) scale: a served log from 1k to 10M entries ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss(pid: int) -> dict[str, Any]:
    """RSS (VmRSS) and peak (VmHWM) of a gunicorn master and each of its workers, in MiB."""

    def status(p: int) -> dict[str, float]:
        fields = {}
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                fields[k] = int(v.split()[0]) / 1024
        # PSS shares each page among the processes mapping it: forked workers
        # share the master's pages, which a sum of RSS counts several times.
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                fields["Pss"] = int(line.split()[1]) / 1024
        return fields

    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    master = status(pid)
    workers = [status(c) for c in children]
    return {
        "master_mib": round(master["VmRSS"], 1),
        "workers_mib": [round(w["VmRSS"], 1) for w in workers],
        "max_worker_mib": round(max(w["VmRSS"] for w in workers), 1),
        "max_worker_peak_mib": round(max(w["VmHWM"] for w in workers), 1),
        "total_mib": round(master["VmRSS"] + sum(w["VmRSS"] for w in workers), 1),
        "total_pss_mib": round(master["Pss"] + sum(w["Pss"] for w in workers), 1),
    }


class Served:
    """A fresh ``tlog serve`` with default workers and threads on a free loopback port."""

    def __init__(self, data: Path, log: Path) -> None:
        self.port = free_port()
        self.args = [sys.executable, "-m", "tlog.cli", "serve", "--host", HOST, "--port", str(self.port), "--data-dir", str(data)]
        self.log = log

    def __enter__(self) -> Served:
        self.logf = open(self.log, "ab")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = self.get("/healthz", fresh=True)
                if status == 200 and len(Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()) > 0:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"tlog serve did not come up:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str, fresh: bool = False) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60) if fresh else self.conn
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if fresh:
            conn.close()
        return resp.status, body

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
                if self.proc.poll() is None:
                    os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=20)
                break
        self.logf.close()


def stored_heads(db_path: Path, key: speclient.LogKey) -> dict[int, bytes]:
    """Every signed head of the entry log, read with plain sqlite3, each signature checked by speclient."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tree = con.execute("SELECT id FROM trees WHERE purpose = 'entries'").fetchone()[0]
        rows = con.execute("SELECT size, checkpoint FROM tree_heads WHERE tree = ? ORDER BY size", (tree,)).fetchall()
    finally:
        con.close()
    heads = {}
    for size, text in rows:
        cp = speclient.verify_checkpoint(text, key)
        if cp.size != size:
            raise speclient.VerificationError(f"head row {size} holds a checkpoint of size {cp.size}")
        heads[size] = cp.root
    return heads


def load_to(data: Path, target: int, current: int, a: argparse.Namespace) -> dict[str, Any]:
    """Grow the log with ``tlog load`` (its progress bar on our stderr)."""
    delta = target - current
    if delta == 0:
        return {"added": 0, "batch": None, "seconds": 0.0, "entries_per_s": None}
    batch = max(100, min(a.batch, delta // 10))  # at least ~10 checkpoints per step, for consistency proofs
    cmd = [sys.executable, "-m", "tlog.cli", "load", "--data-dir", str(data), "--origin", ORIGIN,
           "--count", str(delta), "--batch", str(batch), "--jobs", str(a.jobs), *(["--sets"] if a.sets else [])]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=24 * 3600)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"tlog load failed: {proc.stdout}")
    summary = proc.stdout.strip().splitlines()[-1]
    m = re.search(r"tree size [\d,]+ -> ([\d,]+)", summary)
    if not m or int(m.group(1).replace(",", "")) != target:
        raise RuntimeError(f"tlog load did not reach {target}: {summary}")
    print(f"  tlog load: {summary}")
    return {"added": delta, "batch": batch, "seconds": round(elapsed, 1), "entries_per_s": round(delta / elapsed)}


def http_bench() -> Any:
    """scripts/bench.py: the HTTP benchmark's load generator, servers and ceiling app, measured the same way here."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench

    return bench


def measure_ceiling(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The trivial Flask endpoint under tlog serve's gunicorn settings, at --concurrency clients."""
    hb = http_bench()
    workers, threads = hb.serve_defaults()
    with hb.Server(hb.ceiling_command(work, workers, threads), work / "ceiling.log") as srv:
        reqs = [hb.http_request("POST", "/echo", srv.port, b) for b in hb.BodyPool().get(0, 1000)]
        load = {"concurrency": a.concurrency, "clients": a.clients, "server_pid": srv.pid, "expect": 201}
        hb.run_load(srv.port, reqs, duration=2, **load)  # warm every worker
        r = hb.run_load(srv.port, reqs, duration=a.throughput_seconds, **load)
    if r["errors"]:
        raise RuntimeError(f"the ceiling app answered {r['errors']} errors")
    print(f"  framework ceiling ({workers} workers x {threads} threads, {a.concurrency} clients): {r['rate']:,.0f} req/s")
    return {"rate": round(r["rate"], 1), "workers": workers, "threads": threads, "concurrency": a.concurrency}


def measure_served(data: Path, size: int, a: argparse.Namespace, log: Path) -> dict[str, Any]:
    rng = random.Random(size)
    with Served(data, log) as srv:
        key = speclient.LogKey.from_pem(srv.get("/api/v1/log/publicKey")[1])
        _status, body = srv.get("/api/v1/log")
        head = speclient.verify_checkpoint(json.loads(body)["signedTreeHead"], key)
        if head.size != size:
            raise speclient.VerificationError(f"served tree size {head.size}, expected {size}")
        roots = stored_heads(data / "tlog.db", key)
        if roots[size] != head.root:
            raise speclient.VerificationError("the served head is not the stored one")
        old_sizes = [s for s in roots if 0 < s < size]
        idle = rss(srv.proc.pid)
        res: dict[str, Any] = {"size": size, "rss_idle": idle}
        verified = {"inclusion": 0, "consistency": 0}

        def run(kind: str, make: Callable[[], tuple[str, Any]], check: Callable[[Any, bytes], None]) -> dict[str, Any]:
            for _ in range(a.warmup):
                srv.get(make()[0])
            latencies, samples = [], []
            for _ in range(a.requests):
                path, arg = make()
                t = time.perf_counter()
                status, body = srv.get(path)
                latencies.append((time.perf_counter() - t) * 1000)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status} {body[:300]!r}")
                if len(samples) < a.verify:
                    samples.append((arg, body))
            for arg, body in samples:
                check(arg, body)
                verified[kind] += 1
            return {"requests": a.requests, "p50_ms": round(percentile(latencies, 50), 2),
                    "p99_ms": round(percentile(latencies, 99), 2), "mean_ms": round(sum(latencies) / len(latencies), 2),
                    "max_ms": round(max(latencies), 2)}  # fmt: skip

        def inclusion_req() -> tuple[str, int]:
            i = rng.randrange(size)
            return f"/api/v1/log/entries?logIndex={i}", i

        def inclusion_check(i: int, body: bytes) -> None:
            _uuid, entry, cp = speclient.verify_entry(json.loads(body), key)
            if entry["logIndex"] != i or (cp.size, cp.root) != (head.size, head.root):
                raise speclient.VerificationError(f"entry {i}: wrong index or not proven against the current head")

        def consistency_req() -> tuple[str, int]:
            first = rng.choice(old_sizes)
            return f"/api/v1/log/proof?firstSize={first}&lastSize={size}", first

        def consistency_check(first: int, body: bytes) -> None:
            doc = json.loads(body)
            if doc["rootHash"] != head.root.hex():
                raise speclient.VerificationError("consistency proof for another root")
            speclient.verify_consistency(first, size, roots[first], head.root, [bytes.fromhex(h) for h in doc["hashes"]])

        def throughput(kind: str, make: Callable[[], tuple[str, Any]], check: Callable[[Any, bytes], None]) -> dict[str, Any]:
            """Proofs/s at --concurrency clients; every sampled response verified like the sequential ones."""
            hb = http_bench()
            made = [make() for _ in range(20_000)]
            reqs = [hb.http_request("GET", path, srv.port) for path, _arg in made]
            r = hb.run_load(srv.port, reqs, concurrency=a.concurrency, duration=a.throughput_seconds, clients=a.clients,
                            server_pid=srv.proc.pid, sample=a.verify)  # fmt: skip
            if r["errors"]:
                raise RuntimeError(f"{kind}: {r['errors']} errors under load, e.g. {r['error_samples'][:2]}")
            for i, body in r["samples"]:
                check(made[i][1], body)
                verified[kind] += 1
            return {"rate": round(r["rate"], 1), "p50_ms": round(r["p50_ms"], 2), "p99_ms": round(r["p99_ms"], 2),
                    "requests": r["requests"], "server_cpu_pct": round(r["server_cpu_pct"], 1)}  # fmt: skip

        res["inclusion"] = run("inclusion", inclusion_req, inclusion_check)
        res["consistency"] = run("consistency", consistency_req, consistency_check)
        if a.throughput_seconds > 0:
            res["inclusion"]["loaded"] = throughput("inclusion", inclusion_req, inclusion_check)
            res["consistency"]["loaded"] = throughput("consistency", consistency_req, consistency_check)
        res["rss"] = rss(srv.proc.pid)
        res["verified"] = (f"verified: served head and {len(roots)} stored checkpoints' signatures; "
                           f"{verified['inclusion']} entries (SET, inclusion proof, checkpoint) and "
                           f"{verified['consistency']} consistency proofs between signed heads")  # fmt: skip
    return res


def bench_scale(a: argparse.Namespace, work: Path, out: dict[str, Any]) -> None:
    sizes = list(a.sizes) + ([10_000_000] if a.full else [])
    print(f"\n(c) scale: one log grown to {', '.join(f'{s:,}' for s in sizes)} entries; at each size a fresh "
          f"`tlog serve` (defaults) answers {a.requests} inclusion + {a.requests} consistency requests "
          f"(sequential, keep-alive, after {a.warmup} warm-up each)")  # fmt: skip
    data = work / "scale"
    rows: list[dict[str, Any]] = []
    current, rate = 0, None
    if a.resume:
        # Go on with the log a previous run kept (--keep): its rows below the
        # log's current size are taken over, the other sizes are measured now.
        con = sqlite3.connect(f"file:{data / 'tlog.db'}?mode=ro", uri=True)
        current = con.execute("SELECT max(size) FROM tree_heads WHERE tree = (SELECT id FROM trees WHERE purpose = 'entries')").fetchone()[0]
        con.close()
        rows = [dict(r, resumed_from=str(a.resume)) for r in json.loads(a.resume.read_text())["scale"] if r["size"] < current]
        sizes = [s for s in sizes if s >= current]
        print(f"  resuming: the log in {data} has {current:,} entries; rows for {[r['size'] for r in rows]} taken from {a.resume}")
    elif data.exists():
        shutil.rmtree(data)
    out["scale"] = rows
    if a.throughput_seconds > 0:
        out["ceiling"] = measure_ceiling(a, work)
    for size in sizes:
        if rate:
            print(f"  ETA for the remaining steps: ~{(sizes[-1] - current) / rate / 60:.0f} min of loading at "
                  f"{rate:,.0f} entries/s, plus ~1 min of measuring per step")  # fmt: skip
        print(f"\n  size {size:,} (load {loadavg()})")
        loaded = load_to(data, size, current, a)
        rate = loaded["entries_per_s"] or rate
        current = size
        row = {"size": size, "load": loaded, "db_mib": round(sum(f.stat().st_size for f in data.glob("tlog.db*")) / MiB, 1)}
        row |= measure_served(data, size, a, work / f"serve-{size}.log")
        row["loadavg"] = loadavg()
        rows.append(row)
        inc, con, mem = row["inclusion"], row["consistency"], row["rss"]
        print(f"  inclusion p50 {inc['p50_ms']:.2f} ms p99 {inc['p99_ms']:.2f} ms | consistency p50 {con['p50_ms']:.2f} ms "
              f"p99 {con['p99_ms']:.2f} ms | RSS master {mem['master_mib']} MiB, workers {mem['workers_mib']} MiB "
              f"(peak {mem['max_worker_peak_mib']}), sum {mem['total_mib']} MiB, PSS {mem['total_pss_mib']} MiB | db {row['db_mib']:,} MiB")  # fmt: skip
        if "loaded" in inc:
            ceiling = out["ceiling"]["rate"]
            print("  " + " | ".join(
                f"{kind} at {a.concurrency} clients {row[kind]['loaded']['rate']:,.0f}/s "
                f"({row[kind]['loaded']['rate'] / ceiling:.2f} of the ceiling), p99 {row[kind]['loaded']['p99_ms']:.0f} ms"
                for kind in ("inclusion", "consistency")))  # fmt: skip
        print(f"  {row['verified']}")
        write_outputs(a, out)


def _by_size(ax: Any, ylabel: str, title: str, *, legend_size: float | None = None) -> None:
    """One panel's axes: log size on a log scale, the y axis from 0."""
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("log size (entries)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)


def plot(a: argparse.Namespace, out: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["scale"]
    sizes = [r["size"] for r in rows]
    loaded = [r for r in rows if "loaded" in r["inclusion"]]
    fig, axes = plt.subplots(1, 3 if loaded else 2, figsize=(19 if loaded else 13, 5.2))
    lat, mem = axes[0], axes[1]
    for kind, color in (("inclusion", "tab:blue"), ("consistency", "tab:orange")):
        lat.plot(sizes, [r[kind]["p50_ms"] for r in rows], "o-", color=color, label=f"{kind} p50")
        lat.plot(sizes, [r[kind]["p99_ms"] for r in rows], "s--", color=color, alpha=0.7, label=f"{kind} p99")
    _by_size(lat, "latency over HTTP (ms)", f"proof latency, {rows[0]['inclusion']['requests']} sequential requests per point")
    mem.plot(sizes, [r["rss"]["max_worker_mib"] for r in rows], "o-", label="largest worker")
    mem.plot(sizes, [r["rss"]["max_worker_peak_mib"] for r in rows], "^:", label="largest worker, peak (VmHWM)")
    mem.plot(sizes, [r["rss"]["master_mib"] for r in rows], "s-", label="master")
    mem.plot(sizes, [r["rss"]["total_mib"] for r in rows], "d-", label=f"sum of RSS ({len(rows[0]['rss']['workers_mib'])} workers + master)")
    mem.plot(sizes, [r["rss"]["total_pss_mib"] for r in rows], "v-", label="sum of PSS (shared pages counted once)")
    mem.axhline(150, color="red", linestyle="--", linewidth=1, label="150 MiB")
    _by_size(mem, "RSS (MiB)", "tlog serve memory after the requests", legend_size=8)
    if loaded:
        tp, ceiling = axes[2], out["ceiling"]
        for kind, color in (("inclusion", "tab:blue"), ("consistency", "tab:orange")):
            tp.plot([r["size"] for r in loaded], [r[kind]["loaded"]["rate"] for r in loaded], "o-", color=color, label=kind)
        tp.axhline(ceiling["rate"], color="gray", linestyle="-", linewidth=1, label=f"framework ceiling {ceiling['rate']:,.0f}/s")
        tp.axhline(0.7 * ceiling["rate"], color="red", linestyle="--", linewidth=1, label="70% of the ceiling (goal)")
        _by_size(tp, "proofs/s", f"proofs/s at {ceiling['concurrency']} clients, fresh server", legend_size=8)
    m = out["machine"]
    fig.suptitle(f"tlog at scale (SQLite): {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, "
                 f"Python {m['python']}, SQLite {m['sqlite']}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    plt.close(fig)


def write_outputs(a: argparse.Namespace, out: dict[str, Any]) -> None:
    out["machine"]["loadavg_now"] = loadavg()
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    if not out.get("scale"):
        return
    try:
        import matplotlib  # noqa: F401  (the `bench` extra)
    except ImportError:
        print(f"  note: matplotlib is not installed, so no plot ({a.png})")
        return
    plot(a, out)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--proof-worker":
        proof_worker(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="a,b,c", help="parts to run: a (append, integrate), b (proofs), c (scale); default all")
    p.add_argument("--full", action="store_true", help="also grow the log to 10,000,000 entries (takes long: see its ETA)")
    p.add_argument("--sizes", default="1000,10000,100000,1000000", help="log sizes for part c")
    p.add_argument("--append-count", type=int, default=1_000_000, help="leaves for the tree-append measurements")
    p.add_argument("--baseline-count", type=int, default=200_000, help="leaves for the 'before' tree append (slow)")
    p.add_argument("--integrate-count", type=int, default=1_000_000, help="entries for the integrate path (and part b's log)")
    p.add_argument("--proof-count", type=int, default=20_000, help="proofs per pass in part b")
    p.add_argument("--requests", type=int, default=500, help="requests per proof kind and size in part c")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured requests per proof kind and size first")
    p.add_argument("--verify", type=int, default=25, help="responses verified per proof kind and size (and per loaded run)")
    p.add_argument("--throughput-seconds", type=float, default=6, help="part c: seconds of loaded proofs per kind and size (0: skip)")
    p.add_argument("--concurrency", type=int, default=64, help="part c: clients for the loaded proofs and the ceiling")
    p.add_argument("--clients", type=int, default=2, help="part c: load generator processes")
    p.add_argument("--batch", type=int, default=10_000, help="entries (leaves) per transaction")
    p.add_argument("--sets", action="store_true", help="part c: load with `tlog load --sets` (stored SETs, as submissions have)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="entry-generating worker processes")
    p.add_argument("--work-dir", type=Path, help="where the databases go (default: a temporary directory, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--resume", type=Path, metavar="JSON",
                   help="part c: go on with the log kept in --work-dir, taking the rows below its size from this earlier result")  # fmt: skip
    p.add_argument("--out", type=Path, help="JSON results (default bench-results/scale-<timestamp>.json)")
    p.add_argument("--png", type=Path, default=ROOT / "bench-results" / "scale.png", help="the plot (default bench-results/scale.png)")
    a = p.parse_args()
    a.parts = set(a.only.split(","))
    a.sizes = [int(s) for s in a.sizes.split(",")]
    a.out = a.out or ROOT / "bench-results" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.png.parent.mkdir(parents=True, exist_ok=True)

    machine = machine_info()
    machine["sha256_node_hashes"] = sha256_calibration()
    print("machine:\n" + "".join(f"  {k:<18} {v}\n" for k, v in machine.items() if k != "sha256_node_hashes"), end="")
    show("calibration: SHA-256 node hashes, one core", machine["sha256_node_hashes"], "hashes")
    out: dict[str, Any] = {"machine": machine, "args": {k: str(v) if isinstance(v, (Path, set)) else v for k, v in vars(a).items()}}

    work = a.work_dir or Path(tempfile.mkdtemp(prefix="tlog-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {work}{' (kept)' if a.keep or a.work_dir else ''}")
    try:
        log_1m = work / "log-1m"
        if "a" in a.parts:
            bench_append(a, work, out)
            write_outputs(a, out)
            log_1m = bench_integrate(a, work, out)
            write_outputs(a, out)
        if "b" in a.parts:
            if not (log_1m / "tlog.db").exists():
                print(f"\n(b) needs a log: loading {a.integrate_count:,} entries with tlog load first")
                load_to(log_1m, a.integrate_count, 0, a)
            bench_proofs(a, log_1m, out)
            write_outputs(a, out)
        if "c" in a.parts:
            bench_scale(a, work, out)
    finally:
        write_outputs(a, out)
        if not (a.keep or a.work_dir):
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nresults written to {a.out}" + (f" and {a.png}" if out.get("scale") and a.png.exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
