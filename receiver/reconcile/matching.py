"""Pairing Tencent's push records with the push sessions we stored.

Tencent's record has no `sequence` (reference §1.1), so a record is matched to a session of the
same stream (domain, app name, stream) by time: its start with the session's begin, else its end
with the session's end, else its start with where the session was placed (a session known only
from its end starts at end minus `push_duration`), each within `TOLERANCE_SECONDS` (the fold
uses the same tolerance to let a late real callback take over a reconciled event). The nearest
candidate wins, and a session is matched at most once, so two pushes of one stream a few
seconds apart still pair up in order.

What comes out (`Findings`):
- `missing`: records with no session: both callbacks were lost;
- `missing_end`: a session we hold open (or know only from its begin) that Tencent shows ended;
- `missing_begin`: a session known only from its end, whose begin Tencent has;
- `unknown`: sessions that ended inside the window and that Tencent has no record of (reported
  only: Tencent calls its own list "not to be relied too much upon", and it omits failed pushes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from receiver.reconcile.stored import History, session_rows
from receiver.storage.reconciled import TOLERANCE_SECONDS
from receiver.tencent.streams import StreamEventInfo

Identity = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class StoredSession:
    identity: Identity
    id: int
    sequence: str | None
    begin_time: float | None
    end_time: float | None
    started_at: float


@dataclass(frozen=True, slots=True)
class Pair:
    record: StreamEventInfo
    session: StoredSession


@dataclass(slots=True)
class Findings:
    missing: list[StreamEventInfo] = field(default_factory=list)
    missing_end: list[Pair] = field(default_factory=list)
    missing_begin: list[Pair] = field(default_factory=list)
    unknown: list[StoredSession] = field(default_factory=list)
    matched: int = 0

    @property
    def actionable(self) -> int:
        return len(self.missing) + len(self.missing_end) + len(self.missing_begin)


async def stored_sessions(
    history: History, oldest: float, *, domains: Sequence[str] = ()
) -> list[StoredSession]:
    rows = await session_rows(history, oldest)
    wanted = set(domains)
    return [
        StoredSession((r[0], r[1], r[2]), r[3], r[4], r[5], r[6], r[7])
        for r in rows
        if not wanted or r[0] in wanted
    ]


def match(
    records: Iterable[StreamEventInfo],
    sessions: Iterable[StoredSession],
    *,
    window: tuple[float, float],
) -> Findings:
    """Pair `records` (ended pushes whose end is in `window`) with `sessions`."""
    by_stream: dict[Identity, list[StoredSession]] = defaultdict(list)
    for session in sessions:
        by_stream[session.identity].append(session)
    findings = Findings()
    used: set[int] = set()
    ordered = sorted(records, key=lambda r: (r.identity, r.stream_start_time or 0.0))
    for record in ordered:
        best = _best(record, by_stream.get(record.identity, []), used)
        if best is None:
            findings.missing.append(record)
            continue
        session = best
        used.add(session.id)
        findings.matched += 1
        if session.end_time is None and record.stream_end_time is not None:
            findings.missing_end.append(Pair(record, session))
        if session.begin_time is None and record.stream_start_time is not None:
            findings.missing_begin.append(Pair(record, session))
    low, high = window
    for candidates in by_stream.values():
        for session in candidates:
            ended = session.end_time
            if session.id not in used and ended is not None and low <= ended <= high:
                findings.unknown.append(session)
    return findings


def _best(
    record: StreamEventInfo, candidates: Sequence[StoredSession], used: set[int]
) -> StoredSession | None:
    """The nearest unused session by begin, then end, then placement, within the tolerance."""
    for column, theirs in (
        ("begin_time", record.stream_start_time),
        ("end_time", record.stream_end_time),
        ("started_at", record.stream_start_time),
    ):
        if theirs is None:
            continue
        near = [
            (abs(t - theirs), s.id, s)
            for s in candidates
            if s.id not in used
            and (t := getattr(s, column)) is not None
            and abs(t - theirs) <= TOLERANCE_SECONDS
        ]
        if near:
            return min(near, key=lambda n: (n[0], n[1]))[2]
    return None
