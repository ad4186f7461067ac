"""CSS callback authentication, as pure functions: `sign == md5(CallbackKey + str(t))`.

`t` is the *expiry* of the signature (send time + 600 s), not the send time. The scheme signs only
`t`, never the body, so a captured `t`/`sign` pair is replayable with any body until it expires:
expiry is the only replay protection the protocol offers, and HTTPS plus deduplication do the rest.
Nothing here does I/O or reads a clock; callers pass `now`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from receiver.errors import AuthenticationFailed
from receiver.settings import CLOCK_SKEW_SECONDS, SIGNATURE_VALIDITY_SECONDS

_DIGITS = re.compile(r"[0-9]{1,18}")


def css_sign(key: str, t: int) -> str:
    """The `sign` CSS computes for `key` and expiry `t`: lowercase hex MD5 of key then t."""
    return hashlib.md5(f"{key}{t}".encode()).hexdigest()


def parse_t(value: object) -> int:
    """Read `t` from a JSON integer or a string of decimal digits; anything else is malformed."""
    if isinstance(value, bool):  # bool is an int subclass; `true` is not a time
        raise _malformed("t must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, float):
        raise _malformed("t must be an integer number of seconds, not a fraction")
    raise _malformed("t must be a unix time in seconds (an integer or a string of digits)")


def verify_signature(
    body: Mapping[str, object],
    keys: Sequence[str],
    *,
    now: float,
    grace_seconds: int,
) -> None:
    """Accept `body` if its `sign` matches any of `keys` and its `t` is current, else raise.

    Every key is compared (no early exit) so timing does not reveal which key matched.
    """
    t, received = _signed(body)
    _check(t, received, [css_sign(key, t).encode() for key in keys], now, grace_seconds)


class SignatureVerifier:
    """`verify_signature` for one set of keys, remembering the expected signs of recent `t`s.

    CSS stamps `t` in whole seconds, so under load thousands of callbacks share a few hundred
    values of `t`: the MD5s are computed once per `t` and key, not once per callback. The cache
    holds only what anyone can compute from a key they know, and is emptied when it grows past
    `cache_size` (a flood of distinct `t`s costs MD5s, never memory).
    """

    def __init__(self, keys: Sequence[str], *, grace_seconds: int, cache_size: int = 4096) -> None:
        self._keys = tuple(keys)
        self._grace = grace_seconds
        self._cache_size = cache_size
        self._expected: dict[int, list[bytes]] = {}

    def verify(self, body: Mapping[str, object], *, now: float) -> int:
        """Accept `body` or raise, as `verify_signature` does; returns its `t`."""
        t, received = _signed(body)
        expected = self._expected.get(t)
        if expected is None:
            if len(self._expected) >= self._cache_size:
                self._expected.clear()
            expected = self._expected[t] = [css_sign(key, t).encode() for key in self._keys]
        _check(t, received, expected, now, self._grace)
        return t


def _signed(body: Mapping[str, object]) -> tuple[int, bytes]:
    """`t` and `sign` from the body, or the refusal that says what is wrong with them."""
    t_value = body.get("t")
    if t_value is None:
        raise AuthenticationFailed("missing", "signature_missing", "the body has no t field")
    sign = body.get("sign")
    if sign is None:
        raise AuthenticationFailed("missing", "signature_missing", "the body has no sign field")
    t = parse_t(t_value)
    if not isinstance(sign, str):
        raise _malformed("sign must be a string of 32 hexadecimal characters")
    return t, sign.strip().lower().encode()


def _check(t: int, received: bytes, expected: Sequence[bytes], now: float, grace: int) -> None:
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(candidate, received)
    if not matched:
        raise AuthenticationFailed(
            "mismatch", "signature_mismatch", "sign does not match md5(CallbackKey + t)"
        )
    if now > t + grace:
        raise AuthenticationFailed(
            "expired",
            "signature_expired",
            f"signature expired: t={t} is {now - t:.0f} s in the past "
            f"(accepted up to {grace} s after t)",
        )
    if t > now + SIGNATURE_VALIDITY_SECONDS + CLOCK_SKEW_SECONDS:
        raise AuthenticationFailed(
            "future",
            "signature_too_far_in_future",
            f"t={t} lies {t - now:.0f} s in the future; CSS signatures are valid for "
            f"{SIGNATURE_VALIDITY_SECONDS} s (+{CLOCK_SKEW_SECONDS} s clock skew)",
        )


def verify_token(received: str | None, expected: str) -> None:
    """Check the URL token (`?token=`) in constant time."""
    if received is None:
        raise AuthenticationFailed("token", "token_missing", "the URL has no token parameter")
    if not hmac.compare_digest(received.encode(), expected.encode()):
        raise AuthenticationFailed("token", "token_mismatch", "the URL token is not valid")


def _malformed(message: str) -> AuthenticationFailed:
    return AuthenticationFailed("malformed", "signature_malformed", message)
