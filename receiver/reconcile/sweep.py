"""Reading Tencent's push records over a sweep, every page, every window fully covered.

A window whose `TotalNum` reaches the 10,000-entry cap is halved until each half is under it:
pages past the cap cannot be read, so a dense hour would otherwise lose records silently.
Records are read oldest end first (`IsAsc=1`) in pages of 100; a record listed twice (a push
ending on the boundary of two windows, or a page shifted by a record arriving meanwhile) is
kept once. Throttling is the client's business: it waits for its action's token bucket and
retries `RequestLimitExceeded` with back-off, so a throttled sweep is slower, never shorter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from receiver.reconcile.windows import MIN_WINDOW_SECONDS, Window
from receiver.tencent.streams import (
    EVENT_ENTRY_CAP,
    EVENT_PAGE_SIZE,
    EventListQuery,
    LiveStreamApi,
    StreamEventInfo,
)

log = logging.getLogger(__name__)

RecordKey = tuple[str, str, str, float | None, float | None]


@dataclass(slots=True)
class SweepProgress:
    """What a sweep has read so far (the CLI prints it on long sweeps)."""

    windows: int = 0  # windows read completely
    splits: int = 0  # windows halved for holding too many records
    pages: int = 0
    records: int = 0


@dataclass(slots=True)
class SweepResult:
    records: list[StreamEventInfo] = field(default_factory=list)
    progress: SweepProgress = field(default_factory=SweepProgress)


Progress = Callable[[SweepProgress], None]


async def sweep(
    api: LiveStreamApi,
    windows: Sequence[Window],
    *,
    domains: Sequence[str] = (),
    on_progress: Progress | None = None,
) -> SweepResult:
    """Every successful push record whose end falls in `windows` (per domain when given)."""
    result = SweepResult()
    seen: set[RecordKey] = set()
    chosen: list[str | None] = [*domains] or [None]
    for domain in chosen:
        pending = list(windows)
        while pending:
            window = pending.pop(0)
            first = await api.event_list(_query(window, 1, domain))
            result.progress.pages += 1
            if first.total_num >= EVENT_ENTRY_CAP and window.seconds >= 2 * MIN_WINDOW_SECONDS:
                result.progress.splits += 1
                pending[:0] = window.halves()
                continue
            if first.total_num >= EVENT_ENTRY_CAP:
                log.warning(
                    "more than %d push records end within one second at %s: only the first "
                    "%d can be read",
                    EVENT_ENTRY_CAP,
                    window.start,
                    EVENT_ENTRY_CAP,
                )
            page, pages = first, max(1, first.total_page)
            number = 1
            while True:
                for record in page.event_list:
                    key = (*record.identity, record.stream_start_time, record.stream_end_time)
                    if key not in seen:
                        seen.add(key)
                        result.records.append(record)
                if number >= pages or number * EVENT_PAGE_SIZE >= EVENT_ENTRY_CAP:
                    break
                number += 1
                page = await api.event_list(_query(window, number, domain))
                result.progress.pages += 1
            result.progress.windows += 1
            result.progress.records = len(result.records)
            if on_progress is not None:
                on_progress(result.progress)
    return result


def _query(window: Window, page: int, domain: str | None) -> EventListQuery:
    return EventListQuery(start=window.start, end=window.end, page_num=page, domain=domain)
