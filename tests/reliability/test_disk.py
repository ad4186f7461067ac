"""Scenario 5 at CI size: an unwritable database means 503 and readiness `fail`, never 200;
publishing stays on, and every acknowledged event still reaches the queue once the disk is back.

Each mechanism works on descriptors the writer already holds, as root (see
tests.reliability.scenarios.disk). Where a mechanism is not permitted, the scenario falls back
to RLIMIT_FSIZE and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from testbed.broker import RabbitNode
from tests.reliability.scenarios.disk_trouble import DiskPlan, Mechanism, disk_trouble


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mechanism", get_args(Mechanism))
async def test_unwritable_database_gets_503_then_recovers(
    tmp_path: Path, mechanism: Mechanism, rabbit: RabbitNode
) -> None:
    plan = DiskPlan(mechanism=mechanism, events=250, rate=100, outage_seconds=2)
    findings = await disk_trouble(tmp_path, plan, rabbit)
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.outcomes["503"] > 0
    assert findings.outcomes["500"] == 0
    assert findings.stored == findings.acknowledged > plan.events // 2
    assert findings.published == findings.acknowledged
