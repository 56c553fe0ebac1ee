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
