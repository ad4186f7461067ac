"""Prometheus metrics, one registry per app (no module-level state, so tests never share counts)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RouteTimer:
    """One route's request durations: a count per bucket (the last one: beyond them) and a sum."""

    __slots__ = ("_bounds", "counts", "created", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bisect_left: a duration equal to a bound belongs to that bound's bucket (`le`)
        self.counts[bisect_left(self._bounds, seconds)] += 1
        self.total += seconds


class RequestTimes:
    """`receiver_request_seconds{route}`: a histogram kept by plain counters, without locks.

    Every request is timed, each callback included, and prometheus_client's `Histogram` takes two
    locks and scans its buckets on every observation: a visible share of a callback's cost. The
    requests are timed on the event loop's thread, and read there (`/metrics`), so plain counters
    do. The exposition is the `Histogram`'s, sample for sample.
    """

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = buckets
        self._les = [*map(floatToGoString, buckets), "+Inf"]
        self._routes: dict[str, RouteTimer] = {}
        registry.register(self)

    def labels(self, route: str) -> RouteTimer:
        """The timer of `route` (a route template, never a raw path: labels must stay few)."""
        timer = self._routes.get(route)
        if timer is None:
            timer = self._routes[route] = RouteTimer(self._bounds)
        return timer

    def describe(self) -> list[Metric]:
        return [Metric(self._name, self._documentation, "histogram")]

    def collect(self) -> Iterator[Metric]:
        family = Metric(self._name, self._documentation, "histogram")
        for route, timer in list(self._routes.items()):
            cumulative = list(accumulate(timer.counts))
            for le, count in zip(self._les, cumulative, strict=True):
                family.add_sample(f"{self._name}_bucket", {"le": le, "route": route}, float(count))
            family.add_sample(f"{self._name}_count", {"route": route}, float(cumulative[-1]))
            family.add_sample(f"{self._name}_sum", {"route": route}, timer.total)
            family.add_sample(f"{self._name}_created", {"route": route}, timer.created)
        yield family


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric the service exports; other components register theirs on `registry`."""

    registry: CollectorRegistry
    callbacks: Counter
    refusals: Counter
    duplicates: Counter
    schema_mismatches: Counter
    commit_seconds: Histogram
    commit_batch_size: Histogram
    fold_seconds: Histogram
    fold_backlog: Gauge
    fold_oldest_age: Gauge
    request_seconds: RequestTimes
    api_refusals: Counter
    malformed_requests: Counter
    clock_suspect: Gauge
    clock_offset: Gauge
    # Label children cached by key: `labels()` takes a lock and builds a tuple on every call.
    _children: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            callbacks=Counter(
                "receiver_callbacks",
                "Callbacks by kind and result: refused, unavailable and overloaded when answered; "
                "stored, duplicate and rejected (kept in fold_rejects) when folded into events, "
                "a moment after their 200.",
                ["kind", "result"],
                registry=registry,
            ),
            refusals=Counter(
                "receiver_refusals",
                "Callbacks refused, by reason.",
                ["reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "receiver_duplicates",
                "Callbacks that repeated an already stored event (answered 200, stored once).",
                ["kind"],
                registry=registry,
            ),
            schema_mismatches=Counter(
                "receiver_schema_mismatches",
                "Stored callbacks whose body did not fit the model of their kind.",
                ["kind"],
                registry=registry,
            ),
            commit_seconds=Histogram(
                "receiver_commit_seconds",
                "Time to commit one group of events durably (fsync included).",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            commit_batch_size=Histogram(
                "receiver_commit_batch_size",
                "Events and probes carried by one commit.",
                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                registry=registry,
            ),
            fold_seconds=Histogram(
                "receiver_fold_seconds",
                "Time of one fold transaction (inbox rows into events, history included).",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            fold_backlog=Gauge(
                "receiver_fold_backlog",
                "Acknowledged callbacks in the inbox not yet folded into events (history lags "
                "by these).",
                registry=registry,
            ),
            fold_oldest_age=Gauge(
                "receiver_fold_oldest_unfolded_age_seconds",
                "Age of the oldest acknowledged callback not yet folded (0 when none).",
                registry=registry,
            ),
            request_seconds=RequestTimes(
                "receiver_request_seconds",
                "HTTP request handling time, by route.",
                _LATENCY_BUCKETS,
                registry,
            ),
            api_refusals=Counter(
                "receiver_api_refusals",
                "/api requests refused, by reason (authorization_missing, token_mismatch, ...).",
                ["reason"],
                registry=registry,
            ),
            malformed_requests=Counter(
                "receiver_malformed_http_requests",
                "Requests the HTTP parser refused (400) before any handler ran: broken clients, "
                "scanners.",
                registry=registry,
            ),
            clock_suspect=Gauge(
                "receiver_clock_suspect",
                "1 while a large share of the recent signed callbacks is refused as expired or "
                "too far in the future: this server's clock is likely wrong (check NTP).",
                registry=registry,
            ),
            clock_offset=Gauge(
                "receiver_clock_offset_estimate_seconds",
                "How far this server's clock seems ahead of CSS's (negative: behind), from the "
                "`t` of recent signed callbacks; NaN before the first.",
                registry=registry,
            ),
        )

    def callback(self, kind: str, result: str) -> None:
        """Count one answered callback."""
        key = ("callbacks", kind, result)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.callbacks.labels(kind, result)
        child.inc()

    def observe_request(self, resource: object, seconds: float) -> None:
        """Time one request under its route template (never the raw path: unbounded labels)."""
        child = self._children.get(resource)
        if child is None:
            route = getattr(resource, "canonical", None) or "unmatched"
            child = self._children[resource] = self.request_seconds.labels(route)
        child.observe(seconds)

    def folded(
        self, kind: str, stored: int, duplicates: int, schema_errors: int, rejected: int
    ) -> None:
        """Count what one fold made of one kind's callbacks."""
        if rejected:
            self.callbacks.labels(kind, "rejected").inc(rejected)
        if stored:
            self.callbacks.labels(kind, "stored").inc(stored)
        if duplicates:
            self.callbacks.labels(kind, "duplicate").inc(duplicates)
            self.duplicates.labels(kind).inc(duplicates)
        if schema_errors:
            self.schema_mismatches.labels(kind).inc(schema_errors)

    def observe_commit(self, seconds: float, batch_size: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch_size.observe(batch_size)
