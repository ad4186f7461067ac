"""Replays started over HTTP run as background jobs, so a long replay outlives its request.

`POST /api/events/replay` connects (failing fast with 503 if the broker is down), counts the
matching events, starts the job and answers 202 with its id; `GET /api/events/replay/{id}` shows
its progress. One replay runs at a time: a second one would only double the duplicates consumers
have to skip. Each job has its own connection, so it never disturbs the outbox relay's channel.
The last few finished jobs are kept for inspection; running ones are cancelled at shutdown.

Where a job's state lives is a `JobBook`: in this process on SQLite (`MemoryBook`: one service
per database), in the database on PostgreSQL (`receiver.outbox.pg_replay.PostgresBook`), so that
behind a load balancer any replica answers for a job another one started, and "one at a time"
holds across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from receiver.logs import printable
from receiver.outbox.metrics import PublishMetrics
from receiver.outbox.publisher import BrokerUnavailable, Publisher, describe
from receiver.outbox.replay import ReplayFilter, ReplayProgress, ReplaySource, replay
from receiver.times import iso_utc

log = logging.getLogger(__name__)

KEEP_FINISHED: Final = 20
# How often a running job's progress is written to its book (and, on PostgreSQL, proves that
# the replica running it is alive).
SAVE_INTERVAL_SECONDS: Final = 1.0

JobState = Literal["running", "done", "failed", "cancelled"]


class JobsUnavailable(Exception):
    """The database holding the jobs, or the events, cannot be reached (PostgreSQL: 503)."""


class ReplayBusy(Exception):
    """A replay is already running."""

    def __init__(self, running: str) -> None:
        super().__init__(f"replay {running} is still running")
        self.running = running


def job_view(
    job_id: str,
    state: str,
    selection: dict[str, object],
    progress: ReplayProgress,
    started_at: float | None,
    finished_at: float | None,
    error: str | None,
) -> dict[str, object]:
    """A job as the API shows it (`ReplayJobView`), whichever book it comes from."""
    return {
        "id": job_id,
        "state": state,
        "filter": selection,
        "matched": progress.matched,
        "published": progress.published,
        "unroutable": progress.unroutable,
        "failed": progress.failed,
        "started_at": iso_utc(started_at),
        "finished_at": iso_utc(finished_at),
        "error": error,
    }


@dataclass(slots=True)
class ReplayJob:
    id: str
    selection: ReplayFilter
    progress: ReplayProgress
    started_at: float
    state: JobState = "running"
    finished_at: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return job_view(
            self.id,
            self.state,
            self.selection.describe(),
            self.progress,
            self.started_at,
            self.finished_at,
            self.error,
        )


class JobBook(Protocol):
    """Where replay jobs are recorded, and what enforces one running job at a time."""

    async def running(self) -> str | None:
        """The id of the job running now, if any."""
        ...

    async def claim(self, job: ReplayJob) -> None:
        """Record a new running job; `ReplayBusy` if another one runs (checked atomically)."""
        ...

    async def save(self, job: ReplayJob) -> None:
        """Record the job's progress and state."""
        ...

    async def find(self, job_id: str) -> dict[str, object] | None:
        """The job as the API shows it; None if unknown (finished ones expire)."""
        ...


class MemoryBook:
    """Jobs in this process: enough where only one service uses the database (SQLite)."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, ReplayJob] = OrderedDict()

    async def running(self) -> str | None:
        return next((j.id for j in self._jobs.values() if j.state == "running"), None)

    async def claim(self, job: ReplayJob) -> None:
        running = await self.running()
        if running is not None:
            raise ReplayBusy(running)
        self._jobs[job.id] = job
        finished = [j.id for j in self._jobs.values() if j.state != "running"]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    async def save(self, job: ReplayJob) -> None:
        """Nothing to do: the book holds the job object itself."""

    async def find(self, job_id: str) -> dict[str, object] | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.as_json()


PublisherFactory = Callable[[], Publisher]


class ReplayJobs:
    """The replay jobs of one app: reads from `source`, records in `book`."""

    def __init__(
        self,
        source: ReplaySource,
        book: JobBook,
        publisher_factory: PublisherFactory,
        metrics: PublishMetrics,
        clock: Callable[[], float],
        *,
        save_interval: float = SAVE_INTERVAL_SECONDS,
    ) -> None:
        self._source = source
        self._book = book
        self._publisher_factory = publisher_factory
        self._metrics = metrics
        self._clock = clock
        self._save_interval = save_interval
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, job_id: str) -> dict[str, object] | None:
        return await self._book.find(job_id)

    async def start(self, selection: ReplayFilter) -> ReplayJob:
        """Connect, count, and start replaying; raises `BrokerUnavailable` or `ReplayBusy`."""
        running = await self._book.running()  # before connecting: a busy answer needs no broker
        if running is not None:
            raise ReplayBusy(running)
        publisher = self._publisher_factory()
        await publisher.connect()
        try:
            matched = await self._source.count(selection)
            job = ReplayJob(
                id=str(uuid.uuid4()),
                selection=selection,
                progress=ReplayProgress(matched),
                started_at=self._clock(),
            )
            await self._book.claim(job)
        except BaseException:
            await publisher.close()
            raise
        task = asyncio.create_task(self._run(job, publisher), name=f"replay-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "replay %s started: %d events match %s",
            job.id,
            matched,
            printable(selection.describe()),
        )
        return job

    async def close(self) -> None:
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: ReplayJob, publisher: Publisher) -> None:
        saver = asyncio.create_task(self._keep_saving(job), name=f"replay-{job.id}-progress")
        try:
            await replay(
                self._source, publisher, job.selection, job.progress, metrics=self._metrics
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
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            await publisher.close()
            await self._save(job)
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

    async def _keep_saving(self, job: ReplayJob) -> None:
        while True:
            await asyncio.sleep(self._save_interval)
            await self._save(job)

    async def _save(self, job: ReplayJob) -> None:
        try:
            await self._book.save(job)
        except Exception as exc:  # the replay goes on; the next save catches up
            log.warning("could not record the progress of replay %s: %s", job.id, describe(exc))
