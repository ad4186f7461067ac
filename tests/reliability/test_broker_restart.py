"""Scenario 3 at CI size: RabbitMQ is killed while a window of publishes awaits confirms;
nothing is marked published that the broker did not keep, and the rest goes out afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.broker import RabbitNode
from tests.reliability.scenarios.broker_restart import QUICK, broker_restart


@pytest.mark.timeout(240)
async def test_broker_killed_mid_batch_marks_only_what_it_confirmed(
    tmp_path: Path, owned_broker: RabbitNode
) -> None:
    findings = await broker_restart(tmp_path, QUICK, owned_broker)
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.published == findings.acknowledged >= QUICK.backlog
    crash_checks = [c for c in findings.checks if c.name.startswith("crash ")]
    assert len(crash_checks) == 2 * len(QUICK.crashes)
