"""Scenario 6, the parser: property-based runs over the payload pipeline (and atheris).

`ParserTarget` runs a body through everything a callback goes through, down to the insert into
the real schema, and fails on any exception that is not a 400/401 refusal, on any forged or
stale signature accepted, and on any accepted body the writer would refuse (a 503 forever).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed import PAYLOADS
from tests.reliability.scenarios.parser_target import GRACE, KEY, NOW, ParserTarget
from tests.reliability.scenarios.strategies import (
    TEMPLATES,
    encode,
    json_values,
    mutated_bodies,
    sign,
    templates,
    texts,
)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def target() -> ParserTarget:
    return ParserTarget()


@SETTINGS
@given(raw=st.binary(max_size=512))
def test_random_bytes_are_refused_cleanly(target: ParserTarget, raw: bytes) -> None:
    assert target.feed(raw) in (400, 401)


@SETTINGS
@given(value=json_values)
def test_random_json_is_refused_cleanly(target: ParserTarget, value: Any) -> None:
    assert target.feed(encode(value)) in (400, 401)


@SETTINGS
@given(body=mutated_bodies())
def test_mutated_real_bodies_with_a_valid_signature_are_stored(
    target: ParserTarget, body: dict[str, Any]
) -> None:
    # CSS signs only t: whatever else a signed body holds, it is stored verbatim, never lost.
    status = target.feed(encode(sign(body, KEY, NOW + 600)))
    unsigned = int(body["event_type"]) in (314, 328)
    assert status == (401 if unsigned else 200)


@SETTINGS
@given(
    body=mutated_bodies(),
    key=texts.filter(lambda k: k != KEY),
    t=st.integers(min_value=0, max_value=2**40),
    sign_text=st.one_of(st.none(), texts, st.integers(), json_values),
)
def test_forged_signatures_are_never_accepted(
    target: ParserTarget, body: dict[str, Any], key: str, t: int, sign_text: Any
) -> None:
    assert target.feed(encode(sign(body, key, t))) == 401
    assert target.feed(encode({**body, "t": t, "sign": sign_text})) == 401


@SETTINGS
@given(
    captured=templates,
    other=mutated_bodies(),
    age=st.integers(min_value=GRACE + 1, max_value=10**6),
)
def test_replayed_signatures_with_other_bodies_are_refused_after_expiry(
    target: ParserTarget, captured: dict[str, Any], other: dict[str, Any], age: int
) -> None:
    stolen = sign(captured, KEY, NOW - age)
    replay = {**other, "t": stolen["t"], "sign": stolen["sign"]}
    assert target.feed(encode(replay)) == 401


def test_deep_nesting_and_huge_documents_are_refused_or_stored(target: ParserTarget) -> None:
    begin = next(t for t in TEMPLATES if t["event_type"] == 1)
    body = sign(begin, KEY, NOW + 600)
    deep = encode(body)[:-1] + b', "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert target.feed(deep) == 400
    wide = {**body, **{f"extra_{i}": {"n": [i] * 3} for i in range(20_000)}}
    assert target.feed(encode(wide)) == 200


@pytest.mark.timeout(120)
def test_atheris_finds_no_crash_in_the_pipeline(tmp_path: Path) -> None:
    """Coverage-guided fuzzing (libFuzzer via atheris) from the real bodies as seed corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in PAYLOADS.glob("*.json"):
        (corpus / path.name).write_bytes(path.read_bytes())
    run = subprocess.run(
        [sys.executable, "-m", "tests.reliability.scenarios.fuzz", str(corpus),
         "-runs=100000", "-max_len=4096", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 100000 runs" in run.stderr
    assert not list(tmp_path.glob("crash-*"))
