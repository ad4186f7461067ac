"""The benchmark runs from a checkout: a few seconds, counts checked, timing never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_bench_smoke_stores_publishes_and_delivers_every_acknowledged_event(
    tmp_path: Path, amqp_url: str
) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "smoke", "--json", str(out), "--amqp-url", amqp_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    # The bench raises on any count mismatch: a refused request, fewer rows than 200s, an event
    # stored but not confirmed or not consumed, a drain that left events unpublished.
    assert result.returncode == 0, result.stdout + result.stderr
    context = json.loads(out.read_text())["context"]
    receiver = context["ingest"]["receiver"]
    assert receiver["runs"] == 1
    assert receiver["stored"][0] >= receiver["ok"][0] > 0
    # Events are spread over the 50 streams the smoke run asks for (the examples name 16).
    assert 16 < receiver["streams_stored"][0] <= 50
    relay = context["ingest"]["receiver + relay"]
    assert relay["consumed"] == relay["stored"]
    assert relay["ok"][0] > 0
    assert context["keepup"]["stored"] > 0
    assert context["drain"]["events"] == 2000
    assert "receiver: req/s" in result.stdout
