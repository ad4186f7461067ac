"""The CSS signature: reference §2.2 vectors, rotation, and every way `t`/`sign` can be wrong."""

from __future__ import annotations

import pytest

from receiver.callbacks.signature import css_sign, parse_t, verify_signature, verify_token
from receiver.errors import AuthenticationFailed

NOW = 1_703_731_478.0


@pytest.mark.parametrize(
    ("key", "t", "expected"),
    [
        ("", 1615860427, "ac920c3e661d867e90078cf1b5de2c63"),
        ("adasda131312", 1703732078, "3517b319dd20f5e7fe6550ca167198f8"),
        ("key", 1, "c2add694bf942dc77b376592d9c862cd"),
    ],
)
def test_reference_vectors(key: str, t: int, expected: str) -> None:
    assert css_sign(key, t) == expected


def _body(
    key: str = "k1", t: int | str | float | None = int(NOW) + 600, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {"event_type": 1}
    if t is not None:
        body["t"] = t
        body["sign"] = css_sign(key, int(float(t)))
    body.update(extra)
    return body


def _reason(body: dict[str, object], keys: tuple[str, ...] = ("k1",), grace: int = 300) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        verify_signature(body, keys, now=NOW, grace_seconds=grace)
    return info.value.reason


def test_valid_signature_passes() -> None:
    verify_signature(_body(), ("k1",), now=NOW, grace_seconds=300)


def test_upper_case_sign_is_accepted() -> None:
    body = _body()
    body["sign"] = str(body["sign"]).upper()
    verify_signature(body, ("k1",), now=NOW, grace_seconds=300)


def test_any_rotated_key_is_accepted() -> None:
    verify_signature(_body(key="old"), ("new", "old"), now=NOW, grace_seconds=300)
    assert _reason(_body(key="retired"), ("new", "old")) == "mismatch"


def test_t_as_digit_string_is_accepted() -> None:
    verify_signature(_body(t=str(int(NOW) + 600)), ("k1",), now=NOW, grace_seconds=300)


@pytest.mark.parametrize("bad_t", [NOW + 600.5, float(int(NOW) + 600), "17037.5", "abc", "", True])
def test_non_integer_t_is_malformed(bad_t: object) -> None:
    body = {"event_type": 1, "t": bad_t, "sign": "0" * 32}
    assert _reason(body) == "malformed"


def test_missing_t_or_sign() -> None:
    assert _reason({"event_type": 1, "sign": "0" * 32}) == "missing"
    assert _reason({"event_type": 1, "t": int(NOW)}) == "missing"
    assert _reason({"event_type": 1, "t": None, "sign": None}) == "missing"


def test_sign_of_wrong_type_is_malformed() -> None:
    assert _reason({"event_type": 1, "t": int(NOW) + 600, "sign": 12345}) == "malformed"


def test_expiry_honours_the_grace_period() -> None:
    # t is the signature's expiry; a retry 299 s after t is accepted, 301 s after is not.
    verify_signature(_body(t=int(NOW) - 299), ("k1",), now=NOW, grace_seconds=300)
    assert _reason(_body(t=int(NOW) - 301)) == "expired"
    assert _reason(_body(t=int(NOW) - 1), grace=0) == "expired"


def test_far_future_t_is_refused() -> None:
    verify_signature(_body(t=int(NOW) + 660), ("k1",), now=NOW, grace_seconds=300)
    assert _reason(_body(t=int(NOW) + 661)) == "future"


def test_mismatch_is_reported_before_time_problems() -> None:
    body = _body(t=int(NOW) - 10_000)
    body["sign"] = "f" * 32
    assert _reason(body) == "mismatch"


def test_parse_t_rejects_absurd_lengths() -> None:
    with pytest.raises(AuthenticationFailed):
        parse_t("9" * 5000)


def test_token_check() -> None:
    verify_token("abc", "abc")
    for received in (None, "abd", ""):
        with pytest.raises(AuthenticationFailed) as info:
            verify_token(received, "abc")
        assert info.value.reason == "token"
