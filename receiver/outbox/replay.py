"""Replay: re-publish stored events, with their original message_id and header `x-replay: true`.

Shared by `receiver replay` (on the database, no server needed) and `POST /api/events/replay`:
both select with a `ReplayFilter` and publish through the same `Publisher` as the outbox relay,
in storage order. What to publish comes from a `ReplaySource`: `SqliteSource` here, and
`receiver.outbox.pg_replay.PostgresSource` with the same filter in PostgreSQL's SQL. A replay
does not touch the outbox columns: an event that was never published still goes out through the
relay as well (consumers dedupe by message_id either way).

Filters: those of `GET /api/events` (`receiver.storage.selection`: `stream_id`, `since`/`until`
on the event time, `received_since`/`received_until` on the arrival time, ...). An empty filter
replays nothing unless `all` is set, so a typo cannot flood consumers with the whole history.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiosqlite
from pydantic import ConfigDict, Field, model_validator

from receiver.outbox.envelope import COLUMNS, Outgoing, from_row
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import Outcome, Publisher, Settled
from receiver.outbox.queries import fetch_tuples
from receiver.storage.selection import EventFilter
from receiver.times import iso_utc

_BATCH: Final = 1000
# Former spellings, answered with the new name rather than silently ignored.
_RENAMED: Final = {"stream": "stream_id"}
_TIMES: Final = ("since", "until", "received_since", "received_until")


class ReplayFilter(EventFilter):
    """Which stored events to replay: the filter of `GET /api/events`, plus `all`."""

    model_config = ConfigDict(populate_by_name=True)

    everything: bool = Field(default=False, alias="all")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _RENAMED.items():
                if old in data:
                    raise ValueError(f"{old!r} is now called {new!r}")
            if isinstance(data.get("kind"), str):  # "a,b" as well as ["a", "b"]
                kinds = [part.strip() for part in data["kind"].split(",") if part.strip()]
                data = {**data, "kind": kinds}
        return data

    @model_validator(mode="after")
    def _something_selected(self) -> ReplayFilter:
        if not self.everything and not self.conditions()[0]:
            raise ValueError(
                "no filter given: set kind, event_type, domain, app_name, stream_id, since, "
                "until, received_since or received_until, or all=true (--all) to replay every "
                "stored event"
            )
        return self

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition and its parameters (fixed fragments, values always bound)."""
        clauses, params = self.conditions()
        return (" AND ".join(clauses) or "1"), params

    def describe(self) -> dict[str, object]:
        """The filter as given, times shown as `receiver.times` writes them."""
        shown = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        for name in _TIMES:
            if name in shown:
                shown[name] = iso_utc(shown[name])
        return shown


@dataclass(slots=True)
class ReplayProgress:
    matched: int
    published: int = 0
    unroutable: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.published + self.unroutable + self.failed


class ReplaySource(Protocol):
    """Where a replay reads the selected events: one per engine, the same answers."""

    async def count(self, selection: ReplayFilter) -> int:
        """How many stored events `selection` matches now."""
        ...

    def batches(
        self, selection: ReplayFilter, batch_size: int
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        """The selected events as replay messages, in storage order, a batch at a time."""
        ...


@dataclass(frozen=True, slots=True)
class SqliteSource:
    """The selected events of a SQLite database, read through `conn`."""

    conn: aiosqlite.Connection

    async def count(self, selection: ReplayFilter) -> int:
        return await count_matching(self.conn, selection)

    def batches(
        self, selection: ReplayFilter, batch_size: int
    ) -> AsyncGenerator[Sequence[Outgoing], None]:
        return matching_batches(self.conn, selection, batch_size)


async def count_matching(conn: aiosqlite.Connection, selection: ReplayFilter) -> int:
    where, params = selection.where()
    sql = f"SELECT count(*) FROM events WHERE {where}"  # noqa: S608 - fixed fragments only
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def matching_batches(
    conn: aiosqlite.Connection, selection: ReplayFilter, batch_size: int = _BATCH
) -> AsyncGenerator[Sequence[Outgoing], None]:
    """The selected events as replay messages, in storage order, a batch at a time."""
    where, params = selection.where()
    sql = (
        f"SELECT {COLUMNS} FROM events WHERE ({where}) AND seq > ?"  # noqa: S608 - fixed fragments
        " ORDER BY seq LIMIT ?"
    )
    after = 0
    while True:
        rows = await fetch_tuples(conn, sql, [*params, after, batch_size])
        if not rows:
            return
        after = rows[-1][0]
        yield [from_row(row, replay=True) for row in rows]


async def replay(
    source: ReplaySource,
    publisher: Publisher,
    selection: ReplayFilter,
    progress: ReplayProgress,
    *,
    metrics: PublishMetrics | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    batch_size: int = _BATCH,
) -> ReplayProgress:
    """Publish the selected events on a connected `publisher`, updating `progress` as confirms
    arrive. Raises `BrokerUnavailable` at the first unconfirmed message."""

    def settled(items: Sequence[Settled]) -> None:
        confirmed = sum(1 for item in items if item.outcome is Outcome.CONFIRMED)
        unroutable = sum(1 for item in items if item.outcome is Outcome.UNROUTABLE)
        progress.published += confirmed
        progress.unroutable += unroutable
        progress.failed += len(items) - confirmed - unroutable
        if metrics is not None and confirmed:
            metrics.replayed.inc(confirmed)
        if on_progress is not None:
            on_progress(progress)

    await publisher.publish(source.batches(selection, batch_size), settled)
    return progress
