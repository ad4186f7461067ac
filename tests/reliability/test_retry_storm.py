"""Scenario 4 at CI size: the same callback 100 times at once, and later again: one row, and
one published message."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.broker import RabbitNode
from tests.reliability.scenarios.cssload import load_templates
from tests.reliability.scenarios.storm import StormPlan, retry_storm


@pytest.mark.timeout(180)
async def test_retry_storm_stores_and_publishes_each_event_once_and_answers_every_copy_200(
    tmp_path: Path, rabbit: RabbitNode
) -> None:
    findings = await retry_storm(tmp_path, StormPlan(copies=100, restart=True), rabbit)
    assert findings.ok, findings.failures()
    kinds = len(load_templates())
    assert findings.sent == findings.stored == findings.published == kinds
    assert findings.dup_rows == 0
    assert findings.dup_in_queue == 0
    assert findings.outcomes["200"] == findings.attempts == kinds * 300
