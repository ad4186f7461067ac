"""Opaque, signed pagination cursors.

A cursor is `base64url(JSON).base64url(HMAC)`: the JSON holds the route, a fingerprint of the
query's filters and the sort key of the last row served (keyset pagination, so rows stored while
a client pages never shift what it sees). The HMAC key is derived from the API token, so a
cursor that was altered, or made up, is told apart from one that is merely for another query,
and each gets its own precise 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

import orjson

from receiver.errors import ApiBadRequest

Position = tuple[int | float, ...]

_MAC_BYTES: Final = 16
_VERSION: Final = 1
_START_OVER: Final = "; request the first page again without `cursor`"


class CursorCodec:
    """Encode and check cursors for one API token."""

    def __init__(self, api_token: str) -> None:
        self._key = hmac.new(
            api_token.encode("utf-8"), b"receiver/history-cursor/v1", hashlib.sha256
        ).digest()

    def encode(self, scope: str, fingerprint: str, position: Position) -> str:
        body = orjson.dumps({"v": _VERSION, "s": scope, "f": fingerprint, "p": list(position)})
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, cursor: str, scope: str, fingerprint: str, shape: Position) -> Position:
        """The position in `cursor`; `shape` gives the type of each element (e.g. `(0,)`)."""
        body_text, dot, mac_text = cursor.partition(".")
        try:
            if not dot:
                raise ValueError("no signature part")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise ApiBadRequest(
                "invalid_cursor",
                "cursor is malformed: pass the `next_cursor` of a previous page unchanged"
                + _START_OVER,
            ) from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise ApiBadRequest(
                "invalid_cursor",
                "cursor was altered, or was issued under a different API token" + _START_OVER,
            )
        try:
            data = orjson.loads(body)
            issued_scope, issued_for, position = data["s"], data["f"], data["p"]
            if data["v"] != _VERSION:
                raise ValueError("old version")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ApiBadRequest(
                "invalid_cursor", "cursor comes from an older version of this service" + _START_OVER
            ) from None
        if issued_scope != scope or issued_for != fingerprint:
            where = f"another route ({issued_scope})" if issued_scope != scope else "other filters"
            raise ApiBadRequest(
                "cursor_mismatch",
                f"cursor belongs to a query with {where}: repeat the filters and order of the "
                "request that returned it (only limit may change)" + _START_OVER,
            )
        if not _fits(position, shape):
            raise ApiBadRequest("invalid_cursor", "cursor holds no valid position" + _START_OVER)
        return tuple(position)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _fits(position: object, shape: Position) -> bool:
    if not isinstance(position, list) or len(position) != len(shape):
        return False
    for value, like in zip(position, shape, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(like, int) and not isinstance(value, int):
            return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("empty or not ASCII")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
