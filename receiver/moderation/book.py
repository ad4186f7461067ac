"""The durable record of moderation actions, written by the fold process (the database's writer).

Three moments write it, each inside a transaction the fold process commits anyway:

* **a triggering event is folded** (`on_stored`, in the fold transaction that stores the event):
  one action row keyed (domain, app, stream, push session), `INSERT OR IGNORE` on that unique
  key, so CSS retries, more screenshots of the same session and a fold done again after a crash
  add nothing. The push session is the stream's current one as the history tables know it at
  that point of the fold (`streams.current_session`). In dry-run mode the row is final at once
  (`dry_run`) and its `moderation_action` event is stored in the same transaction;
* **the executor reports** (`apply`, an `ActionMark` frame from the service): `calling` before
  the API call (committed before the request leaves), then `done`/`failed` with the API's answer
  and the `moderation_action` event, together, or `pending` again after a failure that provably
  changed nothing;
* **a stream end with errcode 21 is folded** (`on_stored`): it confirms the stream's finished
  drop (sub-code 100) or forbid (101) of that push session.

The published event is an ordinary row of `events` (event_type -1, kind `moderation_action`),
so the outbox relay publishes it in storage order with the callbacks, at least once, with its
id as `message_id`.

PostgreSQL has no fold: `receiver.moderation.pg_book` does the same there, with the same
decisions and statements from this module (`reaction`, `planned`, `MARKS`, `CONFIRM`, ...).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

import orjson

from receiver.events.kinds import MODERATION_ACTION, kind_of
from receiver.moderation.policy import ModerationPolicy, forbid_reason
from receiver.storage.ids import EventIds
from receiver.storage.rows import INSERT_EVENT
from receiver.times import iso_utc

log = logging.getLogger("receiver.moderation")

STREAM_END: Final = 0
# errcode 21 of a stream end: "Customer API dropped the stream" (100) / "banned the stream" (101)
API_ERRCODE: Final = 21
SUB_CODES: Final[dict[str, int]] = {"drop": 100, "forbid": 101}
FINAL_STATES: Final = ("done", "failed", "dry_run")

SESSION: Final = (
    "SELECT p.session_key, p.sequence FROM streams AS s JOIN push_sessions AS p"
    " ON p.id = s.current_session WHERE s.domain = ? AND s.app_name = ? AND s.stream_id = ?"
)
# A new action: the table, its columns and the values (`Planned.values`), for both engines.
NEW_ACTION: Final = (
    "moderation_actions (action_id, action, domain, app_name, stream_id,"
    " session_key, sequence, trigger_event_id, trigger_kind, trigger_reason, reason, resume_at,"
    " dry_run, state, created_at, finished_at, result)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT: Final = f"INSERT OR IGNORE INTO {NEW_ACTION}"
COLUMNS: Final = (
    "id, action_id, action, domain, app_name, stream_id, session_key, sequence, trigger_event_id,"
    " trigger_kind, trigger_reason, reason, resume_at, dry_run, state, attempts, created_at,"
    " called_at, finished_at, result, confirmed_at, confirm_event_id"
)
ROW: Final = f"SELECT {COLUMNS} FROM moderation_actions WHERE id = ?"  # noqa: S608 - constant
CONFIRM: Final = (
    "UPDATE moderation_actions SET confirmed_at = ?, confirm_event_id = ?"
    " WHERE stream_id = ? AND domain = ? AND app_name = ? AND action = ?"
    " AND state IN ('calling', 'done') AND confirmed_at IS NULL"
    " AND (session_key = ? OR session_key = '' OR ? = '')"
)
# The executor's reports (`ActionMark`), by the state reported; `?` placeholders, shared with
# PostgreSQL (receiver.moderation.pg_book). A report never moves a finished action.
MARKS: Final[dict[str, str]] = {
    "calling": "UPDATE moderation_actions SET state = 'calling', attempts = attempts + 1,"
    " called_at = ? WHERE id = ? AND state IN ('pending', 'calling')",
    "pending": "UPDATE moderation_actions SET state = 'pending', result = ?"
    " WHERE id = ? AND state IN ('pending', 'calling')",
    "finished": "UPDATE moderation_actions SET state = ?, finished_at = ?, result = ?"
    " WHERE id = ? AND state IN ('pending', 'calling')",
}


class ActionRow(NamedTuple):
    """One row of `moderation_actions`, in `COLUMNS` order."""

    id: int
    action_id: str
    action: str
    domain: str
    app_name: str
    stream_id: str
    session_key: str
    sequence: str | None
    trigger_event_id: str | None
    trigger_kind: str | None
    trigger_reason: str | None
    reason: str | None
    resume_at: float | None
    dry_run: int
    state: str
    attempts: int
    created_at: float
    called_at: float | None
    finished_at: float | None
    result: str | None
    confirmed_at: float | None
    confirm_event_id: str | None


class ActionMark(NamedTuple):
    """The executor's report on one action: its new `state` at `at`, with the API's answer
    (JSON) for `done`/`failed`, or the error that sent it back to `pending`."""

    action: int  # moderation_actions.id
    state: str  # calling, done, failed, pending
    at: float
    result: str | None


class ActionBook:
    """The fold process's side of moderation: records triggers, marks and confirmations."""

    def __init__(self, policy: ModerationPolicy, *, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._clock = clock
        self._ids = EventIds()

    def watches(self, event_type: int) -> bool:
        """Whether an event of this type may trigger the policy (the fold then stores its chunk
        row by row, so the push session looked up is the one current at that event)."""
        return self.policy.active and kind_of(event_type) in self.policy.kinds

    def on_stored(
        self, conn: sqlite3.Connection, event: tuple[Any, ...], body: Mapping[str, Any]
    ) -> None:
        """An event was just stored (not a duplicate), in the open fold transaction.

        `event` is the `INSERT_EVENT` row (receiver.storage.rows.event_row layout)."""
        what = reaction(self.policy, event, body)
        if what == CONFIRMS:
            self._confirm(conn, event, body)
        elif what is not None:
            self._record(conn, event, what)

    def _record(self, conn: sqlite3.Connection, event: tuple[Any, ...], why: str) -> None:
        found = conn.execute(SESSION, (event[4] or "", event[5] or "", event[6])).fetchone()
        session_key, sequence = (found[0], found[1]) if found is not None else ("", None)
        plan = planned(self.policy, event, why, self._clock(), self._ids.new())
        cursor = conn.execute(_INSERT, plan.values(session_key, sequence))
        if cursor.rowcount != 1:
            return  # this stream and session has its action already
        plan.log(session_key)
        if plan.state in FINAL_STATES:
            assert cursor.lastrowid is not None
            self.publish(conn, cursor.lastrowid)

    def apply(self, conn: sqlite3.Connection, mark: ActionMark) -> None:
        """Record the executor's report (in the caller's transaction)."""
        sql, params = mark_sql(mark)
        cursor = conn.execute(sql, params)
        if mark.state in ("done", "failed") and cursor.rowcount == 1:
            self.publish(conn, mark.action)

    def publish(self, conn: sqlite3.Connection, action: int) -> None:
        """Store the `moderation_action` event of a finished action (published by the relay)."""
        found = conn.execute(ROW, (action,)).fetchone()
        if found is not None:
            conn.execute(
                INSERT_EVENT, action_event(ActionRow(*found), self._ids.new(), self._clock())
            )

    def _confirm(
        self, conn: sqlite3.Connection, event: tuple[Any, ...], body: Mapping[str, Any]
    ) -> None:
        conn.executemany(CONFIRM, confirmations(event, body))


# `reaction` of a stream end that may confirm a finished drop or forbid.
CONFIRMS: Final = ""


def reaction(
    policy: ModerationPolicy, event: tuple[Any, ...], body: Mapping[str, Any]
) -> str | None:
    """What a stored `event` (an `INSERT_EVENT` row) means to the book: `CONFIRMS` (a stream
    end with errcode 21), why it triggers the policy, or None (nothing: most events)."""
    event_type = event[1]
    if event_type == STREAM_END:
        return CONFIRMS if body.get("errcode") == API_ERRCODE else None
    if not (policy.active and kind_of(event_type) in policy.kinds) or not event[6]:
        return None
    return policy.match(kind_of(event_type), body)


class Planned(NamedTuple):
    """What the policy records for one triggering event, before its push session is known."""

    policy: ModerationPolicy
    action_id: str
    domain: str
    app_name: str
    stream_id: str
    trigger_event_id: str
    kind: str
    why: str
    state: str
    created_at: float
    finished_at: float | None
    result: str | None

    def values(self, session_key: str, sequence: str | None) -> tuple[Any, ...]:
        """The `moderation_actions` columns of `_INSERT`, in order."""
        policy = self.policy
        forbid = policy.action == "forbid"
        reason = forbid_reason(policy, self.kind, self.why, self.trigger_event_id)
        return (
            self.action_id,
            policy.action,
            self.domain,
            self.app_name,
            self.stream_id,
            session_key,
            sequence,
            self.trigger_event_id,
            self.kind,
            self.why,
            reason if forbid else None,
            self.created_at + policy.forbid_seconds if forbid else None,
            int(policy.dry_run),
            self.state,
            self.created_at,
            self.finished_at,
            self.result,
        )

    def log(self, session_key: str) -> None:
        log.warning(
            "moderation: %s%s of %s/%s/%s (session %s) on %s event %s: %s",
            self.policy.action,
            " (dry run)" if self.policy.dry_run else "",
            self.domain,
            self.app_name,
            self.stream_id,
            session_key or "unknown",
            self.kind,
            self.trigger_event_id,
            self.why,
        )


def planned(
    policy: ModerationPolicy, event: tuple[Any, ...], why: str, now: float, action_id: str
) -> Planned:
    """The action `policy` takes on a stored triggering `event` (an `INSERT_EVENT` row)."""
    domain, app = event[4] or "", event[5] or ""
    state, finished, result = "pending", None, None
    if policy.dry_run:
        state, finished = "dry_run", now
    elif not domain or not app:
        # DropLiveStream and ForbidLiveStream require DomainName and AppName.
        state, finished = "failed", now
        result = _error("IncompleteStream", "the callback names no push domain or AppName")
    kind = kind_of(event[1])
    return Planned(
        policy, action_id, domain, app, event[6], event[0], kind, why, state, now, finished, result
    )


def mark_sql(mark: ActionMark) -> tuple[str, tuple[Any, ...]]:
    """The statement (`?` placeholders) and parameters recording one executor report."""
    if mark.state == "calling":
        return MARKS["calling"], (mark.at, mark.action)
    if mark.state == "pending":
        return MARKS["pending"], (mark.result, mark.action)
    if mark.state in ("done", "failed"):
        return MARKS["finished"], (mark.state, mark.at, mark.result, mark.action)
    raise ValueError(f"not an executor state: {mark.state!r}")


def action_event(row: ActionRow, event_id: str, now: float) -> tuple[Any, ...]:
    """The `moderation_action` event of a finished action, as an `INSERT_EVENT` row."""
    payload = orjson.dumps(event_payload(row)).decode()
    return (
        event_id,
        MODERATION_ACTION,
        kind_of(MODERATION_ACTION),
        f"action:{row.action_id}:{row.state}",
        row.domain or None,
        row.app_name or None,
        row.stream_id,
        row.finished_at or now,
        row.sequence,
        now,
        None,
        None,
        payload,
        None,
    )


def confirmations(event: tuple[Any, ...], body: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """`CONFIRM` parameters for a stored stream end with errcode 21 (`event`: its row)."""
    sub = body.get("sub_errcode", body.get("suberrcode"))
    sequence = event[8] or ""
    found = []
    for action, code in SUB_CODES.items():
        # The callback documents only errcode/errmsg; the console's sub-code is used when a
        # callback carries it, and a different one (102/103: replaced by a new push) is not
        # the API's doing.
        if sub is not None and sub != code:
            continue
        found.append(
            (
                event[7] or event[9],
                event[0],
                event[6],
                event[4] or "",
                event[5] or "",
                action,
                sequence,
                sequence,
            )
        )
    return found


def event_payload(row: ActionRow) -> dict[str, Any]:
    """The body of a published `moderation_action` event (docs/moderation.md)."""
    return {
        "action_id": row.action_id,
        "action": row.action,
        "state": row.state,
        "dry_run": bool(row.dry_run),
        "domain": row.domain,
        "app_name": row.app_name,
        "stream_id": row.stream_id,
        "sequence": row.sequence,
        "trigger_event_id": row.trigger_event_id,
        "trigger_kind": row.trigger_kind,
        "trigger_reason": row.trigger_reason,
        "reason": row.reason,
        "resume_at": iso_utc(row.resume_at),
        "attempts": row.attempts,
        "created_at": iso_utc(row.created_at),
        "called_at": iso_utc(row.called_at),
        "finished_at": iso_utc(row.finished_at),
        "result": orjson.loads(row.result) if row.result else None,
    }


def _error(code: str, message: str) -> str:
    return orjson.dumps({"error": {"code": code, "message": message}}).decode()
