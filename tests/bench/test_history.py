"""The history benchmark runs end to end on a small load (timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.history import LISTINGS, history_section
from bench.report import Report

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_explains_its_queries() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.history",
         "--events", "3000", "--streams", "30", "--runs", "2", "--compare", "500"],
        cwd=ROOT, capture_output=True, text=True, timeout=55, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "one event by primary key" in out
    assert "sessions of one stream" in out
    assert "events: 1-day window, any kind" in out
    assert "EXPLAIN QUERY PLAN" in out
    assert "USING COVERING INDEX events_event_hour" in out
    assert "USING COVERING INDEX events_stream_kind_time" in out


async def test_the_combined_benchmark_gets_a_row_per_listing_and_the_fold_cost() -> None:
    """`python -m bench` calls `history_section`: one SQL and one HTTP row per listing, each
    with its ratio and target, and the write cost of history (whatever the figures are)."""
    report = Report()
    await history_section(report, events=3000, streams=30, runs=2)
    rows = report.rows
    assert len(rows) == 2 * len(LISTINGS) + 1
    sql = [r for r in rows if r["figure"].endswith("(SQL)")]
    http = [r for r in rows if r["figure"].endswith("(HTTP)")]
    assert len(sql) == len(http) == len(LISTINGS)
    assert {r["target"] for r in sql} == {"<= 3x PK (SQL)"}
    assert {r["target"] for r in http} == {"<= 5x PK (HTTP)"}
    for row in sql + http:
        assert row["unit"] == "ms" and row["value"] > 0 and row["ratio"] > 0
        assert row["ok"] is (row["ratio"] <= (3 if row in sql else 5))
    (fold,) = [r for r in rows if r["figure"].startswith("fold:")]
    assert fold["ratio"] > 0 and fold["extra"] > 0
    assert all(r["section"].startswith("history listings") for r in rows)
    assert report.context["history"]["events"] > 2900
