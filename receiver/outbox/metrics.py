"""Prometheus metrics of publishing: the outbox, confirms, failures, unroutable and replays.

Registered on the app's own registry (`Metrics.registry`), like every other metric, so tests
never share counts. The backlog gauges are refreshed by the outbox monitor and by `/readyz`;
the oldest-unpublished age is computed at scrape time from the last known oldest event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_CONFIRM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


@dataclass(slots=True)
class _Oldest:
    """The receive time of the oldest unpublished event, as last measured."""

    received_at: float | None = None


@dataclass(frozen=True, slots=True)
class PublishMetrics:
    outbox_backlog: Gauge
    outbox_oldest_age: Gauge
    broker_connected: Gauge
    published: Counter
    confirm_seconds: Histogram
    failures: Counter
    unroutable: Counter
    replayed: Counter
    _oldest: _Oldest = field(default_factory=_Oldest)

    @classmethod
    def create(
        cls, registry: CollectorRegistry, clock: Callable[[], float] = time.time
    ) -> PublishMetrics:
        oldest = _Oldest()
        age = Gauge(
            "receiver_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest stored event not yet confirmed by the broker (0 when none).",
            registry=registry,
        )
        age.set_function(
            lambda: 0.0 if oldest.received_at is None else clock() - oldest.received_at
        )
        return cls(
            outbox_backlog=Gauge(
                "receiver_outbox_backlog",
                "Stored events not yet confirmed by the broker.",
                registry=registry,
            ),
            outbox_oldest_age=age,
            broker_connected=Gauge(
                "receiver_broker_connected",
                "1 while the outbox relay holds a broker connection, else 0.",
                registry=registry,
            ),
            published=Counter(
                "receiver_published",
                "Events published by the outbox relay and confirmed by the broker.",
                registry=registry,
            ),
            confirm_seconds=Histogram(
                "receiver_publish_confirm_seconds",
                "Time from sending a message to the broker's confirm.",
                buckets=_CONFIRM_BUCKETS,
                registry=registry,
            ),
            failures=Counter(
                "receiver_publish_failures",
                "Publishes not confirmed (retried later), by reason.",
                ["reason"],
                registry=registry,
            ),
            unroutable=Counter(
                "receiver_unroutable",
                "Messages returned by the broker because no queue was bound, by routing key.",
                ["routing_key"],
                registry=registry,
            ),
            replayed=Counter(
                "receiver_replayed",
                "Events re-published by a replay (x-replay: true) and confirmed.",
                registry=registry,
            ),
            _oldest=oldest,
        )

    def observe_backlog(self, count: int, oldest_received_at: float | None) -> None:
        self.outbox_backlog.set(count)
        self._oldest.received_at = oldest_received_at
