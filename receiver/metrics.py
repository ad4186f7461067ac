"""Prometheus metrics, one registry per app (no module-level state, so tests never share counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
    request_seconds: Histogram
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
            request_seconds=Histogram(
                "receiver_request_seconds",
                "HTTP request handling time, by route.",
                ["route"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
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
