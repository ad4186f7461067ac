"""One reconciliation of push history: sweep Tencent's records, match, and (asked to) store.

    report = await reconcile(api, reader, since=t0, until=t1, submitter=None)  # dry run
    report = await reconcile(api, reader, since=t0, until=t1, submitter=submitter)

Without a submitter nothing changes: the report says what would be stored. With one, the
missing begins and ends go to storage as reconciled events (`submit.py`). Running it again
changes nothing: the stored reconciled sessions match their records the second time, and if
the first run's events are not folded yet, their keys repeat (`bodies.py`), so the fold keeps
one of each.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from receiver.reconcile.bodies import begin_body, end_body, made_up_sequence
from receiver.reconcile.matching import Findings, match, stored_sessions
from receiver.reconcile.stored import History
from receiver.reconcile.submit import Submitter
from receiver.reconcile.sweep import Progress, SweepProgress, sweep
from receiver.reconcile.windows import plan
from receiver.storage.reconciled import TOLERANCE_SECONDS
from receiver.tencent.streams import LiveStreamApi


@dataclass(slots=True)
class Report:
    since: float
    until: float
    records: int = 0
    findings: Findings = field(default_factory=Findings)
    progress: SweepProgress = field(default_factory=SweepProgress)
    bodies: list[dict[str, Any]] = field(default_factory=list)  # what is (or would be) stored
    stored: list[str] = field(default_factory=list)  # event ids handed to storage
    applied: bool = False


async def reconcile(
    api: LiveStreamApi,
    reader: History,
    *,
    since: float,
    until: float,
    domains: Sequence[str] = (),
    submitter: Submitter | None = None,
    on_progress: Progress | None = None,
    now: float | None = None,
) -> Report:
    """Compare [since, until] with Tencent's records; store what is missing if `submitter`."""
    windows = plan(since, until, time.time() if now is None else now)
    since, until = windows[0].start, windows[-1].end
    swept = await sweep(api, windows, domains=domains, on_progress=on_progress)
    starts = [r.stream_start_time for r in swept.records if r.stream_start_time is not None]
    oldest = min([since, *starts]) - TOLERANCE_SECONDS
    sessions = await stored_sessions(reader, oldest, domains=domains)
    findings = match(swept.records, sessions, window=(since, until))
    report = Report(since, until, len(swept.records), findings, swept.progress)
    report.bodies = bodies_for(findings)
    if submitter is not None and report.bodies:
        report.stored = await submitter.submit(report.bodies)
    report.applied = submitter is not None
    return report


def bodies_for(findings: Findings) -> list[dict[str, Any]]:
    """The begins and ends to store, oldest first (a begin before its end)."""
    bodies: list[dict[str, Any]] = []
    for record in findings.missing:
        sequence = made_up_sequence(record.stream_start_time or record.stream_end_time or 0)
        if record.stream_start_time is not None:
            bodies.append(begin_body(record, sequence))
        if record.stream_end_time is not None:
            bodies.append(end_body(record, sequence))
    bodies.extend(begin_body(p.record, p.session.sequence) for p in findings.missing_begin)
    bodies.extend(end_body(p.record, p.session.sequence) for p in findings.missing_end)
    bodies.sort(key=lambda b: (b["event_time"], -b["event_type"]))
    return bodies
