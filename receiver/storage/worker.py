"""A helper process the service talks to in frames: started, supervised, restarted, stopped.

The two storage processes (`receiver.storage.writer_process`, which acknowledges callbacks,
and `receiver.storage.fold_process`, which folds them into history) share this plumbing.
Requests are sent as frames down a pipe (all frames of one loop iteration in one write) and wait
on a future; the process replies after its commit. If the process dies, waiting requests fail
with `StorageUnavailable` (503, CSS retries) and it is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from receiver.errors import StorageUnavailable
from receiver.storage.frames import FrameBuffer, Reply

log = logging.getLogger("receiver.storage.writer")

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class _Replies(asyncio.Protocol):
    """Reads reply frames from the process and hands them to its owner."""

    def __init__(self, owner: WorkerProcess) -> None:
        self._owner = owner
        self._frames = FrameBuffer()

    def data_received(self, data: bytes) -> None:
        replies = self._frames.feed(data)
        self._owner._replies(cast(list[Reply], replies))  # a worker sends only replies

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_lost()


class WorkerProcess:
    """Runs `python -m <module> --in-fd --out-fd <args>` and settles requests by reply.

    Subclasses name the module and arguments and handle replies (`_on_replies`); a `Ready`
    reply (the process opened its database) is handled here.
    """

    name = "worker"

    def __init__(self, module: str, args: Sequence[str]) -> None:
        self._module = module
        self._args = list(args)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._outgoing: list[bytes] = []
        self._process: asyncio.subprocess.Process | None = None
        self._to_worker: asyncio.WriteTransport | None = None
        self._from_worker: asyncio.ReadTransport | None = None
        self._ready: asyncio.Future[None] | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._restarted = asyncio.Event()
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self._to_worker is not None and not self._lost.is_set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the process; if it cannot open its database now, keep trying.

        Meanwhile its requests fail with 503 and readiness says so, as after a crash: a service
        started on a disk that is read-only for a while recovers with it instead of exiting.
        """
        try:
            await self._spawn()
        except (OSError, RuntimeError) as exc:
            log.error("could not start the %s process, retrying: %s", self.name, exc)
            self._lost.set()  # the supervisor restarts it
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-supervisor")

    async def wait_restarted(self) -> None:
        """Return once the process has been restarted after a crash (tests, ops)."""
        await self._restarted.wait()

    async def close(self) -> None:
        """Refuse new requests, let the process finish the queued ones, stop it."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._flush()
        if self._to_worker is not None:
            self._to_worker.close()  # EOF: the process finishes what it has and exits
        process = self._process
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("the %s process did not stop in time; killing it", self.name)
                process.kill()
                await process.wait()
        if self._from_worker is not None:
            await self._lost.wait()  # every reply the process sent has been read
        self._fail_pending("the service is shutting down; retry later")

    def _new_rid(self) -> int:
        self._check_open()
        self._next_id += 1
        return self._next_id

    def _check_open(self) -> None:
        if self._closing:
            raise StorageUnavailable("the service is shutting down; retry later")
        if not self.running:
            raise StorageUnavailable(f"the database {self.name} is restarting; retry later")

    def _send(self, rid: int, data: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = future
        self._post(data)
        return future

    def _post(self, data: bytes) -> None:
        """Queue a frame nobody waits for (or whose future is already registered)."""
        self._outgoing.append(data)
        if len(self._outgoing) == 1:
            # One write per loop iteration carries every request made during it.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._to_worker is not None and not self._to_worker.is_closing():
            self._to_worker.write(data)

    def _replies(self, messages: list[Reply]) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)  # the first reply is `Ready`
        self._on_replies(messages)

    def _on_replies(self, messages: list[Reply]) -> None:
        raise NotImplementedError

    def _settle(self, rid: int, result: Any = None, exc: BaseException | None = None) -> None:
        future = self._pending.pop(rid, None)
        if future is None or future.done():
            return  # the request went away (client disconnected); its work is done anyway
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _on_lost(self) -> None:
        self._lost.set()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                RuntimeError(f"the {self.name} process exited while starting")
            )
        self._fail_pending(
            "the service is shutting down; retry later"
            if self._closing
            else f"the database {self.name} stopped; retry later"
        )

    def _fail_pending(self, message: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(StorageUnavailable(message))

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self._module,
                "--in-fd", str(to_child_r), "--out-fd", str(from_child_w),
                *self._args,
                pass_fds=(to_child_r, from_child_w),
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._lost = asyncio.Event()
        self._ready = loop.create_future()
        to_worker, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(to_child_w, "wb", buffering=0)
        )
        from_worker, _ = await loop.connect_read_pipe(
            lambda: _Replies(self), os.fdopen(from_child_r, "rb", buffering=0)
        )
        self._to_worker = to_worker
        self._from_worker = from_worker
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError) as exc:
            if self._process.returncode is None:
                self._process.kill()
            raise RuntimeError(f"the {self.name} process did not start: {exc!r}") from exc

    async def _supervise(self) -> None:
        """Restart the process if it dies; its requests get 503 while it is down."""
        attempt = 0
        while True:
            await self._lost.wait()
            if self._process is not None:
                code = await self._process.wait()
                log.error("the %s process exited with code %s; restarting it", self.name, code)
            self._to_worker = None
            delay = RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)]
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (OSError, RuntimeError) as exc:
                log.error("could not restart the %s process: %s", self.name, exc)
                attempt += 1
                continue
            attempt = 0
            self.restarts += 1
            self._restarted.set()
            self._restarted = asyncio.Event()
