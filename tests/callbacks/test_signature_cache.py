"""`SignatureVerifier` (the request path's cached check) agrees with `verify_signature`."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.callbacks.signature import SignatureVerifier, verify_signature
from receiver.errors import AuthenticationFailed
from tests.support.helpers import KEY, OLD_KEY, md5_sign

NOW = 1_700_000_000.0


def _verdict(check: Any) -> str:
    try:
        check()
    except AuthenticationFailed as exc:
        return exc.error
    return "ok"


@pytest.mark.parametrize(
    "body",
    [
        {"t": int(NOW) + 600, "sign": md5_sign(KEY, int(NOW) + 600)},
        {"t": str(int(NOW) + 600), "sign": md5_sign(OLD_KEY, int(NOW) + 600).upper()},
        {"t": int(NOW) + 600, "sign": md5_sign("someone else", int(NOW) + 600)},
        {"t": int(NOW) - 301, "sign": md5_sign(KEY, int(NOW) - 301)},
        {"t": int(NOW) + 661, "sign": md5_sign(KEY, int(NOW) + 661)},
        {"t": True, "sign": "x"},
        {"t": int(NOW), "sign": 12},
        {"sign": "x"},
    ],
)
def test_same_verdict_as_the_uncached_check(body: dict[str, Any]) -> None:
    verifier = SignatureVerifier((KEY, OLD_KEY), grace_seconds=300)
    for _ in range(2):  # computed, then cached
        assert _verdict(lambda: verifier.verify(body, now=NOW)) == _verdict(
            lambda: verify_signature(body, (KEY, OLD_KEY), now=NOW, grace_seconds=300)
        )


def test_a_flood_of_distinct_t_values_never_grows_the_cache_past_its_size() -> None:
    verifier = SignatureVerifier((KEY,), grace_seconds=300, cache_size=8)
    for t in range(int(NOW), int(NOW) + 100):
        verifier.verify({"t": t, "sign": md5_sign(KEY, t)}, now=NOW)
    assert len(verifier._expected) <= 8
