#!/usr/bin/env python3
"""Measure how fast ``tlog-monitor`` catches up with a log it has never seen.

Run it as ``scripts/bench-monitor`` (sets up .venv) or ``.venv/bin/python
scripts/bench_monitor.py``.

1. Build a log of ``--entries`` hashedrekord entries (default 100,000) on
   SQLite in a temporary directory: a process pool signs and canonicalises
   the entries (one P-256 key per process), and the parent integrates them
   through ``tlog.sequencer.integrate`` in batches of 1,000, straight into the
   database (no HTTP).
2. Serve it with ``tlog serve`` (default workers and threads, no CA).
3. Time ``tlog-monitor --once`` from an empty state directory: it fetches the
   checkpoint, pins the key, fetches every entry bundle, hashes every entry
   into a compact range and compares the root with the checkpoint. The figure
   is entries / wall-clock seconds of the whole process (interpreter start
   included), for the tiles API and, with ``--api both``, the Rekor v1 API.
4. Append ``--grow`` entries and time the incremental pass from the saved state.
5. With ``--watch``, time a catch-up with a watchlist (every entry parsed and
   its certificate checked by ``monitor.watch``).

Results (and the machine) are printed and written to bench-results/monitor-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() and VENV_PYTHON.exists():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])

sys.path.insert(0, str(ROOT / "tests"))
import speclient

MONITOR = str(VENV_PYTHON.with_name("tlog-monitor"))
ORIGIN = "bench.example/monitor"
BATCH = 1000

_identity: speclient.Identity | None = None


def _make_batch(n: int):  # type: ignore[no-untyped-def]
    """In a pool process: ``n`` signed, canonicalised entries."""
    global _identity
    from tlog import entries

    if _identity is None:
        _identity = speclient.make_identity(f"bench{os.getpid()}@example.com")
    out = []
    for _ in range(n):
        req, _digest = speclient.hashedrekord(_identity)
        out.append(entries.canonicalize(req))
    return out


def build(data_dir: Path, count: int, *, start: int = 0) -> float:
    """Append ``count`` entries to the log in ``data_dir``; returns seconds taken."""
    from tlog.api.state import Services
    from tlog.config import Settings
    from tlog.sequencer import integrate

    started = time.perf_counter()
    svc = Services.open(Settings(data_dir=data_dir, origin=ORIGIN, ca=False), migrate=True)
    try:
        batches = [min(BATCH, count - i) for i in range(0, count, BATCH)]
        with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            done = 0
            for batch in pool.imap(_make_batch, batches):
                integrate(svc.log, batch)
                done += len(batch)
                if done % max(BATCH, count // 10 // BATCH * BATCH) == 0 or done == count:
                    print(f"  {start + done:,} entries", file=sys.stderr, flush=True)
        assert svc.log.latest_head().size == start + count
    finally:
        svc.engine.dispose()
    return time.perf_counter() - started


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    import requests

    logf = open(data_dir.parent / "server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(VENV_PYTHON), "-m", "tlog.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir), "--no-ca"],
        stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("tlog serve did not start; see " + str(data_dir.parent / "server.log"))


def time_monitor(url: str, state_dir: Path, *extra: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [MONITOR, "--log", url, "--state-dir", str(state_dir), "--once", "-v", *extra],
        capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return elapsed, proc.returncode, proc.stderr + proc.stdout


def machine_info() -> dict[str, object]:
    def field(path: str, prefix: str) -> str:
        lines = Path(path).read_text().splitlines() if Path(path).exists() else []
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "0")

    return {
        "cpu": field("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(int(field("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--grow", type=int, default=1_000, help="entries appended before the incremental pass")
    parser.add_argument("--api", choices=("tiles", "rekor", "both"), default="tiles")
    parser.add_argument("--parallel", type=int, default=4, help="tlog-monitor --parallel")
    parser.add_argument("--watch", action="store_true", help="also time a catch-up with a (non-matching) watchlist")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log in this directory and keep it")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-monitor-")
    base = args.keep or Path(tmp.name)
    data_dir = base / "log"
    result: dict[str, object] = {"machine": machine_info(), "entries": args.entries, "parallel": args.parallel}
    if not (data_dir / "tlog.db").exists():
        print(f"building a log of {args.entries:,} entries in {data_dir}", file=sys.stderr)
        result["build_seconds"] = round(build(data_dir, args.entries), 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = serve(data_dir, port)
    url = f"http://127.0.0.1:{port}"
    runs = []
    try:
        import requests

        size = int(requests.get(url + "/checkpoint", timeout=10).text.split("\n")[1])
        for api in ("tiles", "rekor") if args.api == "both" else (args.api,):
            state = base / f"state-{api}-{time.time_ns()}"
            elapsed, status, output = time_monitor(url, state, "--api", api, "--parallel", str(args.parallel))
            if status != 0:
                raise SystemExit(f"tlog-monitor exited {status}:\n{output}")
            run = {"api": api, "pass": "catch-up", "entries": size, "seconds": round(elapsed, 3),
                   "entries_per_second": round(size / elapsed)}  # fmt: skip
            runs.append(run)
            print(f"{api:>5} catch-up of {size:,} entries: {elapsed:.2f} s = {size / elapsed:,.0f} entries/s")
            if args.grow and api == runs[0]["api"]:
                build(data_dir, args.grow, start=size)
                elapsed, status, output = time_monitor(url, state, "--api", api, "--parallel", str(args.parallel))
                if status != 0:
                    raise SystemExit(f"tlog-monitor exited {status}:\n{output}")
                runs.append({"api": api, "pass": "incremental", "entries": args.grow, "seconds": round(elapsed, 3)})
                print(f"{api:>5} incremental pass over {args.grow:,} new entries: {elapsed:.2f} s")
                size += args.grow
        if args.watch:
            watch = base / "watch.yaml"
            watch.write_text("certIdentities:\n  - certSubject: ^nobody@example\\.com$\n")
            elapsed, status, output = time_monitor(url, base / f"state-watch-{time.time_ns()}", "--watch", str(watch),
                                                   "--parallel", str(args.parallel))  # fmt: skip
            if status != 0:
                raise SystemExit(f"tlog-monitor exited {status}:\n{output}")
            runs.append({"api": "tiles", "pass": "catch-up with --watch", "entries": size, "seconds": round(elapsed, 3),
                         "entries_per_second": round(size / elapsed)})  # fmt: skip
            print(f"tiles catch-up of {size:,} entries with a watchlist: {elapsed:.2f} s = {size / elapsed:,.0f} entries/s")
    finally:
        server.terminate()
        server.wait(timeout=15)
    result["runs"] = runs
    out = ROOT / "bench-results" / f"monitor-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["machine"]), f"\nwritten to {out}")


if __name__ == "__main__":
    main()
