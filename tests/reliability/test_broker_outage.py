"""Scenario 2 at CI size: RabbitMQ stops under load and starts again; every acknowledged event
reaches the consumer queue, each stream in storage order, duplicates with the same message_id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos.outage import QUICK, broker_outage
from tests.broker import RabbitNode


@pytest.mark.timeout(240)
async def test_broker_outage_under_load_delivers_every_acknowledged_event_in_order(
    tmp_path: Path, owned_broker: RabbitNode
) -> None:
    findings = await broker_outage(tmp_path, QUICK, owned_broker)
    assert findings.ok, findings.failures()
    assert findings.lost == 0
    assert findings.acknowledged == findings.sent == QUICK.events
    assert findings.published == findings.acknowledged
    assert findings.dup_in_queue is not None
    assert findings.outcomes["200"] == findings.attempts  # accepted throughout the outage
