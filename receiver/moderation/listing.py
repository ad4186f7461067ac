"""Listing moderation actions: the query model, the SQL and the response model, shared by
`GET /api/actions` and `receiver actions` (so the two cannot drift apart).

`confirmation` is decided when an action is shown, from what is stored: `confirmed` once a
stream end with errcode 21 (sub-code 100 drop / 101 forbid, when the callback carries one) of
that push session was folded; `awaiting` for a finished drop/forbid younger than
`CONFIRM_WINDOW_SECONDS`; `unconfirmed` after that (the stream was not live, the end callback
was lost, or the action had no effect); null for actions that were not carried out.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import aiosqlite
import orjson
from pydantic import Field, model_validator

from receiver.history.params import Order, Query
from receiver.moderation.book import COLUMNS, ActionRow
from receiver.storage.postgres.placeholders import numbered
from receiver.storage.selection import Text
from receiver.times import Timestamp, utc
from receiver.web.responses import Resource

if TYPE_CHECKING:
    import asyncpg

# CSS sends the stream end within seconds of a drop or forbid of a live push; two minutes
# leave room for its retries (about one a minute).
CONFIRM_WINDOW_SECONDS: Final = 120.0

ActionName = Literal["drop", "forbid", "resume"]
State = Literal["pending", "calling", "done", "failed", "dry_run"]
Confirmation = Literal["confirmed", "awaiting", "unconfirmed"]


class ActionQuery(Query):
    """Filters of `GET /api/actions` and `receiver actions`; all of them combine with AND."""

    domain: Text | None = Field(default=None, description="Push domain.")
    app_name: Text | None = Field(default=None, description="Push path (AppName).")
    stream_id: Text | None = Field(default=None, description="Stream name.")
    action: ActionName | None = Field(default=None, description="drop, forbid or resume.")
    state: State | None = Field(
        default=None,
        description="pending: not called yet; calling: the call may have been sent; done / "
        "failed: the API's answer is in `result`; dry_run: recorded only.",
    )
    since: Timestamp | None = Field(default=None, description="Recorded at or after this instant.")
    until: Timestamp | None = Field(default=None, description="Recorded before this instant.")
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    order: Order = Field(default="desc", description="desc: newest first; asc: oldest first.")

    @model_validator(mode="after")
    def _range(self) -> ActionQuery:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be earlier than until")
        return self


class Action(Resource):
    id: str = Field(description="Action id (UUIDv7).")
    action: ActionName
    state: State
    dry_run: bool
    domain: str | None
    app_name: str | None
    stream_id: str
    sequence: str | None = Field(description="The push session it acted on, when known.")
    trigger_event_id: str | None = Field(description="The moderation event that triggered it.")
    trigger_kind: str | None
    trigger_reason: str | None = Field(description="Which rule of the policy matched.")
    reason: str | None = Field(description="ForbidLiveStream's Reason.")
    resume_at: datetime | None = Field(description="When a forbid lifts.")
    attempts: int = Field(description="API calls begun (a lost answer counts).")
    created_at: datetime
    called_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(
        description="`request_id` of the API's answer, `verified` (an interrupted call found "
        "to have taken effect), or `error` {code, message}."
    )
    confirmation: Confirmation | None
    confirmed_at: datetime | None
    confirm_event_id: str | None = Field(description="The stream end that confirmed it.")


class ActionList(Resource):
    actions: list[Action]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


def actions_page_sql(query: ActionQuery, after: int | None) -> tuple[str, list[object]]:
    """The page `query` selects after id `after`, one more row than asked (is there another
    page?); `?` placeholders, for both engines (`numbered` on PostgreSQL)."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (
        ("domain", query.domain),
        ("app_name", query.app_name),
        ("stream_id", query.stream_id),
        ("action", query.action),
        ("state", query.state),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("created_at >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("created_at < ?")
        params.append(query.until)
    descending = query.order == "desc"
    if after is not None:
        clauses.append("id < ?" if descending else "id > ?")
        params.append(after)
    where = " AND ".join(clauses) or "1 = 1"
    sql = (
        f"SELECT {COLUMNS} FROM moderation_actions WHERE {where}"  # noqa: S608 - fixed fragments
        f" ORDER BY id {'DESC' if descending else 'ASC'} LIMIT ?"
    )
    return sql, [*params, query.limit + 1]


async def list_actions(
    conn: aiosqlite.Connection, query: ActionQuery, after: int | None, now: float
) -> tuple[list[Action], int | None]:
    """A page of actions and the id to continue after (None: the last page)."""
    sql, params = actions_page_sql(query, after)
    async with conn.execute(sql, params) as cursor:
        found = [ActionRow(*row) for row in await cursor.fetchall()]
    return _page(found, query, now)


async def pg_list_actions(
    pool: asyncpg.Pool[Any], query: ActionQuery, after: int | None, now: float
) -> tuple[list[Action], int | None]:
    """`list_actions` on PostgreSQL: the same statement, the same page. On several replicas an
    action being recorded with a lower id than one already listed may be passed by a cursor
    (as with events: docs/scaling.md)."""
    sql, params = actions_page_sql(query, after)
    found = [ActionRow(*row) for row in await pool.fetch(numbered(sql), *params)]
    return _page(found, query, now)


def _page(
    found: list[ActionRow], query: ActionQuery, now: float
) -> tuple[list[Action], int | None]:
    shown = found[: query.limit]
    more = len(found) > query.limit
    return [action_of(row, now) for row in shown], shown[-1].id if more and shown else None


def action_of(row: ActionRow, now: float) -> Action:
    return Action(
        id=row.action_id,
        action=row.action,
        state=row.state,
        dry_run=bool(row.dry_run),
        domain=row.domain or None,
        app_name=row.app_name or None,
        stream_id=row.stream_id,
        sequence=row.sequence,
        trigger_event_id=row.trigger_event_id,
        trigger_kind=row.trigger_kind,
        trigger_reason=row.trigger_reason,
        reason=row.reason,
        resume_at=utc(row.resume_at),
        attempts=row.attempts,
        created_at=utc(row.created_at),
        called_at=utc(row.called_at),
        finished_at=utc(row.finished_at),
        result=orjson.loads(row.result) if row.result else None,
        confirmation=confirmation(row, now),
        confirmed_at=utc(row.confirmed_at),
        confirm_event_id=row.confirm_event_id,
    )


def confirmation(row: ActionRow, now: float) -> Confirmation | None:
    if row.action not in ("drop", "forbid") or row.state not in ("calling", "done"):
        return None
    if row.confirmed_at is not None:
        return "confirmed"
    if row.state == "calling" or now - (row.finished_at or now) < CONFIRM_WINDOW_SECONDS:
        return "awaiting"
    return "unconfirmed"
