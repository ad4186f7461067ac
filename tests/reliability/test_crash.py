"""Scenario 1 at CI size: kill -9 at random moments under load loses no acknowledged event,
neither from the database nor from the consumer queue (publishing is on throughout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.broker import RabbitNode
from tests.reliability.scenarios.crash import QUICK, crash_under_load


@pytest.mark.timeout(180)
async def test_kill_9_under_load_loses_no_acknowledged_event(
    tmp_path: Path, rabbit: RabbitNode
) -> None:
    findings = await crash_under_load(tmp_path, QUICK, rabbit)
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.acknowledged > 0
    assert findings.stored == findings.acknowledged
    # Every acknowledged event reached the queue after the restarts.
    assert findings.published == findings.acknowledged
    assert findings.dup_in_queue is not None
    # The crashes were felt: some attempts were refused or cut and then retried.
    assert findings.attempts > findings.sent
