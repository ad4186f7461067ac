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

_SESSION: Final = (
    "SELECT p.session_key, p.sequence FROM streams AS s JOIN push_sessions AS p"
    " ON p.id = s.current_session WHERE s.domain = ? AND s.app_name = ? AND s.stream_id = ?"
)
_INSERT: Final = (
    "INSERT OR IGNORE INTO moderation_actions (action_id, action, domain, app_name, stream_id,"
    " session_key, sequence, trigger_event_id, trigger_kind, trigger_reason, reason, resume_at,"
    " dry_run, state, created_at, finished_at, result)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS: Final = (
    "id, action_id, action, domain, app_name, stream_id, session_key, sequence, trigger_event_id,"
    " trigger_kind, trigger_reason, reason, resume_at, dry_run, state, attempts, created_at,"
    " called_at, finished_at, result, confirmed_at, confirm_event_id"
)
_ROW: Final = f"SELECT {COLUMNS} FROM moderation_actions WHERE id = ?"  # noqa: S608 - constant
_CONFIRM: Final = (
    "UPDATE moderation_actions SET confirmed_at = ?, confirm_event_id = ?"
    " WHERE stream_id = ? AND domain = ? AND app_name = ? AND action = ?"
    " AND state IN ('calling', 'done') AND confirmed_at IS NULL"
    " AND (session_key = ? OR session_key = '' OR ? = '')"
)


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
        event_type = event[1]
        if event_type == STREAM_END:
            if body.get("errcode") == API_ERRCODE:
                self._confirm(conn, event, body)
            return
        if not self.watches(event_type):
            return
        why = self.policy.match(kind_of(event_type), body)
        if why is not None and event[6]:
            self._record(conn, event, why)

    def _record(self, conn: sqlite3.Connection, event: tuple[Any, ...], why: str) -> None:
        policy = self.policy
        domain, app, stream = event[4] or "", event[5] or "", event[6]
        found = conn.execute(_SESSION, (domain, app, stream)).fetchone()
        session_key, sequence = (found[0], found[1]) if found is not None else ("", None)
        now = self._clock()
        kind = kind_of(event[1])
        forbid = policy.action == "forbid"
        state, finished, result = "pending", None, None
        if policy.dry_run:
            state, finished = "dry_run", now
        elif not domain or not app:
            # DropLiveStream and ForbidLiveStream require DomainName and AppName.
            state, finished = "failed", now
            result = _error("IncompleteStream", "the callback names no push domain or AppName")
        action_id = self._ids.new()
        cursor = conn.execute(
            _INSERT,
            (
                action_id,
                policy.action,
                domain,
                app,
                stream,
                session_key,
                sequence,
                event[0],
                kind,
                why,
                forbid_reason(policy, kind, why, event[0]) if forbid else None,
                now + policy.forbid_seconds if forbid else None,
                int(policy.dry_run),
                state,
                now,
                finished,
                result,
            ),
        )
        if cursor.rowcount != 1:
            return  # this stream and session has its action already
        log.warning(
            "moderation: %s%s of %s/%s/%s (session %s) on %s event %s: %s",
            policy.action,
            " (dry run)" if policy.dry_run else "",
            domain,
            app,
            stream,
            session_key or "unknown",
            kind,
            event[0],
            why,
        )
        if state in FINAL_STATES:
            assert cursor.lastrowid is not None
            self.publish(conn, cursor.lastrowid)

    def apply(self, conn: sqlite3.Connection, mark: ActionMark) -> None:
        """Record the executor's report (in the caller's transaction)."""
        if mark.state == "calling":
            conn.execute(
                "UPDATE moderation_actions SET state = 'calling', attempts = attempts + 1,"
                " called_at = ? WHERE id = ? AND state IN ('pending', 'calling')",
                (mark.at, mark.action),
            )
        elif mark.state == "pending":
            conn.execute(
                "UPDATE moderation_actions SET state = 'pending', result = ?"
                " WHERE id = ? AND state IN ('pending', 'calling')",
                (mark.result, mark.action),
            )
        elif mark.state in ("done", "failed"):
            cursor = conn.execute(
                "UPDATE moderation_actions SET state = ?, finished_at = ?, result = ?"
                " WHERE id = ? AND state IN ('pending', 'calling')",
                (mark.state, mark.at, mark.result, mark.action),
            )
            if cursor.rowcount == 1:
                self.publish(conn, mark.action)
        else:
            raise ValueError(f"not an executor state: {mark.state!r}")

    def publish(self, conn: sqlite3.Connection, action: int) -> None:
        """Store the `moderation_action` event of a finished action (published by the relay)."""
        found = conn.execute(_ROW, (action,)).fetchone()
        if found is None:
            return
        row = ActionRow(*found)
        now = self._clock()
        payload = orjson.dumps(event_payload(row)).decode()
        conn.execute(
            INSERT_EVENT,
            (
                self._ids.new(),
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
            ),
        )

    def _confirm(
        self, conn: sqlite3.Connection, event: tuple[Any, ...], body: Mapping[str, Any]
    ) -> None:
        sub = body.get("sub_errcode", body.get("suberrcode"))
        for action, code in SUB_CODES.items():
            # The callback documents only errcode/errmsg; the console's sub-code is used when a
            # callback carries it, and a different one (102/103: replaced by a new push) is not
            # the API's doing.
            if sub is not None and sub != code:
                continue
            sequence = event[8] or ""
            conn.execute(
                _CONFIRM,
                (
                    event[7] or event[9],
                    event[0],
                    event[6],
                    event[4] or "",
                    event[5] or "",
                    action,
                    sequence,
                    sequence,
                ),
            )


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
