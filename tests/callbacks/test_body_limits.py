"""What the intake refuses before anything reads a body: nesting beyond one limit and keys written
twice. Both are 400 with a specific error, counted, and nothing is stored."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.callbacks.body import MAX_DEPTH, parse_body
from receiver.errors import PayloadInvalid
from tests.support.helpers import KEY, count, get, md5_sign, payload, rows, signed


def _nested(name: str, depth: int) -> bytes:
    """The signed example `name` with a member that makes the body `depth` levels deep."""
    body = json.dumps(signed(payload(name)))
    inner = depth - 1  # the body itself is level 1
    return f'{body[:-1]}, "deep": {"[" * inner}{"]" * inner}}}'.encode()


async def _refused(client: Any, data: bytes, error: str) -> dict[str, Any]:
    response = await client.post("/callbacks", data=data)
    answer: dict[str, Any] = await response.json()
    assert response.status == 400, answer
    assert answer["error"] == error
    return answer


# One kind keyed by its fields, one keyed by its whole body (which is hashed as written).
@pytest.mark.parametrize("name", ["push_begin_1.json", "quality_control_343.json"])
async def test_a_body_at_the_depth_limit_is_stored_and_readable(
    client: Any, database: Path, name: str
) -> None:
    response = await client.post("/callbacks", data=_nested(name, MAX_DEPTH))
    assert response.status == 200, await response.text()
    (row,) = rows(database)
    event = await get(client, f"/api/events/{row['id']}")
    deep = event["payload"]["deep"]
    for _ in range(MAX_DEPTH - 2):
        (deep,) = deep
    assert deep == []
    listing = await get(client, "/api/events")
    assert [item["id"] for item in listing["events"]] == [row["id"]]


@pytest.mark.parametrize("name", ["push_begin_1.json", "quality_control_343.json"])
async def test_one_level_deeper_is_400_body_too_deep(
    client: Any, database: Path, name: str
) -> None:
    answer = await _refused(client, _nested(name, MAX_DEPTH + 1), "body_too_deep")
    assert str(MAX_DEPTH) in answer["message"]
    assert count(database) == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_refusals_total{reason="body"} 1.0' in metrics


def _with_pair(body: dict[str, Any], first: tuple[int, str], last: tuple[int, str]) -> bytes:
    """`body` written with `t`/`sign` twice: `first`, then `last` (JSON allows writing it)."""
    members = json.dumps({k: v for k, v in body.items() if k not in ("t", "sign")})[1:-1]
    (t1, sign1), (t2, sign2) = first, last
    return f'{{"t": {t1}, "sign": "{sign1}", {members}, "t": {t2}, "sign": "{sign2}"}}'.encode()


async def test_a_second_t_and_sign_pair_is_400_and_not_stored(client: Any, database: Path) -> None:
    # The last pair is valid: a last-wins reader accepted it, a first-wins one sees the forged.
    t = int(time.time()) + 600
    raw = _with_pair(payload("push_begin_1.json"), (t + 1, "0" * 32), (t, md5_sign(KEY, t)))
    answer = await _refused(client, raw, "body_duplicate_keys")
    assert '"t"' in answer["message"]
    assert count(database) == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_refusals_total{reason="body"} 1.0' in metrics


async def test_a_key_repeated_in_a_nested_object_is_400(client: Any, database: Path) -> None:
    body = json.dumps(signed(payload("record_exception_341.json")))
    raw = body.replace('"type": -201', '"type": -201, "type": -8').encode()
    assert raw != body.encode()
    answer = await _refused(client, raw, "body_duplicate_keys")
    assert '"type"' in answer["message"]
    assert count(database) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_type": 1, "a": 1, "a": 2}',
        b'{"event_type": 1, "a": {"b": [{"c": 1, "c": 1}]}}',
        # A colon in a string must not hide a repeated key from the cheap count...
        b'{"event_type": 1, "u": "http://x", "a": 1, "a": 2}',
        # ...nor a colon written as an escape, which the raw bytes do not show.
        b'{"event_type": 1, "u": "\\u003a\\u003a", "a": 1, "a": 2}',
        b'{"event_type": 1, "k:1": 1, "k:1": 2}',
        b'{"event_type": 1, "a" : 1, "a"\n:\t2}',
        b'{"event_type": 1, "\\u0061": 1, "a": 2}',  # one key, spelled two ways
    ],
)
def test_every_repeated_key_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        parse_body(raw)
    assert refused.value.error == "body_duplicate_keys"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_type": 1, "u": "http://x:80/a", "msg": "{\\"a\\":1}"}',
        b'{"event_type": 1, "k:1": 1, "k:2": "::"}',
        b'{"event_type": 1, "u": "\\u003a", "a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}',
        b'{"event_type" : 1 , "a" :\n"b"}',
    ],
)
def test_colons_and_equal_keys_in_different_objects_are_fine(raw: bytes) -> None:
    assert parse_body(raw) == json.loads(raw)


def test_integers_beyond_64_bits_are_exact() -> None:
    body = parse_body(b'{"event_type": 1, "s": 18446744073709551617, "n": -9223372036854775809}')
    assert body == {"event_type": 1, "s": 2**64 + 1, "n": -(2**63) - 1}
    assert parse_body(b'{"event_type": 1, "f": 1e19}') == {"event_type": 1, "f": 1e19}


def _exact_equal(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down (1e19 == 10**19 would hide a lost digit)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_exact_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(map(_exact_equal, a, b))
    return a == b


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    # brackets, colons and exponent-like text inside strings must not fool the byte tests
    | st.text(alphabet='{[]}:e+E1\\u003a"', max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


def _wrapped(value: object, levels: int) -> dict[str, object]:
    for _ in range(levels):
        value = [value]
    return {"event_type": 1, "v": value}


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, levels=st.integers(min_value=0, max_value=40))
def test_depth_and_exactness_as_a_full_walk_decides(value: object, levels: int) -> None:
    """The byte tests that spare most bodies the walk never change a verdict or a value."""
    raw = json.dumps(_wrapped(value, levels)).encode()
    reference = json.loads(raw)  # every integer exact
    if _depth(reference) > MAX_DEPTH:
        with pytest.raises(PayloadInvalid) as refused:
            parse_body(raw)
        assert refused.value.error == "body_too_deep"
    else:
        assert _exact_equal(parse_body(raw), reference)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=2.0**63, allow_infinity=False)
    | st.floats(max_value=-(2.0**63), allow_infinity=False)
)
def test_orjson_writes_every_float_beyond_64_bit_integers_with_an_exponent(value: float) -> None:
    """What `parse_body` relies on to skip the walk for approximated integers."""
    assert b"e+" in orjson.dumps({"v": value})
