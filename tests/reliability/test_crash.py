"""Scenario 1 at CI size: kill -9 at random moments under load loses no acknowledged event."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos.crash import CrashPlan, crash_under_load


@pytest.mark.timeout(180)
async def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    findings = await crash_under_load(tmp_path, CrashPlan(events=400, rate=150, crashes=3))
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.acknowledged > 0
    assert findings.stored == findings.acknowledged
    # The crashes were felt: some attempts were refused or cut and then retried.
    assert findings.attempts > findings.sent
