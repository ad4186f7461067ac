"""The benchmark runs from a checkout: a few seconds, counts checked, timing never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_bench_smoke_completes_and_stores_every_acknowledged_event(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    # bench.ingest raises if fewer rows were stored than 200s received (a lost event).
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    receiver = document["context"]["ingest"]["receiver"]
    assert receiver["runs"] == 1
    assert receiver["req_per_s"] > 0
    assert "receiver (durable, publishing off): req/s" in result.stdout
