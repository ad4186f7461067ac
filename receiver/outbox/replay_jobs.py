"""Replays started over HTTP run as background jobs, so a long replay outlives its request.

`POST /api/events/replay` connects (failing fast with 503 if the broker is down), counts the
matching events, starts the job and answers 202 with its id; `GET /api/events/replay/{id}` shows
its progress. One replay runs at a time: a second one would only double the duplicates consumers
have to skip. Each job has its own connection, so it never disturbs the outbox relay's channel.
The last few finished jobs are kept for inspection; running ones are cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import aiosqlite

from receiver.logs import printable
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import BrokerUnavailable, Publisher, describe
from receiver.outbox.replay import ReplayFilter, ReplayProgress, count_matching, replay
from receiver.times import iso_utc

log = logging.getLogger(__name__)

_KEEP_FINISHED: Final = 20

JobState = Literal["running", "done", "failed", "cancelled"]


class ReplayBusy(Exception):
    """A replay is already running."""

    def __init__(self, running: str) -> None:
        super().__init__(f"replay {running} is still running")
        self.running = running


@dataclass(slots=True)
class ReplayJob:
    id: str
    selection: ReplayFilter
    progress: ReplayProgress
    started_at: float
    state: JobState = "running"
    finished_at: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state,
            "filter": self.selection.describe(),
            "matched": self.progress.matched,
            "published": self.progress.published,
            "unroutable": self.progress.unroutable,
            "failed": self.progress.failed,
            "started_at": iso_utc(self.started_at),
            "finished_at": iso_utc(self.finished_at),
            "error": self.error,
        }


PublisherFactory = Callable[[], Publisher]


class ReplayJobs:
    """The replay jobs of one app."""

    def __init__(
        self,
        reader: aiosqlite.Connection,
        publisher_factory: PublisherFactory,
        metrics: PublishMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._reader = reader
        self._publisher_factory = publisher_factory
        self._metrics = metrics
        self._clock = clock
        self._jobs: OrderedDict[str, ReplayJob] = OrderedDict()

    def get(self, job_id: str) -> ReplayJob | None:
        return self._jobs.get(job_id)

    async def start(self, selection: ReplayFilter) -> ReplayJob:
        """Connect, count, and start replaying; raises `BrokerUnavailable` or `ReplayBusy`."""
        running = next((j for j in self._jobs.values() if j.state == "running"), None)
        if running is not None:
            raise ReplayBusy(running.id)
        publisher = self._publisher_factory()
        await publisher.connect()
        try:
            matched = await count_matching(self._reader, selection)
        except BaseException:
            await publisher.close()
            raise
        job = ReplayJob(
            id=str(uuid.uuid4()),
            selection=selection,
            progress=ReplayProgress(matched),
            started_at=self._clock(),
        )
        job.task = asyncio.create_task(self._run(job, publisher), name=f"replay-{job.id}")
        self._jobs[job.id] = job
        self._forget_old()
        log.info(
            "replay %s started: %d events match %s",
            job.id,
            matched,
            printable(selection.describe()),
        )
        return job

    async def close(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: ReplayJob, publisher: Publisher) -> None:
        try:
            await replay(
                self._reader, publisher, job.selection, job.progress, metrics=self._metrics
            )
        except asyncio.CancelledError:
            job.state, job.error = "cancelled", "the service is shutting down"
            raise
        except BrokerUnavailable as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:
            log.exception("replay %s failed", job.id)
            job.state, job.error = "failed", describe(exc)
        else:
            job.state = "done"
        finally:
            job.finished_at = self._clock()
            await publisher.close()
            p = job.progress
            log.info(
                "replay %s %s: %d published, %d unroutable, %d failed of %d",
                job.id,
                job.state,
                p.published,
                p.unroutable,
                p.failed,
                p.matched,
            )

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state != "running"]
        for job_id in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self._jobs[job_id]
