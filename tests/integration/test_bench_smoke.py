"""scripts/bench.py end to end at a tiny size: it runs, measures, and its verifier passes."""

from __future__ import annotations

import importlib.util
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
