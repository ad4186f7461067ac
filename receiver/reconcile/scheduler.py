"""Background reconciliation in `receiver serve` (`RECEIVER_TENCENT_RECONCILE_INTERVAL`).

Off by default: it spends the account's API budget and needs credentials. When on, each round
sweeps the recent window of push records (`RECEIVER_TENCENT_RECONCILE_WINDOW_SECONDS`, an hour by
default: CSS retries for about 12 minutes, so a lost callback is older than that when it is
looked for) and stores what is missing, then takes one look at the online list
(`live.py`); rounds are `interval` seconds apart (60 is sensible: Tencent asks for the online
list at most once a minute), the first one an interval after the start. Stored events go
through the app's intake like callbacks. On PostgreSQL, one replica runs each round and the
others skip it (`rounds.py`).

`/readyz` shows the last round under `reconcile` (when, what it found and stored, its error),
and the rounds skipped because another replica ran them; a failed round is `degraded`, never
`fail`: callbacks are still taken. Metrics:
`receiver_reconcile_rounds_total{result}`, `receiver_reconcile_found_total{finding}`,
`receiver_reconcile_stored_total`, `receiver_reconcile_last_round_timestamp_seconds`.
`run_round()` is one round, callable on its own (tests drive it without waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from receiver.health import ComponentCheck
from receiver.keys import HEALTH_CHECKS, METRICS, SETTINGS
from receiver.reconcile.live import LiveCorrector, LiveLook
from receiver.reconcile.rounds import (
    InProcessMemory,
    MissingMemory,
    RoundGate,
    SharedMemory,
    SharedRounds,
    SoloRounds,
)
from receiver.reconcile.run import Report, reconcile
from receiver.reconcile.stored import History
from receiver.reconcile.submit import IntakeSubmitter, Submitter
from receiver.storage.context import READER
from receiver.storage.intake import INTAKE
from receiver.storage.postgres.context import POSTGRES
from receiver.tencent.client import TencentClient
from receiver.tencent.errors import TencentError
from receiver.tencent.streams import LiveStreamApi
from receiver.tencent.wiring import CLIENT_SESSION, TENCENT, TENCENT_LIMITS
from receiver.times import iso_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileMetrics:
    rounds: Counter
    found: Counter
    stored: Counter
    last_round: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ReconcileMetrics:
        return cls(
            rounds=Counter(
                "receiver_reconcile_rounds",
                "Background reconciliation rounds, by result (ok, error; skipped: another "
                "replica on the same PostgreSQL database ran it).",
                ["result"],
                registry=registry,
            ),
            found=Counter(
                "receiver_reconcile_found",
                "What reconciliation found: missing (both callbacks), missing_end, "
                "missing_begin, unknown_to_tencent, not_live (ended from the online list), "
                "live_unseen (begun from the online list).",
                ["finding"],
                registry=registry,
            ),
            stored=Counter(
                "receiver_reconcile_stored",
                "Reconciled push begins and ends handed to storage.",
                registry=registry,
            ),
            last_round=Gauge(
                "receiver_reconcile_last_round_timestamp_seconds",
                "When the last background reconciliation round finished (0: none yet).",
                registry=registry,
            ),
        )


class Reconciler:
    """Runs rounds; `check()` is its readiness report."""

    def __init__(
        self,
        api: LiveStreamApi,
        reader: History,
        submitter: Submitter,
        metrics: ReconcileMetrics,
        *,
        window_seconds: float,
        domains: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        gate: RoundGate | None = None,
        memory: MissingMemory | None = None,
    ) -> None:
        self._api = api
        self._reader = reader
        self._submitter = submitter
        self._metrics = metrics
        self._window = window_seconds
        self._domains = domains
        self._clock = clock
        self._gate: RoundGate = gate or SoloRounds()
        self.live = LiveCorrector(api, submitter, domains, clock, memory or InProcessMemory())
        self.rounds = 0
        self.last: dict[str, Any] | None = None
        self.error: str | None = None
        self.skipped = 0
        self.last_skip: dict[str, Any] | None = None

    async def run_round(self, spacing: float = 0.0) -> tuple[Report | None, LiveLook | None]:
        """One round, unless another replica runs one now or began one less than `spacing`
        seconds ago (`rounds.py`): then (None, None)."""
        try:
            async with self._gate.hold(spacing) as skip:
                if skip is None:
                    return await self._round()
        except Exception as exc:  # the database could not say whose round it is: the next try
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("reconciliation round not started: %s", self.error)
            self._metrics.rounds.labels("error").inc()
            return None, None
        self.skipped += 1
        self.last_skip = {"at": iso_utc(self._clock()), "reason": skip}
        self._metrics.rounds.labels("skipped").inc()
        log.info("reconciliation round skipped: %s", skip)
        return None, None

    async def _round(self) -> tuple[Report | None, LiveLook | None]:
        started = self._clock()
        report: Report | None = None
        look: LiveLook | None = None
        try:
            report = await reconcile(
                self._api,
                self._reader,
                since=started - self._window,
                until=started,
                domains=self._domains,
                submitter=self._submitter,
                now=started,
            )
            look = await self.live.look(self._reader)
        except Exception as exc:  # a round that fails is reported; the next one tries again
            self.error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TencentError):
                log.warning("reconciliation round failed: %s", self.error)
            else:
                log.exception("reconciliation round failed")
            self._metrics.rounds.labels("error").inc()
        else:
            self.error = None
            self._metrics.rounds.labels("ok").inc()
        self.rounds += 1
        self._record(started, report, look)
        return report, look

    def _record(self, started: float, report: Report | None, look: LiveLook | None) -> None:
        finished = self._clock()
        self._metrics.last_round.set(finished)
        found: dict[str, int] = {}
        stored = 0
        if report is not None:
            f = report.findings
            found.update(
                missing=len(f.missing),
                missing_end=len(f.missing_end),
                missing_begin=len(f.missing_begin),
                unknown_to_tencent=len(f.unknown),
            )
            stored += len(report.stored)
        if look is not None:
            found.update(not_live=len(look.ended), live_unseen=len(look.begun))
        for finding, n in found.items():
            if n:
                self._metrics.found.labels(finding).inc(n)
        if look is not None:
            stored += look.stored
        self._metrics.stored.inc(stored)
        self.last = {
            "at": iso_utc(finished),
            "seconds": round(finished - started, 3),
            "records": report.records if report is not None else None,
            "found": found,
            "stored": stored,
            "streams_ended": len(look.ended) if look is not None else 0,
            "streams_begun": len(look.begun) if look is not None else 0,
            "error": self.error,
        }

    async def check(self) -> ComponentCheck:
        details: dict[str, Any] = {
            "rounds": self.rounds,
            "last": self.last,
            "skipped": self.skipped,
            "last_skip": self.last_skip,
        }
        if self.error is not None:
            details["error"] = self.error
            return ComponentCheck("degraded", details)
        return ComponentCheck("ok", details)

    async def run_forever(self, interval: float) -> None:
        """A round every `interval` seconds, the first one interval after the start (a service
        restarted after an outage has its callbacks retried by CSS first)."""
        while True:
            await asyncio.sleep(interval)
            await self.run_round(spacing=interval)


RECONCILER = web.AppKey("reconciler", Reconciler)


async def reconcile_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the rounds once storage is up; stop them before storage closes."""
    settings = app[SETTINGS]
    interval = settings.tencent_reconcile_interval
    assert interval is not None, "reconcile_ctx is only added with an interval"
    client = TencentClient(
        app[CLIENT_SESSION],
        app[TENCENT].credentials,
        endpoint=settings.tencent_endpoint,
        timeout_seconds=settings.tencent_timeout_seconds,
        retry=app[TENCENT].client_retry,
        limits=app[TENCENT_LIMITS],
    )
    postgres = app.get(POSTGRES)
    gate: RoundGate | None = None
    memory: MissingMemory | None = None
    if postgres is not None:  # several replicas: one of them per round (`rounds.py`)
        gate, memory = SharedRounds(postgres.pool), SharedMemory(postgres.pool)
    reconciler = Reconciler(
        LiveStreamApi(client),
        postgres.pool if postgres is not None else app[READER],
        IntakeSubmitter(app[INTAKE]),
        ReconcileMetrics.create(app[METRICS].registry),
        window_seconds=settings.tencent_reconcile_window_seconds,
        domains=tuple(settings.tencent_domains),
        gate=gate,
        memory=memory,
    )
    app[RECONCILER] = reconciler
    app[HEALTH_CHECKS]["reconcile"] = reconciler.check
    task = asyncio.create_task(reconciler.run_forever(interval), name="tencent-reconcile")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
