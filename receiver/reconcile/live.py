"""Correcting live state from Tencent's list of streams live now (DescribeLiveStreamOnlineList).

A stream whose end callback was lost stays `live` for ever; a stream whose begin was lost never
shows as live. Each look pages through the online list (PageSize 100, at most 20,000 streams)
and compares it with the streams we hold open sessions for:

* a stream we believe live that Tencent did not list at **two consecutive looks** gets a
  reconciled stream end for each open session (errmsg "not live at Tencent", timed at the first
  look that missed it): one look could race a push that is just starting or a list that lags;
* a stream Tencent lists for which we hold no open session at all gets a reconciled push begin
  per publish time (several times are several upstream pushes, main and backup), timed at the
  publish time. A stream we hold open is left alone, even if Tencent lists more pushes than we
  know: the times of the online list and of callbacks are not documented to agree, and a guessed
  duplicate session would be worse than a missing backup.

Tencent's own advice is to treat a host as live when any source says so, and to keep it live
when the API fails (reference §1.4): a look whose call fails changes nothing and resets nothing,
and a list cut off at the 20,000-stream cap ends nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from receiver.reconcile.bodies import not_live_end_body, online_begin_body
from receiver.reconcile.rounds import Identity, InProcessMemory, MissingMemory
from receiver.reconcile.stored import History, open_session_rows
from receiver.reconcile.submit import Submitter
from receiver.tencent.streams import (
    ONLINE_PAGE_SIZE,
    ONLINE_STREAM_CAP,
    LiveStreamApi,
    OnlineListQuery,
    StreamOnlineInfo,
)

log = logging.getLogger(__name__)

# Looks in a row a stream must be missing from the list before its open sessions are ended.
LOOKS_TO_END = 2


@dataclass(frozen=True, slots=True)
class OpenSession:
    identity: Identity
    sequence: str | None
    begin_time: float | None


@dataclass(slots=True)
class LiveLook:
    """What one look found and did."""

    at: float
    listed: int = 0
    complete: bool = True  # False when the list hit the 20,000 cap
    ended: list[Identity] = field(default_factory=list)  # streams we ended (sessions closed)
    begun: list[Identity] = field(default_factory=list)  # streams we marked live
    waiting: list[Identity] = field(default_factory=list)  # missing once: ended if again
    stored: int = 0  # reconciled begins and ends handed to storage


@dataclass(slots=True)
class LiveCorrector:
    """Keeps, between looks, which live streams Tencent did not list last time, and when."""

    api: LiveStreamApi
    submitter: Submitter
    domains: Sequence[str] = ()
    clock: Callable[[], float] = time.time
    # Between looks: in this process on SQLite; in the database on PostgreSQL, where the next
    # round may be another replica's (`receiver.reconcile.rounds`).
    memory: MissingMemory = field(default_factory=lambda: InProcessMemory())

    async def look(self, reader: History) -> LiveLook:
        now = self.clock()
        listed, complete = await online_streams(self.api, self.domains)
        look = LiveLook(now, len(listed), complete)
        ours = await open_sessions(reader, self.domains)
        by_stream: dict[Identity, list[OpenSession]] = defaultdict(list)
        for session in ours:
            by_stream[session.identity].append(session)
        online = {info.identity: info for info in listed}
        bodies: list[dict[str, Any]] = []

        previous = await self.memory.load()
        missing: dict[Identity, tuple[int, float]] = {}
        for identity, sessions in by_stream.items():
            if identity in online or not complete:
                continue
            looks, first = previous.get(identity, (0, now))
            looks += 1
            if looks < LOOKS_TO_END:
                missing[identity] = (looks, first)
                look.waiting.append(identity)
                continue
            look.ended.append(identity)
            bodies.extend(
                not_live_end_body(identity, s.sequence, first, s.begin_time) for s in sessions
            )
        await self.memory.save(missing)

        for identity, info in online.items():
            if identity in by_stream:
                continue
            look.begun.append(identity)
            times = {p.publish_time for p in info.publish_time_list} or {now}
            bodies.extend(online_begin_body(identity, t) for t in sorted(times))

        if bodies:
            bodies.sort(key=lambda b: (b["event_time"], -b["event_type"]))
            look.stored = len(await self.submitter.submit(bodies))
        return look


async def online_streams(
    api: LiveStreamApi, domains: Sequence[str] = ()
) -> tuple[list[StreamOnlineInfo], bool]:
    """Every stream Tencent lists live (per domain when given); False when cut at the cap."""
    found: list[StreamOnlineInfo] = []
    complete = True
    chosen: list[str | None] = [*domains] or [None]
    for domain in chosen:
        page_num = 1
        while True:
            page = await api.online_list(
                OnlineListQuery(page_num=page_num, page_size=ONLINE_PAGE_SIZE, domain=domain)
            )
            found.extend(page.online_info)
            if page.total_num >= ONLINE_STREAM_CAP:
                complete = False
            if page_num >= page.total_page or not page.online_info:
                break
            page_num += 1
    if not complete:
        log.warning(
            "Tencent lists at most %d live streams: streams missing from the list are not "
            "ended while it is full",
            ONLINE_STREAM_CAP,
        )
    return found, complete


async def open_sessions(history: History, domains: Sequence[str] = ()) -> list[OpenSession]:
    rows = await open_session_rows(history)
    wanted = set(domains)
    return [
        OpenSession((r[0], r[1], r[2]), r[3], r[4]) for r in rows if not wanted or r[0] in wanted
    ]
