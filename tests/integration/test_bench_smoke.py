"""scripts/bench.py and scripts/bench_scale.py end to end at a tiny size: they run, measure, and their verifiers pass."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_bench_quick_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--sqlite-only",
         "--concurrency", "1,4", "--proof-concurrency", "4", "--duration", "1", "--sample", "50", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "entries/s" in proc.stdout, proc.stdout
    assert "verified" in proc.stdout and "FAILED" not in proc.stdout, proc.stdout
    assert out.exists()
    png = out.with_suffix(".png")
    if importlib.util.find_spec("matplotlib") is not None:  # the `bench` extra draws the results
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stdout
        assert f"plot written to {png}" in proc.stdout, proc.stdout
    assert elapsed < 60, f"the smoke benchmark took {elapsed:.0f} s"


def test_bench_scale_served_part_tiny(tmp_path: Path) -> None:
    """Part c at two tiny sizes: latency, memory, and loaded proofs/s against the ceiling, all verified."""
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_scale.py"), "--only", "c", "--sizes", "300,1000",
         "--requests", "20", "--warmup", "2", "--verify", "10", "--throughput-seconds", "1", "--concurrency", "8",
         "--work-dir", str(tmp_path / "work"), "--out", str(out), "--png", str(png)],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["ceiling"]["rate"] > 0 and result["ceiling"]["concurrency"] == 8
    assert [row["size"] for row in result["scale"]] == [300, 1000]
    for row in result["scale"]:
        for kind in ("inclusion", "consistency"):
            assert row[kind]["loaded"]["rate"] > 0 and row[kind]["loaded"]["requests"] > 0, row
        # 10 sequential and 10 loaded responses of each kind, each checked by tests/speclient.py
        assert "20 entries (SET, inclusion proof, checkpoint) and 20 consistency proofs" in row["verified"], row["verified"]
    assert "of the ceiling" in proc.stdout, proc.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_budget_tiny(tmp_path: Path) -> None:
    """scripts/bench_budget.py at 8 clients for 1 s per run: every request kind's CPU is split, its sampled
    responses verified, and the budget each ratio goal leaves is computed from the ceiling's cost."""
    out = tmp_path / "budget.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_budget.py"), "--duration", "1", "--concurrency", "8",
         "--loop-calls", "100", "--sample", "10", "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    rows = {(r["backend"], r["test"]): r for r in result["rows"]}
    assert list(rows) == [("flask", "ceiling"), ("sqlite", "submit"), ("sqlite", "inclusion"), ("sqlite", "consistency")]
    ceiling = rows["flask", "ceiling"]
    for (backend, test), r in rows.items():
        assert r["rate"] > 0 and r["app_us"] > 0 and r["gunicorn_kernel_us"] > 0, r
        # Every request that reached a worker was timed inside the app (each worker writes its totals every 0.1 s).
        assert r["app_requests_timed"] >= r["requests"] - 4 * 20, r
        parts = r["gunicorn_kernel_us"] + r["app_us"] + r["writer_us"] + r["database_us"]
        assert abs(parts - r["cost_us"]) < 1e-6 * r["cost_us"] + 1e-9, r
        if test != "ceiling":
            assert r["budget_us"] == pytest.approx(ceiling["cost_us"] / r["goal"]), r
    assert rows["sqlite", "submit"]["writer_us"] > 0  # submissions are integrated by the writer process
    assert rows["sqlite", "inclusion"]["writer_us"] == 0
    for test in ("ceiling", "inclusion", "consistency"):
        loop = result["loop"][test]
        assert 0 < loop["hot_us"] and 0 < loop["cold_us"], loop
    checked = result["verification"]["sqlite"]
    assert all(t["verified"] == t["checked"] > 0 for t in checked.values()), checked
    assert "budget" in proc.stdout and "verified" in proc.stdout, proc.stdout
