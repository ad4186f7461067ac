"""The benchmark runs from a checkout: every part briefly, counts checked, timing never asserted.

Every count is read once `/readyz` reports the fold backlog at 0 (the bench waits for it and
fails on a receiver without that report), and every run ends with a quiet tail, so the counts
are exact: events stored == requests answered 200, and with the relay, consumed == stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def exact(run: dict[str, Any]) -> None:
    """One paced run: every 200 stored, and every stored event consumed."""
    assert run["ok"] > 0
    assert run["stored"] == run["ok"]
    assert run["consumed"] == run["stored"]
    assert run["fold_drain_s"] is not None


@pytest.mark.timeout(180)
def test_bench_smoke_stores_folds_publishes_and_delivers_every_acknowledged_event(
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
    # The bench raises on any count mismatch: a refused request, fewer events than 200s, a fold
    # backlog that never reaches 0, an event stored but not confirmed or not consumed, a drain
    # that left events unpublished.
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    context = document["context"]

    receiver = context["ingest"]["receiver"]
    assert receiver["runs"] == 1
    assert receiver["stored"] == receiver["ok"]
    assert receiver["ok"][0] > 0
    assert receiver["fold_drain_runs_s"][0] is not None  # the fold backlog reached 0
    relay = context["ingest"]["receiver + relay"]
    assert relay["ok"][0] > 0
    assert relay["stored"] == relay["ok"]
    assert relay["consumed"] == relay["stored"]

    # Events are spread over the 50 streams the smoke run asks for (the examples name 16).
    streams = context["many_streams"]["receiver"]
    assert streams["stored"] == streams["ok"]
    assert 16 < streams["streams_stored"][0] <= 50

    sustained = context["sustained"]
    assert len(sustained["probes"]) == 1
    exact(sustained["run"])
    exact(context["keepup"])

    soak = context["soak"]
    assert soak["stored"] == soak["ok"] > 0
    assert soak["consumed"] >= soak["stored"]  # deliveries: duplicates may repeat
    assert {"http", "writer"} <= set(soak["rss_mib"])

    assert context["drain"]["events"] == 2000
    sections = {row["section"] for row in document["rows"]}
    assert any("history" in section.lower() for section in sections), sections
    assert "receiver: req/s" in result.stdout
