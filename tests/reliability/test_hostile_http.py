"""Scenario 6 over HTTP at CI size: hostile input gets specific answers, never a 500.

The scenario (`tests.reliability.scenarios.hostile`) attacks the real service process on
loopback with property-based bodies, oversized and deeply nested ones and slow clients, then
checks that the same processes are up with bounded memory and that nothing forged was stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.scenarios.hostile import HostilePlan, hostile_input


@pytest.mark.timeout(180)
async def test_hostile_input_gets_specific_answers_and_stores_nothing_forged(
    tmp_path: Path,
) -> None:
    plan = HostilePlan(examples=300, oversized=32, slow=20, flood=100)
    findings = await asyncio.to_thread(hostile_input, tmp_path, plan)
    assert findings.ok, findings.failures()
    assert findings.outcomes["500"] == 0
    assert findings.lost == 0 and findings.stored == findings.acknowledged > 0
    # Each kind of answer was exercised: stored, refused as bad body, as bad signature, ...
    for status in ("200", "400", "401", "408", "413", "503"):
        assert findings.outcomes[status] > 0, findings.outcomes
    # 503 only for the flood of held bodies beyond the cap (the storage is fine here).
    assert findings.outcomes["503"] > 0
    assert set(findings.outcomes) <= {"200", "400", "401", "408", "413", "503", "cut while sending"}
