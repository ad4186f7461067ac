"""Replay: re-publish stored events, with their original message_id and header `x-replay: true`.

Shared by `receiver replay` (on the database file, no server needed) and
`POST /api/events/replay`: both select with a `ReplayFilter` and publish through the same
`Publisher` as the outbox relay, in storage order. A replay does not touch the outbox columns:
an event that was never published still goes out through the relay as well (consumers dedupe by
message_id either way).

Filters: `since`/`until` bound the time the receiver stored the event (`received_at`: always
known, unlike `event_time`), since inclusive and until exclusive; `kinds` (any of), `stream` and
`domain` (exact). An empty filter replays nothing unless `everything` is set, so a typo cannot
flood consumers with the whole history.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from receiver.envelope import COLUMNS, Outgoing, from_row
from receiver.kinds import ALL_KINDS
from receiver.outbox import fetch_tuples
from receiver.publish_metrics import PublishMetrics
from receiver.publisher import Outcome, Publisher, Settled

_BATCH: Final = 1000


class ReplayFilter(BaseModel):
    """Which stored events to replay; every given condition must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    since: datetime | None = None
    until: datetime | None = None
    kinds: tuple[str, ...] = Field(default=(), alias="kind")
    stream: str | None = Field(default=None, min_length=1)
    domain: str | None = Field(default=None, min_length=1)
    everything: bool = Field(default=False, alias="all")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is read as UTC: the service stores and shows UTC only.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("kinds", mode="before")
    @classmethod
    def _kind_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [kind for kind in value if kind not in ALL_KINDS]
        if unknown:
            raise ValueError(
                f"unknown kind {', '.join(map(repr, unknown))}; known: {', '.join(ALL_KINDS)}"
            )
        return value

    @model_validator(mode="after")
    def _something_selected(self) -> ReplayFilter:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        selective = (self.since, self.until, self.stream, self.domain)
        if not self.everything and not self.kinds and all(v is None for v in selective):
            raise ValueError(
                "no filter given: set since, until, kind, stream or domain, "
                "or all=true (--all) to replay every stored event"
            )
        return self

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition and its parameters (fixed fragments, values always bound)."""
        clauses: list[str] = []
        params: list[object] = []
        if self.since is not None:
            clauses.append("received_at >= ?")
            params.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("received_at < ?")
            params.append(self.until.timestamp())
        if self.kinds:
            clauses.append(f"kind IN ({','.join('?' * len(self.kinds))})")
            params.extend(self.kinds)
        if self.stream is not None:
            clauses.append("stream_id = ?")
            params.append(self.stream)
        if self.domain is not None:
            clauses.append("domain = ?")
            params.append(self.domain)
        return (" AND ".join(clauses) or "1"), params

    def describe(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


@dataclass(slots=True)
class ReplayProgress:
    matched: int
    published: int = 0
    unroutable: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.published + self.unroutable + self.failed


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
    conn: aiosqlite.Connection,
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

    await publisher.publish(matching_batches(conn, selection, batch_size), settled)
    return progress
