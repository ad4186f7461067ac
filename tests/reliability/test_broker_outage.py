"""Scenario 2 at CI size: RabbitMQ stops (or freezes) under load and comes back; every
acknowledged event reaches the consumer queue, each stream in storage order, duplicates with the
same message_id."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from testbed.broker import RabbitNode
from tests.reliability.scenarios.outage import QUICK, broker_outage


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["stop", "freeze"])
async def test_broker_outage_under_load_delivers_every_acknowledged_event_in_order(
    tmp_path: Path, owned_broker: RabbitNode, mode: Literal["stop", "freeze"]
) -> None:
    findings = await broker_outage(tmp_path, replace(QUICK, mode=mode), owned_broker)
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.acknowledged == findings.sent == QUICK.events
    assert findings.published == findings.acknowledged
    assert findings.dup_in_queue is not None
    assert findings.outcomes["200"] == findings.attempts  # accepted throughout the outage
