"""Readiness: each component reports `ok`, `degraded` or `fail`; the worst one wins.

A `degraded` component (for example the broker being down) keeps the service ready, because
callbacks are still accepted and stored; only `fail` (the database) makes `/readyz` answer 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "degraded", "fail"]
_RANK: dict[Status, int] = {"ok": 0, "degraded": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class ComponentCheck:
    status: Status
    details: dict[str, Any] = field(default_factory=dict)


async def overall(
    checks: Mapping[str, Callable[[], Awaitable[ComponentCheck]]],
) -> tuple[Status, dict[str, Any]]:
    """Run every check; a check that raises counts as `fail` with its error."""
    status: Status = "ok"
    report: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            result = await check()
        except Exception as exc:
            result = ComponentCheck("fail", {"error": f"{type(exc).__name__}: {exc}"})
        report[name] = result.details
        if _RANK[result.status] > _RANK[status]:
            status = result.status
    return status, report
