"""Hypothesis strategies for hostile callback bodies: random, mutated real, forged, replayed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import strategies as st

from tests.reliability.scenarios.cssload import load_templates

TEMPLATES = load_templates()

# Text that JSON can carry as UTF-8 (lone surrogates cannot be encoded: that case is the raw
# bytes strategies' job).
_encodable = st.characters(exclude_categories=["Cs"])
texts = st.text(_encodable, max_size=40)
keys = st.text(_encodable, max_size=12)

# JSON scalars as CSS never sends them: huge and negative numbers, odd unicode, empty strings.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(["", "0", "-1", "1e309", "١٢٣", "9" * 30, "\u0000", "null", "[]"])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
templates = st.sampled_from(TEMPLATES)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A real body of any kind with some fields replaced, removed or added (not `event_type`)."""
    body = dict(draw(templates))
    event_type = body["event_type"]
    fields = sorted(k for k in body if k != "event_type")
    for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(json_values)
        else:
            del body[name]
    body.update(draw(st.dictionaries(keys, json_values, max_size=3)))
    body["event_type"] = draw(st.sampled_from([event_type, str(event_type)]))
    return body


def sign(body: dict[str, Any], key: str, t: int) -> dict[str, Any]:
    return {**body, "t": t, "sign": hashlib.md5(f"{key}{t}".encode()).hexdigest()}


def encode(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()
