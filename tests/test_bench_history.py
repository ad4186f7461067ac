"""The history benchmark runs end to end on a small load (timings are printed, never asserted)."""

from __future__ import annotations

import pytest

from bench.history import main


def test_the_benchmark_runs_and_explains_its_queries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", "3000", "--streams", "30", "--runs", "2", "--compare", "500"]) == 0
    out = capsys.readouterr().out
    assert "primary-key lookup (baseline)" in out
    assert "sessions of one stream" in out
    assert "EXPLAIN QUERY PLAN" in out
    assert "USING COVERING INDEX events_stream_kind_time" in out
