"""`GET /api/pipeline`: the service's own counters, minute by minute, over the last hour.

Kept in memory, in the HTTP process, sampled from the Prometheus registry the stages already
count into (`receiver_callbacks`, `receiver_refusals`, the outbox and fold gauges), so there is
one place for each fact and the callback path does no extra work. Not in the database: writing a
row a minute would go through the fold process (the database's only writer) for figures that
Prometheus already keeps for as long as anyone wants; and refusals, by definition, are never
stored. The cost is that the series starts again at zero when the process restarts:
`counting_since` says when, and `/metrics` scraped by Prometheus is the long-term record.

A sample is a snapshot of the cumulative counters and the current gauges, taken every
`RECEIVER_OUTBOX_STATS_INTERVAL_SECONDS` (the interval the backlog gauges are refreshed on) and
once more when the route is asked, so the current minute is never stale. Each minute keeps its
last sample and the largest value of each gauge. A minute's count is the difference between its
last sample and the last sample of the minutes before it: each increment is counted once, in the
minute of the first sample that saw it (at most one interval late).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import Field

from receiver.history.params import Params, parse_query
from receiver.keys import CLOCK, METRICS, SETTINGS
from receiver.times import utc
from receiver.web.openapi import Operation, Response, document
from receiver.web.responses import ApiErrorBody, Resource

MINUTE: Final = 60.0
HOUR_MINUTES: Final = 60

# Counters, by their sample name, and the label that splits each (None: a plain total).
# `receiver_callbacks` has two labels (kind, result): it is kept apart below.
_COUNTERS: Final = {
    "receiver_refusals_total": "reason",
    "receiver_publish_failures_total": "reason",
    "receiver_api_refusals_total": "reason",
    "receiver_published_total": None,
}
_CALLBACKS: Final = "receiver_callbacks_total"
_GAUGES: Final = (
    "receiver_outbox_backlog",
    "receiver_outbox_oldest_unpublished_age_seconds",
    "receiver_fold_backlog",
    "receiver_fold_oldest_unfolded_age_seconds",
    "receiver_broker_connected",
)
_NAMES: Final = (_CALLBACKS, *_COUNTERS, *_GAUGES)

CounterKey = tuple[str, str, str]  # (sample name, first label value, second label value)


@dataclass(frozen=True, slots=True)
class Sample:
    """The cumulative counters and the gauges at one moment."""

    at: float
    counters: dict[CounterKey, float]
    gauges: dict[str, float]


def read_sample(registry: CollectorRegistry, at: float) -> Sample:
    """Snapshot the counters and gauges the series is made of (only those: a restricted read)."""
    counters: dict[CounterKey, float] = {}
    gauges: dict[str, float] = {}
    for family in registry.restricted_registry(list(_NAMES)).collect():
        for sample in family.samples:
            if sample.name == _CALLBACKS:
                key = (sample.name, sample.labels["kind"], sample.labels["result"])
                counters[key] = sample.value
            elif sample.name in _COUNTERS:
                label = _COUNTERS[sample.name]
                counters[(sample.name, sample.labels[label] if label else "", "")] = sample.value
            elif sample.name in _GAUGES:
                gauges[sample.name] = sample.value
    return Sample(at, counters, gauges)


class PipelineMinute(Resource):
    """What the pipeline did in one minute, and where its queues stood at the minute's end."""

    start: datetime = Field(description="Start of the minute (UTC).")
    partial: bool = Field(
        description="The minute is still running, or began before `counting_since`."
    )
    callbacks: dict[str, dict[str, int]] = Field(
        description="Callbacks by kind, then result: `refused`, `unavailable` and `overloaded` "
        "when answered (refused ones under kind `unknown`: refused before their kind is "
        "trusted); `stored`, `duplicate` and `rejected` when folded into events."
    )
    refusals: dict[str, int] = Field(description="Refused callbacks by reason.")
    published: int = Field(description="Events the broker confirmed.")
    publish_failures: dict[str, int] = Field(description="Publishes not confirmed, by reason.")
    api_refusals: dict[str, int] = Field(description="`/api` requests refused, by reason.")
    outbox_backlog: int | None = Field(
        description="Stored events not yet confirmed by the broker, at the minute's last sample."
    )
    outbox_backlog_peak: int | None = Field(description="The largest outbox backlog sampled in it.")
    oldest_unpublished_age_seconds: float | None
    fold_backlog: int | None = Field(
        description="Acknowledged callbacks not yet folded into events (history's lag)."
    )
    fold_backlog_peak: int | None = Field(description="The largest fold backlog sampled in it.")
    oldest_unfolded_age_seconds: float | None
    broker_connected: bool | None = Field(
        description="Whether the outbox relay held a broker connection; null without a sample."
    )


class PipelineSeries(Resource):
    generated_at: datetime
    counting_since: datetime = Field(
        description="When this process started counting: the series holds nothing before it "
        "(the counters live in memory; Prometheus keeps the long-term record)."
    )
    sample_seconds: float = Field(description="How often the counters are sampled.")
    minutes: list[PipelineMinute] = Field(description="Oldest first; the last one is running.")


class PipelineQuery(Params):
    minutes: Annotated[int, Field(ge=1, le=HOUR_MINUTES, description="How many minutes.")] = (
        HOUR_MINUTES
    )


@dataclass(slots=True)
class _MinuteRecord:
    """What one minute's samples left: the last of them, and each gauge's largest value."""

    last: Sample
    peaks: dict[str, float]

    def add(self, sample: Sample) -> None:
        self.last = sample
        for name, value in sample.gauges.items():
            if not math.isnan(value):
                self.peaks[name] = max(self.peaks.get(name, value), value)


def _record(sample: Sample) -> _MinuteRecord:
    return _MinuteRecord(sample, {k: v for k, v in sample.gauges.items() if not math.isnan(v)})


def _minute_of(moment: float) -> float:
    return math.floor(moment / MINUTE) * MINUTE


class PipelineRecorder:
    """The last hour, one record per minute, and the per-minute series computed from them.

    Memory is bounded by the hour, not by how often samples are taken or the route is asked:
    a minute keeps only its last sample and its gauges' peaks.
    """

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float], every: float):
        self._registry = registry
        self._clock = clock
        self.every = every
        self.started = clock()
        self._minutes: dict[float, _MinuteRecord] = {}  # by minute start, oldest first
        self.sample()

    def sample(self) -> None:
        taken = read_sample(self._registry, self._clock())
        minute = _minute_of(taken.at)
        record = self._minutes.get(minute)
        if record is None:
            self._minutes[minute] = _record(taken)
        else:
            record.add(taken)
        # Keep the hour, and one minute before it: the base its first minute is counted from.
        window = minute - HOUR_MINUTES * MINUTE
        starts = list(self._minutes)
        while len(starts) > 1 and starts[1] < window:
            del self._minutes[starts.pop(0)]

    def series(self, minutes: int = HOUR_MINUTES) -> PipelineSeries:
        """The last `minutes` minutes (those since `started`), the running one last.

        A sample taken now completes the running minute; it is not kept (a page polling
        every second would otherwise decide how much is remembered)."""
        now = read_sample(self._registry, self._clock())
        records = dict(self._minutes)
        current = _minute_of(now.at)
        running = records.get(current)
        if running is None:
            records[current] = _record(now)
        else:
            records[current] = _MinuteRecord(running.last, dict(running.peaks))
            records[current].add(now)
        first = max(current - (minutes - 1) * MINUTE, _minute_of(self.started))
        rows = []
        start = first
        while start <= current:
            rows.append(self._minute(records, start, partial=start == current))
            start += MINUTE
        return PipelineSeries(
            generated_at=_utc(now.at),
            counting_since=_utc(self.started),
            sample_seconds=self.every,
            minutes=rows,
        )

    def _minute(
        self, records: dict[float, _MinuteRecord], start: float, *, partial: bool
    ) -> PipelineMinute:
        before = _latest(records, lambda minute: minute < start)
        after = _latest(records, lambda minute: minute <= start)
        inside = records.get(start)
        partial = partial or start < self.started
        if after is None:  # nothing sampled by then: the minute is before counting began
            delta: dict[CounterKey, float] = {}
        else:
            base = before.last.counters if before is not None else {}
            delta = {k: v - base.get(k, 0.0) for k, v in after.last.counters.items()}
        callbacks: dict[str, dict[str, int]] = {}
        by_reason: dict[str, dict[str, int]] = {name: {} for name in _COUNTERS}
        published = 0
        for (name, first_label, second_label), value in sorted(delta.items()):
            count = round(value)
            if count <= 0:
                continue
            if name == _CALLBACKS:
                callbacks.setdefault(first_label, {})[second_label] = count
            elif name == "receiver_published_total":
                published = count
            else:
                by_reason[name][first_label] = count
        gauges = inside.last.gauges if inside is not None else {}
        peaks = inside.peaks if inside is not None else {}
        connected = gauges.get("receiver_broker_connected")
        return PipelineMinute(
            start=_utc(start),
            partial=partial,
            callbacks=callbacks,
            refusals=by_reason["receiver_refusals_total"],
            published=published,
            publish_failures=by_reason["receiver_publish_failures_total"],
            api_refusals=by_reason["receiver_api_refusals_total"],
            outbox_backlog=_whole(gauges.get("receiver_outbox_backlog")),
            outbox_backlog_peak=_whole(peaks.get("receiver_outbox_backlog")),
            oldest_unpublished_age_seconds=_rounded(
                gauges.get("receiver_outbox_oldest_unpublished_age_seconds")
            ),
            fold_backlog=_whole(gauges.get("receiver_fold_backlog")),
            fold_backlog_peak=_whole(peaks.get("receiver_fold_backlog")),
            oldest_unfolded_age_seconds=_rounded(
                gauges.get("receiver_fold_oldest_unfolded_age_seconds")
            ),
            broker_connected=None if connected is None else connected >= 1,
        )


def _latest(
    records: dict[float, _MinuteRecord], where: Callable[[float], bool]
) -> _MinuteRecord | None:
    found = None
    for minute, record in records.items():  # oldest first
        if not where(minute):
            break
        found = record
    return found


def _utc(seconds: float) -> datetime:
    moment = utc(seconds)
    assert moment is not None
    return moment


def _whole(value: float | None) -> int | None:
    return None if value is None or math.isnan(value) else round(value)


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


PIPELINE = web.AppKey("pipeline_recorder", PipelineRecorder)


async def pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sample on the backlog monitors' interval while the app runs."""
    recorder = PipelineRecorder(
        app[METRICS].registry, app[CLOCK], app[SETTINGS].outbox_stats_interval_seconds
    )
    app[PIPELINE] = recorder
    task = asyncio.create_task(_sampling(recorder), name="pipeline-sampler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sampling(recorder: PipelineRecorder) -> None:
    while True:
        await asyncio.sleep(recorder.every)
        recorder.sample()


async def pipeline(request: web.Request) -> web.Response:
    query = parse_query(PipelineQuery, request.query)
    series = request.app[PIPELINE].series(query.minutes)
    return web.Response(text=series.model_dump_json(), content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(pipeline_ctx)
    app.router.add_get("/api/pipeline", pipeline, name="api_pipeline")
    document(
        app,
        "GET",
        "/api/pipeline",
        Operation(
            summary="The pipeline's own counters, minute by minute",
            description="Callbacks by kind and result, refusals by reason, publishing, and the "
            "outbox and fold backlogs, for each minute of the last hour since this process "
            "started (kept in memory; `/metrics` is the long-term record). The dashboard's "
            "pipeline chart reads it.",
            tag="operations",
            query=PipelineQuery,
            secured=True,
            responses={
                200: Response("Oldest minute first.", PipelineSeries),
                400: Response("A parameter is not acceptable.", ApiErrorBody),
                401: Response(
                    "No `Authorization: Bearer <API token>`, or the wrong token.", ApiErrorBody
                ),
            },
        ),
    )
