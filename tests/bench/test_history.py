"""The history benchmark runs end to end on a small load (timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_explains_its_queries() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.history",
         "--events", "3000", "--streams", "30", "--runs", "2", "--compare", "500"],
        cwd=ROOT, capture_output=True, text=True, timeout=55, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "primary-key lookup (baseline)" in out
    assert "sessions of one stream" in out
    assert "EXPLAIN QUERY PLAN" in out
    assert "USING COVERING INDEX events_stream_kind_time" in out
