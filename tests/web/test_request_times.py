"""`receiver_request_seconds` reads exactly as a prometheus_client `Histogram` would."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from receiver.metrics import _LATENCY_BUCKETS, RequestTimes

_CREATED = re.compile(r"^(receiver_request_seconds_created\S*) \S+$", re.MULTILINE)


def _without_creation_times(exposition: bytes) -> str:
    return _CREATED.sub(r"\1 T", exposition.decode())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["/callbacks", "/callbacks/{kind}", "/api/events"]),
            st.sampled_from(_LATENCY_BUCKETS) | st.floats(min_value=0, max_value=30),
        ),
        max_size=50,
    )
)
def test_the_same_exposition_as_a_histogram(observations: list[tuple[str, float]]) -> None:
    expected_registry = CollectorRegistry(auto_describe=True)
    ours_registry = CollectorRegistry(auto_describe=True)
    name, documentation = "receiver_request_seconds", "HTTP request handling time, by route."
    histogram = Histogram(
        name, documentation, ["route"], buckets=_LATENCY_BUCKETS, registry=expected_registry
    )
    ours = RequestTimes(name, documentation, _LATENCY_BUCKETS, ours_registry)
    for route, seconds in observations:
        histogram.labels(route).observe(seconds)
        ours.labels(route).observe(seconds)
    for generate in (generate_latest, generate_openmetrics):
        assert _without_creation_times(generate(ours_registry)) == _without_creation_times(
            generate(expected_registry)
        )
