#!/usr/bin/env python3
"""Where a request's CPU goes in ``tlog serve``, against the budget each ratio goal leaves it.

Run it as ``scripts/bench-budget`` (sets up .venv) or ``.venv/bin/python scripts/bench_budget.py``.

``scripts/bench`` measures rates; this explains them. When the two cores are
saturated, a server's rate is the CPU it gets divided by the CPU one request
costs, so a goal of "a fraction *g* of the ceiling's rate" is a budget: a
request may cost at most 1/*g* times the CPU the ceiling's trivial request
costs. Under load (64 clients, ``tlog serve``'s default workers and threads,
the ceiling app under the same gunicorn settings) this script splits what each
kind of request costs into

* **app**: CPU on the request thread inside the WSGI app (Flask and tlog),
  measured per request with the thread's CPU clock by a middleware wrapped
  around the app in every worker (launchers below; nothing in tlog changes);
* **writer**: the writer process (submissions are integrated there);
* **database**: the PostgreSQL backends (``--postgres``);
* **gunicorn and kernel**: the rest of the server's CPU (HTTP parsing, socket
  reads and writes, hand-offs between gunicorn's threads), by subtraction.

It then times the same WSGI calls in a loop in one process, with the CPU's
caches hot, and with them flushed between calls (a buffer of four times the
L2 size written over): the app's cost with no server around it, and what
cold caches add. Sampled responses are verified with tests/speclient.py, as in
``scripts/bench``. Results go to JSON and, with matplotlib, to a PNG.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (re-executes under .venv when needed; the load generator, servers and verifier)

ROOT = bench.ROOT
#: The ratio goals of issue #5, by (test, backend).
GOALS = bench.GOALS_VS_CEILING

# The middleware, written next to the launchers in the run's directory: per
# request it only adds to two totals (under 5 us per request, measured in a loop).
APP_CPU = '''\
import json, os, threading, time

class AppCPU:
    """Thread CPU spent inside the WSGI app per request, body included; a thread of
    each worker writes the totals to a file every 0.1 s (os.replace: never torn)."""

    def __init__(self, app, directory):
        self.app, self.directory = app, directory
        self.lock, self.requests, self.seconds, self.pid = threading.Lock(), 0, 0.0, 0

    def __call__(self, environ, start_response):
        if self.pid != os.getpid():  # the first request in this worker (after gunicorn's fork)
            self.pid = os.getpid()
            threading.Thread(target=self.flush, daemon=True).start()
        started = time.thread_time()
        result = self.app(environ, start_response)
        try:
            body = list(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        spent = time.thread_time() - started
        with self.lock:
            self.requests += 1
            self.seconds += spent
        return body

    def flush(self):
        path, written = os.path.join(self.directory, f"app-cpu-{os.getpid()}.json"), None
        while True:
            with self.lock:
                totals = [self.requests, self.seconds]
            if totals != written:
                with open(path + ".tmp", "w") as f:
                    json.dump(totals, f)
                os.replace(path + ".tmp", path)
                written = totals
            time.sleep(0.1)
'''
CEILING_WRAPPED = bench.CEILING_APP + "\nfrom appcpu import AppCPU\napp = AppCPU(app, DIRECTORY)\n"
TLOG_WRAPPED = """\
import sys
from appcpu import AppCPU
import tlog.server
_create_app = tlog.server._create_app
tlog.server._create_app = lambda settings: AppCPU(_create_app(settings), DIRECTORY)
from tlog.cli import main
sys.exit(main())
"""


def app_cpu(directory: Path) -> tuple[int, float]:
    """(requests, CPU seconds) inside the app so far, summed over the workers' files."""
    n, s = 0, 0.0
    for f in directory.glob("app-cpu-*.json"):
        with contextlib.suppress(OSError, ValueError):
            r, sec = json.loads(f.read_text())
            n, s = n + r, s + sec
    return n, s


def writer_pid(master: int) -> int | None:
    for c in bench.child_pids(master):
        with contextlib.suppress(OSError):
            if b"tlog.writer" in Path(f"/proc/{c}/cmdline").read_bytes():
                return c
    return None


def split(srv: bench.Server, directory: Path, port: int, reqs: list[bytes], a: argparse.Namespace,
          db_pids: Callable[[], list[int]] = list, **kw: Any) -> dict[str, Any]:  # fmt: skip
    """One loaded run with its CPU split per request into app, writer, database, and gunicorn and kernel."""
    writer = writer_pid(srv.pid)
    time.sleep(0.3)  # the workers' totals of earlier requests reach their files
    app0, w0 = app_cpu(directory), bench.cpu_snapshot([writer] if writer else [])
    res = bench.run_load(port, reqs, concurrency=a.concurrency, duration=a.duration, clients=a.clients,
                         server_pid=srv.pid, db_pids=db_pids, sample=a.sample, **kw)  # fmt: skip
    time.sleep(0.3)  # the last requests' totals reach their files
    app1, w1 = app_cpu(directory), bench.cpu_snapshot([writer] if writer else [])
    n = res["requests"]
    if not n or res["errors"]:
        raise SystemExit(f"run failed: {res['errors']} errors of {n}: {res['error_samples'][:3]}")
    wall = res["seconds"]
    per = 1e6 / 100 / res["rate"]  # a percent of a core, as µs per request
    server_us = res["server_cpu_pct"] * per
    app_n, app_s = app1[0] - app0[0], app1[1] - app0[1]
    app_us = app_s / app_n * 1e6 if app_n else 0.0
    writer_us = bench.cpu_used(w0, w1) / wall / res["rate"] * 1e6 if writer else 0.0
    db_us = res["db_cpu_pct"] * per
    return {
        "requests": n, "rate": res["rate"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
        "cost_us": server_us + db_us, "app_us": app_us, "writer_us": writer_us, "database_us": db_us,
        "gunicorn_kernel_us": max(0.0, server_us - app_us - writer_us),
        "client_cpu_pct": res["client_cpu_pct"], "other_cpu_pct": res["other_cpu_pct"],
        "app_requests_timed": app_n, "samples": res["samples"],
    }  # fmt: skip


# --- the same requests as plain WSGI calls in one process ---------------------------------


def wsgi_call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[str, bytes]:
    p, _, q = path.partition("?")
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": p, "QUERY_STRING": q, "SERVER_NAME": bench.HOST, "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": bench.HOST,
    }  # fmt: skip
    status: list[str] = []
    result = app(environ, lambda s, h, exc=None: status.append(s))
    try:
        out = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return status[0], out


def l2_bytes() -> int:
    """This CPU's L2 cache size (sysfs), or 2 MiB if unknown."""
    for idx in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        with contextlib.suppress(OSError, ValueError):
            if (idx / "level").read_text().strip() == "2":
                size = (idx / "size").read_text().strip()
                return int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]] if size[-1] in "KM" else int(size)
    return 2 << 20


def loop_costs(calls: dict[str, Callable[[], None]], n: int) -> dict[str, dict[str, float]]:
    """µs of process CPU per call, caches hot, then with 4x L2 written over between calls (not timed)."""
    junk = bytearray(4 * l2_bytes())
    zeros = bytes(len(junk[::64]))
    out: dict[str, dict[str, float]] = {}
    for name, call in calls.items():
        for _ in range(min(200, n)):
            call()
        t = time.process_time()
        for _ in range(n):
            call()
        hot = (time.process_time() - t) / n * 1e6
        spent = 0.0
        for _ in range(n):
            junk[::64] = zeros  # one write per cache line
            t = time.process_time()
            call()
            spent += time.process_time() - t
        out[name] = {"hot_us": hot, "cold_us": spent / n * 1e6}
    return out


def in_process(a: argparse.Namespace, tmp: Path, pool: bench.BodyPool) -> dict[str, dict[str, float]]:
    """The WSGI calls of the loaded runs, timed in a loop in this process."""
    from flask import Flask

    from tlog.api.app import create_app
    from tlog.config import Settings

    scope: dict[str, Any] = {"__name__": "ceiling"}
    exec(compile(bench.CEILING_APP, "ceiling_app", "exec"), scope)  # noqa: S102 - our own constant
    ceiling: Flask = scope["app"]
    app = create_app(Settings(data_dir=tmp / "loop-data", origin=bench.ORIGIN))
    size = 2000
    for body in pool.get(0, size):
        status, out = wsgi_call(app, "POST", "/api/v1/log/entries", body)
        if not status.startswith("201"):
            raise SystemExit(f"in-process submission failed: {status} {out[:200]!r}")
    echo = pool.get(0, 1)[0]
    rng = random.Random(1)

    def ok(status_body: tuple[str, bytes]) -> None:
        if not status_body[0].startswith(("200", "201")):
            raise SystemExit(f"in-process call failed: {status_body[0]} {status_body[1][:200]!r}")

    return loop_costs({
        "ceiling": lambda: ok(wsgi_call(ceiling, "POST", "/echo", echo)),
        "inclusion": lambda: ok(wsgi_call(app, "GET", f"/api/v1/log/entries?logIndex={rng.randrange(size)}")),
        "consistency": lambda: ok(wsgi_call(app, "GET", f"/api/v1/log/proof?firstSize={rng.randrange(1, size)}&lastSize={size}")),
    }, a.loop_calls)  # fmt: skip


# --- the runs ----------------------------------------------------------------------------


def run_backend(a: argparse.Namespace, tmp: Path, pool: bench.BodyPool, backend: str, url: str | None,
                db_pids: Callable[[], list[int]], rows: list[dict[str, Any]], verification: dict[str, Any]) -> None:  # fmt: skip
    d = tmp / f"app-cpu-{backend}"
    d.mkdir()
    (d / "appcpu.py").write_text(APP_CPU)
    (d / "tlog_wrapped.py").write_text(TLOG_WRAPPED.replace("DIRECTORY", repr(str(d))))
    cmd = [sys.executable, str(d / "tlog_wrapped.py"), "serve", "--host", bench.HOST, "--port", "{port}",
           "--data-dir", str(tmp / f"data-{backend}"), "--origin", bench.ORIGIN, *a.serve_args,
           *(["--database-url", url] if url else [])]  # fmt: skip
    with bench.Server(cmd, tmp / f"{backend}.log") as srv:
        count = int(3000 * (a.duration + a.warmup)) + 500
        bodies = pool.get(0, count)
        reqs = [bench.http_request("POST", "/api/v1/log/entries", srv.port, b) for b in bodies]
        warm = bench.run_load(srv.port, reqs, concurrency=a.concurrency, duration=a.warmup, clients=a.clients,
                              server_pid=srv.pid, unique=True, expect=201)  # fmt: skip
        used, acked = warm["consumed"], warm["ok"]
        r = split(srv, d, srv.port, reqs[used:], a, db_pids, unique=True, expect=201)
        acked += r["requests"]
        v = bench.Verifier(srv.url)
        for i, body in r.pop("samples"):
            v.check("submissions", v.submission, bodies[used + i], body)
        rows.append({"backend": backend, "test": "submit"} | r)
        v.check("final tree head", v.final_head, acked)
        if not hasattr(v, "final"):
            raise SystemExit(f"cannot verify the final tree head: {v.failures}")
        size = v.final.size
        known = [s for s in v.roots if 0 < s < size] or [max(1, size // 2)]
        for test, path, args, check in (
            ("inclusion", "/api/v1/log/entries?logIndex={}", [random.randrange(size) for _ in range(20_000)], v.inclusion),
            ("consistency", f"/api/v1/log/proof?firstSize={{}}&lastSize={size}", [random.choice(known) for _ in range(20_000)], v.consistency),
        ):  # fmt: skip
            reqs = [bench.http_request("GET", path.format(x), srv.port) for x in args]
            bench.run_load(srv.port, reqs, concurrency=a.concurrency, duration=a.warmup, clients=a.clients, server_pid=srv.pid)
            r = split(srv, d, srv.port, reqs, a, db_pids)
            for i, body in r.pop("samples"):
                v.check(f"{test} proofs", check, args[i], body)
            rows.append({"backend": backend, "test": test} | r)
    verification[backend] = {k: {"verified": t[0], "checked": t[1]} for k, t in v.tally.items()}
    if v.failures:
        raise SystemExit(f"{backend}: verification FAILED: " + "; ".join(v.failures[:5]))


def ceiling_row(a: argparse.Namespace, tmp: Path, pool: bench.BodyPool, workers: int, threads: int) -> dict[str, Any]:
    d = tmp / "app-cpu-ceiling"
    d.mkdir()
    (d / "appcpu.py").write_text(APP_CPU)
    (d / "ceiling_wrapped.py").write_text(CEILING_WRAPPED.replace("DIRECTORY", repr(str(d))))
    cmd = bench.ceiling_command(d, workers, threads)
    cmd[-1] = "ceiling_wrapped:app"
    with bench.Server(cmd, tmp / "ceiling.log") as srv:
        reqs = [bench.http_request("POST", "/echo", srv.port, b) for b in pool.get(0, 1000)]
        bench.run_load(srv.port, reqs, concurrency=a.concurrency, duration=a.warmup, clients=a.clients, server_pid=srv.pid, expect=201)
        r = split(srv, d, srv.port, reqs, a, expect=201)
    r.pop("samples")
    return {"backend": "flask", "test": "ceiling"} | r


def report(rows: list[dict[str, Any]], loop: dict[str, dict[str, float]]) -> None:
    ceiling = next(r for r in rows if r["test"] == "ceiling")
    cols = "test:<22 rate/s:>7 ÷ceiling:>8 goal:>5 budget:>7 cost:>6 gunicorn+kernel:>15 app:>6 writer:>6 database:>8 app_hot:>7 app_cold:>8"
    print("\nper request, µs of CPU (budget: the ceiling's cost ÷ the goal)")
    print(" ".join(format(c.split(":")[0], c.split(":")[1]) for c in cols.split()))
    for r in rows:
        goal = GOALS.get((r["test"], r["backend"]))
        r["vs_ceiling"] = r["rate"] / ceiling["rate"]
        r["goal"] = goal
        r["budget_us"] = ceiling["cost_us"] / goal if goal else None
        hot = loop.get(r["test"], {}) if r["backend"] in ("flask", "sqlite") else {}  # the loop runs on SQLite
        name = "ceiling (trivial Flask)" if r["test"] == "ceiling" else f"{r['backend']} {r['test']}"
        cells = [name, f"{r['rate']:,.0f}", f"{r['vs_ceiling']:.2f}", f"{goal:g}" if goal else "", f"{r['budget_us']:,.0f}" if goal else "",
                 f"{r['cost_us']:,.0f}", f"{r['gunicorn_kernel_us']:,.0f}", f"{r['app_us']:,.0f}", f"{r['writer_us']:,.0f}",
                 f"{r['database_us']:,.0f}", f"{hot['hot_us']:,.0f}" if hot else "", f"{hot['cold_us']:,.0f}" if hot else ""]  # fmt: skip
        print(" ".join(format(v, c.split(":")[1]) for v, c in zip(cells, cols.split())))
    print("app_hot / app_cold: the same WSGI call in a loop in one process, caches hot / flushed between calls"
          " (submissions are not looped: in one process each would wait for its own batch)")


def plot(results: dict[str, Any], png: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return False
    rows = results["rows"]
    parts = [("gunicorn_kernel_us", "gunicorn and kernel", "#9aa5b1"), ("app_us", "app (Flask + tlog), request thread", "#3b7dd8"),
             ("writer_us", "writer process", "#e8a33d"), ("database_us", "PostgreSQL backends", "#7c5cbf")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 2.4))
    labels = []
    for y, r in enumerate(rows):
        left = 0.0
        for key, label, color in parts:
            ax.barh(y, r[key], left=left, color=color, label=label if y == 0 else None, height=0.6)
            left += r[key]
        if r.get("budget_us"):
            ax.plot([r["budget_us"]] * 2, [y - 0.4, y + 0.4], color="#c62828", lw=2.5, label="budget (goal)" if "b" not in labels else None)
            labels.append("b")
        note = f"{r['cost_us']:,.0f} µs" + (f", {r['vs_ceiling']:.2f} of the ceiling (goal {r['goal']:g})" if r.get("goal") else "")
        ax.text(max(left, r.get("budget_us") or 0) + 15, y, note, va="center", fontsize=8)
        hot = results["loop"].get(r["test"]) if r["backend"] in ("flask", "sqlite") else None
        if hot:
            ax.plot(r["gunicorn_kernel_us"] + hot["hot_us"], y, marker="d", color="black", ms=6,
                    label="app cost in a hot loop" if "h" not in labels else None, ls="none")  # fmt: skip
            labels.append("h")
    names = ["ceiling (trivial Flask)" if r["test"] == "ceiling" else f"{bench.BACKEND_NAMES.get(r['backend'], r['backend'])} {bench.TEST_NAMES.get(r['test'], r['test'])}" for r in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlabel("server CPU per request, µs (64 clients)")
    ax.set_title(f"Where a request's CPU goes, against the budget each goal leaves ({results['date'][:10]})", fontsize=10)
    ax.set_xlim(0, max(max(r["cost_us"], r.get("budget_us") or 0) for r in rows) * 1.45)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"plot written to {png}")
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=6.0, help="seconds per loaded run (default 6)")
    p.add_argument("--concurrency", type=int, default=64, help="clients (default 64)")
    p.add_argument("--clients", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--postgres", action="store_true", help="also run the log on a fresh PostgreSQL database")
    p.add_argument("--loop-calls", type=int, default=3000, help="calls per in-process loop timing (default 3000)")
    p.add_argument("--sample", type=int, default=100, help="responses verified per run (default 100)")
    p.add_argument("--out", type=Path, help="JSON results (default bench-results/budget-<timestamp>.json)")
    p.add_argument("--png", type=Path, help="plot (default: the JSON's path with .png; needs matplotlib)")
    p.add_argument("--plot-only", type=Path, metavar="JSON", help="only draw the plot of this saved results file, and exit")
    a = p.parse_args()
    if a.plot_only:
        return 0 if plot(json.loads(a.plot_only.read_text()), a.png or a.plot_only.with_suffix(".png")) else 1
    a.warmup = min(1.0, a.duration / 4)
    a.out = a.out or ROOT / "bench-results" / f"budget-{time.strftime('%Y%m%d-%H%M%S')}.json"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    workers, threads = bench.serve_defaults()
    a.serve_args = ["--workers", str(workers), "--threads", str(threads)]
    pool = bench.BodyPool()
    rows: list[dict[str, Any]] = []
    verification: dict[str, Any] = {}
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(bench.postgres_database()) if a.postgres else (None, "not asked (--postgres)", None)
        if a.postgres and pg[0] is None:
            raise SystemExit(pg[1])
        machine = bench.machine_info() | {"postgresql": pg[1] if pg[0] else None}
        print("machine:\n" + "".join(f"  {k:<11} {v if v is not None else '-'}\n" for k, v in machine.items()), end="")
        print(f"settings: tlog serve {workers} workers x {threads} threads (gthread); {a.concurrency} clients; {a.duration:g} s per run")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlog-budget-")))
        pool.get(0, int(3000 * (a.duration + a.warmup)) + 500)
        rows.append(ceiling_row(a, tmp, pool, workers, threads))
        run_backend(a, tmp, pool, "sqlite", None, list, rows, verification)
        if pg[0]:
            run_backend(a, tmp, pool, "postgres", pg[0], pg[2], rows, verification)
        loop = in_process(a, tmp, pool)
    report(rows, loop)
    checked = {b: sum(t["checked"] for t in v.values()) for b, v in verification.items()}
    print("verified: " + "; ".join(f"{b}: {n} sampled responses (submissions, final head, proofs) with tests/speclient.py" for b, n in checked.items()))
    results = {"date": started, "machine": machine, "workers": workers, "threads": threads, "concurrency": a.concurrency,
               "duration": a.duration, "l2_bytes": l2_bytes(), "rows": rows, "loop": loop, "verification": verification}  # fmt: skip
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {a.out}")
    plot(results, a.png or a.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
