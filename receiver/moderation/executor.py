"""The executor: calls the API once for each recorded moderation action (a task of `serve`).

For each action in state `pending` or `calling`, oldest first:

1. `calling` is committed (on SQLite through the fold process, the database's writer; on
   PostgreSQL fenced on this executor's lease, `receiver.moderation.claims`) **before** the
   request is sent, so a crash at any later point leaves evidence that the call may have gone out;
2. the API is called (the shared client: the action's token bucket, retries of throttling and
   of connections never made; Drop/Forbid are not retried after an ambiguous failure);
3. the answer is committed: `done`/`failed` with the API's result, and the published
   `moderation_action` event in the same commit.

Only the policy's drops and forbids: a `resume` is carried out and recorded by the command that
asked for it (`receiver tencent resume`), which may be running right now.

An action found in `calling` (the process died or the answer was lost after step 1) is not
called again blindly: the executor first looks whether it took effect — a forbid in
`DescribeLiveForbidStreamList`, a drop by `DescribeLiveStreamState` not `active` — and records
it `done` (`"verified"`, no second call) when it did; only when it provably did not is it called.
A failure that provably changed nothing (throttled beyond the client's retries, Tencent
unreachable) puts it back to `pending` and it is tried again after a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from receiver.moderation.book import ActionMark, ActionRow
from receiver.moderation.claims import ActionStore
from receiver.tencent.control import StreamControl
from receiver.tencent.errors import TencentApiError, TencentError

log = logging.getLogger("receiver.moderation")

BATCH: Final = 50
# With nothing to do, look this often anyway (the fold, or on PostgreSQL this replica's intake,
# wakes the executor; another replica's hits are found by this look).
IDLE_SECONDS: Final = 1.0
# After a failure that changed nothing: wait before trying that action again.
RETRY_DELAYS: Final = (1.0, 5.0, 15.0, 60.0, 300.0)


class ActionExecutor:
    """Takes pending actions and carries them out; `run_pending()` is one pass (tests)."""

    def __init__(
        self,
        store: ActionStore,
        control: StreamControl,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._control = control
        self._clock = clock
        self._wake = asyncio.Event()
        self._not_before: dict[int, tuple[float, int]] = {}  # id: (monotonic time, failures)
        self.calls = 0  # API calls made (tests and logs)
        self.last_error: str | None = None  # the last failure, for readiness (None after a success)

    def wake(self) -> None:
        """New events were folded: an action may be waiting."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.run_pending()
            except Exception as exc:  # the database is away (each engine has its errors)
                log.error("moderation executor: cannot read or record actions: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
            self._wake.clear()

    async def run_pending(self) -> int:
        """Carry out every open action that is due; returns how many were handled."""
        rows = await self.store.open_actions(BATCH)
        handled = 0
        now = time.monotonic()
        for row in rows:
            due = self._not_before.get(row.id)
            if due is not None and due[0] > now:
                continue
            async with self.store.working(row) as mine:
                if not mine:
                    continue  # another replica's executor has it
                await self._execute(row)
            handled += 1
        return handled

    async def _execute(self, row: ActionRow) -> None:
        if row.state == "calling":
            verified = await self._verify(row)
            if verified is None:
                return  # cannot tell yet (the look-up failed): try again later
            if verified:
                await self._finish(row, "done", {"verified": _VERIFIED[row.action]})
                return
            log.warning("moderation: %s of %s did not take effect; calling", row.action, _name(row))
        if not await self._mark(row, "calling", None):
            log.warning("moderation: %s of %s was taken over; not calling", row.action, _name(row))
            return
        try:
            self.calls += 1
            answer = await self._call(row)
        except TencentError as exc:
            await self._failed(row, exc)
            return
        await self._finish(row, "done", {"request_id": answer.get("RequestId")})

    async def _call(self, row: ActionRow) -> dict[str, Any]:
        if row.action == "forbid":
            return await self._control.forbid(
                row.domain, row.app_name, row.stream_id, resume_at=row.resume_at, reason=row.reason
            )
        if row.action == "drop":
            return await self._control.drop(row.domain, row.app_name, row.stream_id)
        raise ValueError(f"unknown action {row.action!r}")

    async def _verify(self, row: ActionRow) -> bool | None:
        """Did an interrupted call take effect? None: the look-up itself failed."""
        try:
            if row.action == "forbid":
                return await self._control.is_forbidden(row.domain, row.app_name, row.stream_id)
            if row.action == "drop":
                # Not active: the push is cut (by us, or it ended anyway); either way a second
                # drop has nothing left to do. Active: the drop did not reach it.
                state = await self._control.state(row.domain, row.app_name, row.stream_id)
                return state != "active"
            raise ValueError(f"unknown action {row.action!r}")
        except (TencentError, ValueError) as exc:
            log.warning("moderation: cannot check %s of %s: %s", row.action, _name(row), exc)
            self.last_error = str(exc)
            self._back_off(row)
            return None

    async def _failed(self, row: ActionRow, exc: TencentError) -> None:
        error = _error(exc)
        self.last_error = str(exc)
        if exc.transient and not exc.ambiguous:
            # Provably not processed (throttled past the client's retries, never connected).
            log.warning("moderation: %s of %s not done yet: %s", row.action, _name(row), exc)
            await self._mark(row, "pending", error)
            self._back_off(row)
        elif exc.ambiguous:
            # It may have taken effect: stay `calling`, so the next pass looks before calling.
            log.warning("moderation: %s of %s may have failed: %s", row.action, _name(row), exc)
            self._back_off(row)
        else:
            log.error("moderation: %s of %s failed: %s", row.action, _name(row), exc)
            await self._finish(row, "failed", error)

    async def _finish(self, row: ActionRow, state: str, result: dict[str, Any]) -> None:
        await self._mark(row, state, result)
        self._not_before.pop(row.id, None)
        if state == "done":
            self.last_error = None
        log.warning("moderation: %s of %s %s: %s", row.action, _name(row), state, result)

    async def _mark(self, row: ActionRow, state: str, result: dict[str, Any] | None) -> bool:
        text = None if result is None else orjson.dumps(result).decode()
        return await self.store.mark(ActionMark(row.id, state, self._clock(), text))

    def _back_off(self, row: ActionRow) -> None:
        _, failures = self._not_before.get(row.id, (0.0, 0))
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
        self._not_before[row.id] = (time.monotonic() + delay, failures + 1)


_VERIFIED: Final = {
    "forbid": "listed by DescribeLiveForbidStreamList; not called again",
    "drop": "DescribeLiveStreamState is not active; not called again",
}


def _name(row: ActionRow) -> str:
    return f"{row.domain}/{row.app_name}/{row.stream_id}"


def _error(exc: TencentError) -> dict[str, Any]:
    if isinstance(exc, TencentApiError):
        return {"error": {"code": exc.code, "message": exc.message, "request_id": exc.request_id}}
    return {"error": {"code": type(exc).__name__, "message": str(exc)}}
