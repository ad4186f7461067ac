"""`python -m bench ingest --database` runs from a checkout: briefly, on the suite's PostgreSQL,
counts checked (every 200 stored once, with 1 and 2 replicas), timing never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_pg_ingest_bench_stores_every_acknowledged_event_once_over_two_replicas(
    tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "bench.json"
    tiny = ["--runs", "1", "--seconds", "2", "--connections", "8", "--quiet-tail", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", "ingest", "--database", pg_url, *tiny, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    # The bench raises on a refused request, fewer events than 200s, or an event stored twice.
    assert result.returncode == 0, result.stdout + result.stderr
    sides = json.loads(out.read_text())["context"]["pg_ingest"]
    for name in ("receiver, SQLite", "PostgreSQL x1", "PostgreSQL x2"):
        side = sides[name]
        assert side["ok"][0] > 0, name
        assert side["stored"] == side["ok"], name  # the quiet tail makes it exact
    assert "postgres" not in sides["PostgreSQL x2"]["cpu_ms_per_req"]  # not a private cluster
    assert "PostgreSQL x2 to one SQLite node" in result.stdout
